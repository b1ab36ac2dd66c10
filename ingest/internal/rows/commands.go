package rows

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

// CommandColumns are the columns of commands, in the order of
// CommandRow, the select lists of CommandsQuery and PendingCommandsQuery,
// and ScanCommand.
var CommandColumns = []string{"id", "gateway", "name", "sender", "push", "body", "created_at", "expires_at",
	"state", "attempts", "sent_at", "replied_at", "reply_ts", "reply", "error"}

// LapsedError is the error text of a command that LapseCommands ends.
const LapsedError = "expired unanswered"

// notFinal is the SQL condition of a command not final; the partial
// indexes of commands have it as their predicate, and a query must name
// it as it is for the planners to use them.
const notFinal = "state IN ('" + ingest.CommandQueued + "', '" + ingest.CommandSent + "')"

// Unix nanoseconds hold the times from minTime to maxTime.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// checkTime reports a time that unix nanoseconds cannot hold, or a zero
// one.
func checkTime(what string, t time.Time) error {
	if t.IsZero() || t.Before(minTime) || t.After(maxTime) {
		return fmt.Errorf("%s %s is not within the years of unix nanoseconds (1678 to 2261)", what, t.Format(time.RFC3339Nano))
	}
	return nil
}

// clampNS is t in unix nanoseconds, clamped to what they hold: a query
// bound past either end selects what the end would.
func clampNS(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// nullNS is t in unix nanoseconds, or nil (NULL) when t is zero.
func nullNS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// checkText reports text that neither store keeps as it is: not UTF-8,
// or holding a NUL byte (PostgreSQL's text holds neither).
func checkText(what, s string, max int) error {
	switch {
	case len(s) > max:
		return fmt.Errorf("%s is longer than %d bytes", what, max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", what)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%s contains a NUL byte", what)
	}
	return nil
}

// CheckCommand reports a command that AddCommand refuses (its doc in
// package ingest says which).
func CheckCommand(c *ingest.Command) error {
	for _, f := range []struct{ what, v string }{{"id", c.ID}, {"gateway", c.Gateway}, {"name", c.Name}, {"push", c.Push}} {
		if f.v == "" {
			if f.what == "push" {
				continue
			}
			return fmt.Errorf("command %s is empty", f.what)
		}
		if err := ingest.CheckID(f.v); err != nil {
			return fmt.Errorf("command %s %w", f.what, err)
		}
	}
	if err := checkText("command sender", c.Sender, ingest.MaxCommandSenderLen); err != nil {
		return err
	}
	if len(c.Body) > ingest.MaxCommandBodyBytes {
		return fmt.Errorf("command body of %d bytes is over %d", len(c.Body), ingest.MaxCommandBodyBytes)
	}
	if err := checkTime("command created_at", c.CreatedAt); err != nil {
		return err
	}
	if err := checkTime("command expires_at", c.ExpiresAt); err != nil {
		return err
	}
	if !c.ExpiresAt.After(c.CreatedAt) {
		return errors.New("command expires_at is not after its created_at")
	}
	switch c.State {
	case ingest.CommandQueued:
	case ingest.CommandSent:
		if err := checkTime("command sent_at", c.SentAt); err != nil {
			return fmt.Errorf("a sent command needs its sent_at: %w", err)
		}
	default:
		return fmt.Errorf("new command's state %.64q is not %s or %s", c.State, ingest.CommandQueued, ingest.CommandSent)
	}
	if !c.SentAt.IsZero() {
		if err := checkTime("command sent_at", c.SentAt); err != nil {
			return err
		}
	}
	if c.Attempts < 0 || c.Attempts > math.MaxInt32 {
		return fmt.Errorf("command attempts %d is not from 0 to %d", c.Attempts, math.MaxInt32)
	}
	if !c.RepliedAt.IsZero() || !c.ReplyTS.IsZero() || c.Reply != nil || c.Error != "" {
		return errors.New("a new command has no reply")
	}
	return nil
}

// CommandRow is the commands row of c (which CheckCommand accepts), in
// CommandColumns order.
func CommandRow(c *ingest.Command) []any {
	body := c.Body
	if body == nil {
		body = []byte{} // the column is NOT NULL
	}
	return []any{c.ID, c.Gateway, c.Name, c.Sender, c.Push, body, c.CreatedAt.UnixNano(), c.ExpiresAt.UnixNano(),
		c.State, int64(c.Attempts), nullNS(c.SentAt), nil, nil, nil, ""}
}

// Reply is a reply as CommandReplied stores it.
type Reply struct {
	Status             string
	RepliedAt, ReplyTS any // unix ns; ReplyTS nil (NULL) for none
	Body               []byte
	Error              string
}

// CheckReply reports a reply that CommandReplied refuses, else returns
// it as it is stored: errText made valid UTF-8 without NUL and cut to
// ingest.MaxCommandErrorBytes.
func CheckReply(status string, at, replyTS time.Time, body []byte, errText string) (Reply, error) {
	switch {
	case !outpost.ValidName(status):
		return Reply{}, fmt.Errorf("reply status %.64q is not 1 to %d of A-Z a-z 0-9 _ . -", status, outpost.MaxNameLen)
	case status == ingest.CommandQueued || status == ingest.CommandSent || status == ingest.CommandLapsed:
		return Reply{}, fmt.Errorf("reply status %q is not a reply's", status)
	case len(body) > ingest.MaxCommandReplyBytes:
		return Reply{}, fmt.Errorf("reply body of %d bytes is over %d", len(body), ingest.MaxCommandReplyBytes)
	}
	if err := checkTime("reply's replied_at", at); err != nil {
		return Reply{}, err
	}
	if !replyTS.IsZero() {
		if err := checkTime("reply's ts", replyTS); err != nil {
			return Reply{}, err
		}
	}
	if body == nil {
		body = []byte{} // a reply recorded has a body, if empty
	}
	return Reply{Status: status, RepliedAt: at.UnixNano(), ReplyTS: nullNS(replyTS), Body: body, Error: ErrorText(errText)}, nil
}

// ErrorText is s as the error column keeps it: bytes that are not UTF-8,
// and NUL, replaced by U+FFFD, cut to at most ingest.MaxCommandErrorBytes
// at a character's boundary.
func ErrorText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if len(s) <= ingest.MaxCommandErrorBytes {
		return s
	}
	n := ingest.MaxCommandErrorBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// CheckSentAt reports a time of publishing that CommandSent refuses.
func CheckSentAt(at time.Time) error { return checkTime("sent_at", at) }

// ValidRef reports whether id (a command's or a gateway's) could be
// stored: one that AddCommand refuses names no command, so a store
// answers "not found" without asking the database (which may refuse the
// bytes: PostgreSQL's text holds no NUL).
func ValidRef(id string) bool { return id != "" && ingest.CheckID(id) == nil }

// CommandSentSQL is CommandSent's update, of the arguments
// CommandSentArgs; param(n) writes the n-th placeholder, from 1, and
// every statement here numbers them in the order they appear (SQLite's
// ? are positional).
func CommandSentSQL(param func(n int) string) string {
	return "UPDATE commands SET state = '" + ingest.CommandSent + "', sent_at = " + param(1) +
		", attempts = attempts + 1 WHERE id = " + param(2) + " AND (state = '" + ingest.CommandQueued +
		"' OR state = '" + ingest.CommandSent + "' AND sent_at <= " + param(3) + ")"
}

// CommandSentArgs are the arguments of CommandSentSQL.
func CommandSentArgs(id string, at, resendBefore time.Time) []any {
	return []any{at.UnixNano(), id, resendBefore.UnixNano()}
}

// CommandRepliedSQL is CommandReplied's update, of the arguments
// ReplyArgs.
func CommandRepliedSQL(param func(n int) string) string {
	return "UPDATE commands SET state = " + param(1) + ", replied_at = " + param(2) + ", reply_ts = " + param(3) +
		", reply = " + param(4) + ", error = " + param(5) + " WHERE id = " + param(6) + " AND gateway = " + param(7) +
		" AND " + notFinal
}

// ReplyArgs are the arguments of CommandRepliedSQL.
func ReplyArgs(gateway, id string, r Reply) []any {
	return []any{r.Status, r.RepliedAt, r.ReplyTS, r.Body, r.Error, id, gateway}
}

// LapseSQL is LapseCommands' update: arguments the error text and now
// (unix ns). The partial index on expires_at serves it.
func LapseSQL(param func(n int) string) string {
	return "UPDATE commands SET state = '" + ingest.CommandLapsed + "', error = " + param(1) + " WHERE " + notFinal +
		" AND expires_at <= " + param(2)
}

// LapseArgs are the arguments of LapseSQL at now.
func LapseArgs(now time.Time) []any { return []any{LapsedError, clampNS(now)} }

// ExpiredCommands is the condition of the commands that retention
// deletes: final, created before its argument (unix ns, CommandsHorizon).
func ExpiredCommands(param func(n int) string) string {
	return "state NOT IN ('" + ingest.CommandQueued + "', '" + ingest.CommandSent + "') AND created_at < " + param(1)
}

// CommandsHorizon is ExpiredCommands' argument at now (unix ns).
func CommandsHorizon(now int64) int64 {
	if now < math.MinInt64+int64(ingest.CommandRetention) {
		return math.MinInt64
	}
	return now - int64(ingest.CommandRetention)
}

// CheckPending reports a pending query a store cannot answer.
func CheckPending(limit int) error {
	if limit <= 0 {
		return fmt.Errorf("limit %d must be positive", limit)
	}
	return nil
}

// PendingCommandsQuery is the SQL and arguments of a PendingCommands
// (whose limit CheckPending accepts); param(n) writes the n-th
// placeholder, from 1. The partial index on (gateway, created_at, id) of
// the commands not final serves it, in its order.
func PendingCommandsQuery(gateway string, now, resendBefore time.Time, limit int, param func(n int) string) (string, []any) {
	return "SELECT " + strings.Join(CommandColumns, ", ") + " FROM commands WHERE gateway = " + param(1) + " AND " + notFinal +
			" AND (state = '" + ingest.CommandQueued + "' OR sent_at <= " + param(2) + ")" + belowAttempts + " AND expires_at > " + param(3) +
			" ORDER BY created_at, id LIMIT " + param(4),
		[]any{gateway, clampNS(resendBefore), clampNS(now), limit}
}

// belowAttempts keeps a pending query to the commands published fewer
// than ingest.MaxCommandAttempts times.
var belowAttempts = " AND attempts < " + strconv.Itoa(ingest.MaxCommandAttempts)

// PendingGatewaysQuery is the SQL and arguments of a PendingGateways
// (whose limit CheckPending accepts): the gateways of the rows that
// PendingCommandsQuery selects, each once, on the same partial index.
func PendingGatewaysQuery(now, resendBefore time.Time, limit int, param func(n int) string) (string, []any) {
	return "SELECT DISTINCT gateway FROM commands WHERE " + notFinal +
			" AND (state = '" + ingest.CommandQueued + "' OR sent_at <= " + param(1) + ")" + belowAttempts + " AND expires_at > " + param(2) +
			" LIMIT " + param(3),
		[]any{clampNS(resendBefore), clampNS(now), limit}
}

// CheckCommands reports a commands query a store cannot answer: a
// limit below 1, or a filter that is not an id as ingest.CheckID takes
// it (no command stored could match it).
func CheckCommands(q ingest.CommandQuery) error {
	if q.Limit <= 0 {
		return fmt.Errorf("limit %d must be positive", q.Limit)
	}
	for _, f := range []struct{ what, v string }{{"id", q.ID}, {"gateway", q.Gateway}, {"push", q.Push},
		{"name", q.Name}, {"state", q.State}, {"before id", q.BeforeID}} {
		if f.v == "" {
			continue
		}
		if err := ingest.CheckID(f.v); err != nil {
			return fmt.Errorf("%s filter %w", f.what, err)
		}
	}
	return nil
}

// Empty is a query iterator that yields nothing: the answer of a query
// that no stored row can match.
func Empty[T any]() iter.Seq2[T, error] {
	return func(func(T, error) bool) {}
}

// CommandsQuery is the SQL and arguments of q (which CheckCommands
// accepts); param(n) writes the n-th placeholder, from 1. Only the
// filters q sets are in the WHERE clause; the cursor is a row value
// comparison, which both databases answer as a range of the indexes on
// (created_at, id), alone or after gateway or push.
func CommandsQuery(q ingest.CommandQuery, param func(n int) string) (string, []any) {
	w := &where{param: param}
	w.sb.WriteString("SELECT " + strings.Join(CommandColumns, ", ") + " FROM commands")
	for _, f := range []struct{ col, v string }{{"id", q.ID}, {"gateway", q.Gateway}, {"push", q.Push}, {"name", q.Name}, {"state", q.State}} {
		if f.v != "" {
			w.add(f.col+" = %s", f.v)
		}
	}
	if !q.Before.IsZero() {
		w.add("(created_at, id) < (%s, %s)", clampNS(q.Before), q.BeforeID)
	}
	w.sb.WriteString(" ORDER BY created_at DESC, id DESC LIMIT " + w.arg(q.Limit))
	return w.sb.String(), w.args
}

// ScanCommand reads one row of CommandsQuery or PendingCommandsQuery
// with scan (a Rows' Scan method). Times read back in UTC; a NULL time is
// the zero time. Body is nil when empty; Reply is nil without a reply,
// and not nil with one.
func ScanCommand(scan func(dest ...any) error) (ingest.Command, error) {
	var (
		c                          ingest.Command
		created, expires, attempts int64
		sentAt, repliedAt, replyTS *int64
	)
	if err := scan(&c.ID, &c.Gateway, &c.Name, &c.Sender, &c.Push, &c.Body, &created, &expires,
		&c.State, &attempts, &sentAt, &repliedAt, &replyTS, &c.Reply, &c.Error); err != nil {
		return c, err
	}
	c.CreatedAt, c.ExpiresAt, c.Attempts = time.Unix(0, created).UTC(), time.Unix(0, expires).UTC(), int(attempts)
	c.SentAt, c.RepliedAt, c.ReplyTS = fromNS(sentAt), fromNS(repliedAt), fromNS(replyTS)
	if len(c.Body) == 0 {
		c.Body = nil
	}
	switch {
	case c.RepliedAt.IsZero():
		c.Reply = nil
	case c.Reply == nil:
		c.Reply = []byte{} // a reply with an empty body
	}
	return c, nil
}

func fromNS(ns *int64) time.Time {
	if ns == nil {
		return time.Time{}
	}
	return time.Unix(0, *ns).UTC()
}
