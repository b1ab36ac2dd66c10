package ingest

import (
	"context"
	"errors"
	"iter"
	"time"
)

// Command states besides a reply's status (docs/commands.md, "Audit and the queue"). A
// command is queued or sent until it ends: with the status of its reply
// (ok, error, expired, unknown, invalid), or lapsed.
const (
	// CommandQueued: stored, not sent yet (its gateway was offline); the
	// service sends it when the gateway comes online, until it expires.
	CommandQueued = "queued"
	// CommandSent: published, no reply recorded yet. The service sends
	// it again (same id: a gateway that ran it answers from its cache)
	// when the gateway comes online and no reply came, until it expires.
	CommandSent = "sent"
	// CommandLapsed: it expired before any reply was recorded; a lapsed
	// command that was sent may have run, but nobody heard of it.
	CommandLapsed = "lapsed"
)

// Bounds of a stored command.
const (
	MaxCommandBodyBytes  = 64 << 10  // the request's body
	MaxCommandReplyBytes = 256 << 10 // the reply's body
	MaxCommandErrorBytes = 16 << 10  // the reply's error text
	MaxCommandSenderLen  = 256       // bytes of Sender
)

// CommandRetention is how long a store keeps a final command, counted
// from its CreatedAt: Maintain deletes those created before now minus
// it, whatever the Retention. A command not final is never deleted;
// LapseCommands ends it once it expires.
const CommandRetention = 90 * 24 * time.Hour

// MaxCommandAttempts is how often a command is published without a
// reply before it is not pending any more: it waits for its expiry,
// which lapses it (a gateway that takes no commands is not sent one
// for ever).
const MaxCommandAttempts = 10

// ErrDuplicateCommand is wrapped by AddCommand's error when a command
// with that id is stored already.
var ErrDuplicateCommand = errors.New("ingest: a command with this id is stored already")

// Command is one command to a gateway, as the commands table keeps it:
// who sent what, when, and how it ended (docs/commands.md, "Audit and the queue").
type Command struct {
	ID        string    // the request id; unique in the table
	Gateway   string    // the gateway it is for
	Name      string    // the command's name (rules.set, ping, ...)
	Sender    string    // who sent it (the operator's user@host, or what they said)
	Push      string    // the fleet push it belongs to; "" for none
	Body      []byte    // the request's body, MessagePack; may be empty
	CreatedAt time.Time // when it was stored
	ExpiresAt time.Time // it is not sent, nor sent again, after this
	State     string    // CommandQueued, CommandSent, CommandLapsed, or the reply's status
	Attempts  int       // how many times it was published
	SentAt    time.Time // the last publish; zero if never sent
	RepliedAt time.Time // when the reply was recorded; zero without one
	ReplyTS   time.Time // the reply's ts (the gateway's clock); zero without one
	Reply     []byte    // the reply's body, MessagePack; nil without one
	Error     string    // the reply's error message (status other than ok), or why it lapsed
}

// Final reports whether c has ended: a reply was recorded, or it lapsed.
func (c *Command) Final() bool {
	return c.State != CommandQueued && c.State != CommandSent
}

// CommandQuery selects commands, newest first (CreatedAt, then ID
// compared byte by byte, descending). Empty fields select all.
type CommandQuery struct {
	ID      string
	Gateway string
	Push    string
	Name    string
	State   string
	// Before, with BeforeID, continues a page: only commands older than
	// (Before, BeforeID) in the order above. Zero: from the newest.
	Before   time.Time
	BeforeID string
	Limit    int // > 0
}

// CommandStore is a Store that keeps the commands table: the audit of
// every command sent to a gateway, and the queue of those waiting for
// their gateway to come online. ingest/postgres and ingest/sqlite
// implement it.
type CommandStore interface {
	// AddCommand stores a new command (State CommandQueued, or
	// CommandSent with SentAt set) without a reply (RepliedAt, ReplyTS,
	// Reply and Error unset). ID, Gateway and Name (and Push if set) are
	// each an id as CheckID takes it; Sender is UTF-8 without NUL, of at
	// most MaxCommandSenderLen bytes; Body at most MaxCommandBodyBytes;
	// ExpiresAt is after CreatedAt, and both within the years of unix
	// nanoseconds (1678 to 2261). An id already stored is an error
	// wrapping ErrDuplicateCommand; any other command refused, an error
	// wrapping ErrInvalidData.
	AddCommand(ctx context.Context, c *Command) error
	// CommandSent claims a command for a publish at at, before it is
	// published: when it is queued, or sent at or before resendBefore
	// (and not answered), it becomes State CommandSent, SentAt at,
	// Attempts one more, and ok is true. ok is false, with no error,
	// when the id is unknown, the command is final, or it was sent after
	// resendBefore: by another process that claimed it first, which is
	// how several ingest processes send a command once. An at or
	// resendBefore outside the years of unix nanoseconds is an error
	// wrapping ErrInvalidData.
	CommandSent(ctx context.Context, id string, at, resendBefore time.Time) (ok bool, err error)
	// CommandReplied records a reply to a command of gateway that is
	// not final: State status, RepliedAt at, ReplyTS (zero: none), Reply
	// body, Error errText. ok is false, with no error, when no such
	// command of that gateway is stored or it is final already (a second
	// reply changes nothing). status is a reply's status (1 to 64 bytes
	// of A-Z a-z 0-9 _ . -, not a state of a command that is not final,
	// nor CommandLapsed); a body over MaxCommandReplyBytes, a status
	// refused, or an at (or a replyTS not zero) outside the years of
	// unix nanoseconds is an error wrapping ErrInvalidData. errText is
	// kept as valid UTF-8 without NUL (others become U+FFFD), cut to at
	// most MaxCommandErrorBytes at a character's boundary.
	CommandReplied(ctx context.Context, gateway, id, status string, at, replyTS time.Time, body []byte, errText string) (ok bool, err error)
	// PendingCommands yields gateway's commands to send now: queued, or
	// sent at or before resendBefore without a reply and published fewer
	// than MaxCommandAttempts times, and expiring after now; oldest first (CreatedAt, then ID), at most limit. A limit
	// below 1 is an error, yielded alone.
	PendingCommands(ctx context.Context, gateway string, now, resendBefore time.Time, limit int) iter.Seq2[Command, error]
	// PendingGateways yields the gateways that have commands to send
	// now, as PendingCommands selects them, at most limit, in no order.
	// A limit below 1 is an error, yielded alone.
	PendingGateways(ctx context.Context, now, resendBefore time.Time, limit int) iter.Seq2[string, error]
	// LapseCommands makes every command not final whose ExpiresAt is at
	// or before now CommandLapsed (Error says it expired unanswered),
	// and returns how many.
	LapseCommands(ctx context.Context, now time.Time) (int64, error)
	// Commands yields the commands that q selects. A Limit below 1, or
	// a filter that is not an id as CheckID takes it, is an error,
	// yielded alone; a failure is yielded last.
	Commands(ctx context.Context, q CommandQuery) iter.Seq2[Command, error]
}
