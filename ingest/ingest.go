// Package ingest is the cloud side of Outpost: it consumes the batches that
// gateways publish over MQTT, commits each one to a database exactly once,
// acknowledges it to the gateway, and serves the stored readings over HTTP.
//
// # Flow
//
// The service subscribes to $share/{group}/{prefix}/+/batch (QoS 1) and to
// {prefix}/+/status (QoS 1, not shared). Every message is handed to a
// bounded queue read by a fixed pool of workers, so a slow database slows
// the broker down instead of piling up goroutines. A worker decodes and
// validates the batch, commits it in one transaction keyed by (gateway,
// epoch, seq), acks the MQTT message only after the commit, and publishes the
// application ack on {prefix}/{gateway}/ack. A message that can never be
// stored (bad msgp, broken contract, topic/payload gateway mismatch, data the
// database rejects) is written to dead_letters with the reason and acked.
//
// Besides the wire contract, a batch is held to the service's rules
// (docs/wire-format.md, "Ingest validation"): at most Options.MaxReadings
// readings, MaxSeries series and MaxAlerts alerts, counted by the decoder
// before it allocates; names of the gateway's config (outpost.ValidName);
// and no reading or alert dated more than MaxFutureSkew after the
// service's clock (a status neither). A valid batch refused for a name or
// a date is dead-lettered whole and also acked to its gateway, which then
// deletes it instead of sending it for ever; one over a limit is
// dead-lettered and not acked, so that the gateway keeps it until the
// limit is raised. The workers decompress zstd bodies within one shared
// budget of bytes (DecompressBudget).
//
// Before anything reads a batch, its MAC is checked (Options.Auth and
// Keys; keys.go; docs/security.md): a gateway with a registered key must
// sign its batches with it, and one without is refused under
// AuthRequired. A batch refused so is dead-lettered with a reason
// beginning "auth:" and not acked, and never reaches the batches table,
// so that a forgery cannot take a real batch's seq nor make its gateway
// delete anything; the acks of a verified batch are signed with the key
// that verified it.
//
// A loss batch (outpost.KindLoss) is the gateway's report of data it had to
// drop (an outbox cap evicted it, or a stored batch was corrupt). It is
// committed, deduplicated and acked like any other batch; each of its loss
// records becomes a row of gaps, so that a hole in readings or alerts is
// known to be one.
//
// # Tables (contract)
//
// Both stores answer the same SQL for these names, with the same columns:
//
//	readings(gateway, sensor, metric, ts, value, quality)    every reading; duplicates of a timestamp are kept
//	latest(gateway, sensor, metric, ts, value, quality, unit) newest reading per series, one row per (gateway, sensor, metric)
//	alerts(gateway, rule, fingerprint, state, severity, value, labels, message, started_at, ts, seq, annotations)
//	batches(gateway, epoch, seq, received_at, n, kind, bytes, created)
//	                                                        primary key (gateway, epoch, seq, created)
//	dead_letters(id, topic, received_at, reason, payload)
//	gateways(gateway, state, updated_at, payload)           primary key gateway
//	sensor_labels(gateway, sensor, labels)                  primary key (gateway, sensor)
//	gaps(gateway, epoch, seq, idx, reason, kind, sensor, metric, rule, from_ts, to_ts,
//	     count, lost_epoch, first_seq, last_seq, dropped_at, received_at)
//	                                                        primary key (gateway, epoch, seq, idx),
//	                                                        index (gateway, sensor, metric, from_ts)
//	commands(id, gateway, name, sender, push, body, created_at, expires_at, state, attempts,
//	         sent_at, replied_at, reply_ts, reply, error)  primary key id (CommandStore)
//
// In both stores readings and latest are views over the series-chunk
// layout (docs/storage.md): a series table (one row per series, with its
// unit and newest reading), chunks (the readings of one series within one
// hour, in a columnar encoding that the SQL function outpost_chunk_unpack
// turns back into rows) and recent (the readings of batches that hold too
// few of a series for a chunk). In PostgreSQL outpost_chunk_unpack is
// PL/pgSQL; in SQLite it is Go, a virtual table that only a process
// linking ingest/sqlite has (not the sqlite3 shell). An older database
// with the row layout is converted when the store opens it.
//
// series.labels are the labels of the series' sensor from its gateway's
// newest status (a JSON object, {} for none); sensor_labels holds them
// by sensor, a sensor without labels having no row, for the series made
// later (docs/storage.md, "Sensor labels").
//
// A gaps row is one loss record: (gateway, epoch, seq) is the loss batch
// that carried it and idx its index in the batch; kind is what was lost
// ("telemetry": readings of the series sensor/metric, "alert": alerts of
// rule); from_ts and to_ts are the first and last lost reading or alert
// (0 when unknown); count how many were lost (0 when unknown); lost_epoch,
// first_seq and last_seq the dropped batches; dropped_at when the gateway
// dropped them; received_at when the loss batch was committed.
//
// Every time column (readings.ts, alerts.started_at, alerts.ts,
// batches.received_at, dead_letters.received_at, gateways.updated_at,
// gaps.from_ts, gaps.to_ts, gaps.dropped_at, gaps.received_at, and the
// *_at and reply_ts of commands, NULL when unset) is a
// 64-bit integer of Unix nanoseconds, UTC, in PostgreSQL as in SQLite:
// timestamptz keeps only microseconds, and the dedup and range semantics must
// not depend on the store. In PostgreSQL, to_timestamp(ts / 1e9) turns one
// into a timestamptz for people.
//
// The uint64 batch epoch and seq, alert seq, and gaps' lost_epoch,
// first_seq and last_seq are stored in signed 64-bit columns as the same bit
// pattern (int64(epoch)); convert back with uint64(v). gaps.count is a plain
// non-negative bigint (a larger count is rejected). quality is the
// outpost.Quality number (0 good, 1 uncertain, 2 bad), batches.kind is
// "telemetry", "alert" or "loss" (batches.n is then the number of loss
// records), state is the AlertState name, labels and annotations are JSON
// objects (jsonb in PostgreSQL, TEXT in SQLite; annotations is {} for an
// alert without any, and in rows from before the column existed: opening
// an older database adds it). A NaN value is stored as NaN
// in PostgreSQL and as NULL in SQLite (which has no NaN); both read back NaN.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"
	"strconv"
	"time"

	"github.com/outposthq/outpost"
)

// Store is what the service needs from a database. ingest/postgres and
// ingest/sqlite implement it; storetest.Run is the contract both pass.
// A Store is safe for concurrent use.
type Store interface {
	// Commit stores one decoded, valid batch in one transaction. It first
	// inserts the batch into batches; if (gateway, epoch, seq, created)
	// is already there the batch is a duplicate: Commit writes nothing
	// else and returns dup=true. Every copy of a batch carries its
	// creation time; a batch that repeats a stored (gateway, epoch, seq)
	// with another (a gateway restored from an old image) is another
	// batch, and stored. Otherwise it inserts the readings (and updates
	// latest), the alerts, or the loss records (into gaps). size is the
	// encoded size in bytes.
	// An error wrapping ErrInvalidData means the database refused the
	// data itself and a retry cannot succeed; any other error may be
	// transient.
	Commit(ctx context.Context, b *outpost.Batch, size int) (dup bool, err error)
	// DeadLetter records a message that could not be stored.
	DeadLetter(ctx context.Context, topic, reason string, payload []byte) error
	// SetGatewayStatus records a gateway's status unless a newer one (by
	// at) is already stored. A zero at (an undated status: the broker's
	// last will) is newer than any, and is stored 1 ns after the one it
	// replaces (now, when there is none). When it records the status,
	// and labels is not nil, the gateway's sensors have labels from then
	// on and nothing else (a sensor that labels leaves out has none): on
	// every series of the gateway, and on series made later
	// (docs/storage.md, "Sensor labels"). A status that is not recorded
	// changes no labels.
	SetGatewayStatus(ctx context.Context, gateway, state string, at time.Time, payload []byte, labels SensorLabels) error

	// The query methods return iterators. Ranging over one runs the
	// query and yields its rows as the database returns them, without
	// gathering them first; the rows stay open, holding a database
	// connection, until the loop ends, so a slow loop body holds it
	// that long (break ends the query early). A failure, also of a
	// query the store cannot answer (such as a Limit below 1), is
	// yielded once with a zero value, as the last pair. Each range runs
	// the query anew. Do not call the Store from the loop body: with
	// every connection held by loops, that call would wait for ever.

	// Gateways yields every gateway's last recorded status, by gateway.
	Gateways(ctx context.Context) iter.Seq2[GatewayStatus, error]
	// Latest yields the newest reading of each series that q selects,
	// ordered by gateway, sensor, metric, at most q.Limit of them.
	Latest(ctx context.Context, q LatestQuery) iter.Seq2[Point, error]
	// Series yields the series that q selects (see SeriesQuery), ordered
	// by gateway, sensor, metric, at most q.Limit of them.
	Series(ctx context.Context, q SeriesQuery) iter.Seq2[SeriesInfo, error]
	// Range yields one series' readings with From <= TS < To in
	// ascending time order, at most Limit of them.
	Range(ctx context.Context, q RangeQuery) iter.Seq2[Point, error]
	// Gaps yields one gateway's loss records that overlap the query's
	// window (see GapQuery), ordered by from_ts, then by the loss batch
	// and record index, at most Limit of them.
	Gaps(ctx context.Context, q GapQuery) iter.Seq2[Gap, error]
	// Buckets yields one series' readings aggregated into buckets of
	// q.Step (see BucketQuery), ascending, at most q.Limit of them.
	Buckets(ctx context.Context, q BucketQuery) iter.Seq2[Bucket, error]
	// Alerts yields the alert transitions that q selects (see
	// AlertQuery), at most q.Limit of them.
	Alerts(ctx context.Context, q AlertQuery) iter.Seq2[AlertRow, error]
	// ActiveAlerts yields the active alert instances that q selects
	// (see ActiveAlertQuery): each instance's newest transition, when
	// it leaves the instance pending, firing or nodata, ordered by
	// gateway, started_at and fingerprint, at most q.Limit of them.
	ActiveAlerts(ctx context.Context, q ActiveAlertQuery) iter.Seq2[AlertRow, error]
	// Counts returns row counts, for tests and operators.
	Counts(ctx context.Context) (Counts, error)
	// Close releases the database. The Store is unusable afterwards.
	Close() error
}

// GroupStore is a Store that also commits several telemetry batches in
// one transaction, so that a busy service pays one commit (one WAL flush)
// for many batches.
type GroupStore interface {
	Store
	// CommitGroup stores telemetry batches in one transaction, each
	// deduplicated on its own (gateway, epoch, seq) as Commit does:
	// dup[i] reports that bs[i] was already stored, or repeats an earlier
	// batch of bs. sizes[i] is bs[i]'s encoded size. On error nothing is
	// stored; an error wrapping ErrInvalidData means that one of the
	// batches, not known which, is refused for good: commit them one by
	// one to find it.
	CommitGroup(ctx context.Context, bs []*outpost.Batch, sizes []int) (dup []bool, err error)
}

// StatusRecorder is a Store that says what SetGatewayStatus did: the
// service's live events (GET /api/v1/events) then send a gateway's
// status only when it was recorded, exactly as Gateways yields it
// afterwards. Both ingest/postgres and ingest/sqlite implement it; with
// a store that does not, every status taken is sent as the message
// carried it.
type StatusRecorder interface {
	// RecordGatewayStatus is SetGatewayStatus that also returns the
	// gateway's row as recorded (updated_at as stored, the payload as
	// the database gives it back), and ok false, with no error, when
	// it recorded nothing because a newer status is stored.
	RecordGatewayStatus(ctx context.Context, gateway, state string, at time.Time, payload []byte,
		labels SensorLabels) (st GatewayStatus, ok bool, err error)
}

// Compactor is a Store that folds the readings it keeps as rows (series
// with too few readings in a batch for a chunk) into chunks once their
// window has closed (docs/storage.md, "Compaction").
type Compactor interface {
	// Compact folds what lies in windows that end at or before before
	// (unix ns). Among processes sharing a database one compacts at a
	// time: in PostgreSQL the others' Compact returns at once, Leader
	// false; in SQLite, whose write transactions take turns anyway,
	// each compacts in its turn.
	Compact(ctx context.Context, before int64) (CompactStats, error)
}

// CompactStats is what one Compact did.
type CompactStats struct {
	Leader        bool  // this process compacted (held the compactor's lock; always, in SQLite)
	Windows       int64 // series windows folded
	Rows          int64 // rows folded into chunks
	ChunksMerged  int64 // small chunks merged with them
	ChunksWritten int64 // chunks written
	Damaged       int64 // chunks that do not decode, left as they are (and logged)
}

// ErrInvalidData is wrapped by store errors that mean the database refused
// the data itself (a constraint or data exception), not that it is
// unavailable. The service dead-letters such a batch instead of retrying.
var ErrInvalidData = errors.New("ingest: data rejected by the database")

// Point is one stored reading. In JSON, TS is RFC 3339 with nanoseconds
// (UTC) and again as unix nanoseconds (ts_ns), a NaN or infinite Value is
// null, Unit is always present ("" when the series has none) and Quality
// is its name.
type Point struct {
	Gateway string
	Sensor  string
	Metric  string
	TS      int64 // unix ns
	Value   float64
	// Unit is the series' unit as the series table holds it: the one its
	// latest committed batch sent, for every reading of the series.
	Unit    string
	Quality outpost.Quality
}

// GatewayStatus is a gateway's last status message. In JSON, UpdatedAt
// is RFC 3339 and Payload is the message itself under "status".
type GatewayStatus struct {
	Gateway   string          `json:"gateway"`
	State     string          `json:"state"`
	UpdatedAt time.Time       `json:"updated_at"`
	Payload   json.RawMessage `json:"status"`
}

// SensorLabels are the labels of a gateway's sensors by sensor id, as
// its status carries them (outpost.Status). A sensor without labels may
// be left out.
type SensorLabels map[string]map[string]string

// SeriesKey names one series. Series are ordered by gateway, then
// sensor, then metric, as the database compares text.
type SeriesKey struct {
	Gateway, Sensor, Metric string
}

// LatestQuery selects the newest reading of each series: of one gateway
// if Gateway is set, after the series After (in key order, excluded)
// unless After is the zero key, at most Limit (> 0) of them. A page's
// last key as the next page's After walks every series once.
type LatestQuery struct {
	Gateway string
	After   SeriesKey
	Limit   int
}

// RangeQuery selects one series' readings with From <= TS < To (unix ns),
// ascending, at most Limit (> 0) of them.
type RangeQuery struct {
	Gateway, Sensor, Metric string
	From, To                int64
	Limit                   int
}

// Counts are row counts of the store's tables.
type Counts struct {
	Readings         int64
	DistinctReadings int64 // distinct (gateway, sensor, metric, ts)
	Alerts           int64
	Batches          int64
	DeadLetters      int64
	Gaps             int64 // rows in gaps (loss records)
	LostReadings     int64 // sum of count over telemetry gaps
	LostAlerts       int64 // sum of count over alert gaps
}

type pointJSON struct {
	Gateway string   `json:"gateway"`
	Sensor  string   `json:"sensor"`
	Metric  string   `json:"metric"`
	TS      string   `json:"ts"`
	TSNS    int64    `json:"ts_ns"`
	Value   *float64 `json:"value"`
	Unit    string   `json:"unit"`
	Quality string   `json:"quality"`
}

// MarshalJSON implements json.Marshaler.
func (p Point) MarshalJSON() ([]byte, error) {
	j := pointJSON{
		Gateway: p.Gateway,
		Sensor:  p.Sensor,
		Metric:  p.Metric,
		TS:      time.Unix(0, p.TS).UTC().Format(time.RFC3339Nano),
		TSNS:    p.TS,
		Unit:    p.Unit,
		Quality: p.Quality.String(),
	}
	if !math.IsNaN(p.Value) && !math.IsInf(p.Value, 0) {
		v := p.Value
		j.Value = &v
	}
	return json.Marshal(j)
}

// UnmarshalJSON implements json.Unmarshaler; a null value reads as NaN.
func (p *Point) UnmarshalJSON(b []byte) error {
	var j pointJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	ts, err := time.Parse(time.RFC3339Nano, j.TS)
	if err != nil {
		return fmt.Errorf("ingest: point ts: %w", err)
	}
	q, ok := parseQuality(j.Quality)
	if !ok {
		return fmt.Errorf("ingest: point quality %q", j.Quality)
	}
	*p = Point{Gateway: j.Gateway, Sensor: j.Sensor, Metric: j.Metric, TS: ts.UnixNano(), Value: math.NaN(), Unit: j.Unit, Quality: q}
	if j.Value != nil {
		p.Value = *j.Value
	}
	return nil
}

func parseQuality(s string) (outpost.Quality, bool) {
	for q := outpost.QualityGood; q <= outpost.QualityBad; q++ {
		if q.String() == s {
			return q, true
		}
	}
	if n, err := strconv.ParseUint(s, 10, 8); err == nil && outpost.Quality(n) <= outpost.QualityBad {
		return outpost.Quality(n), true
	}
	return 0, false
}

// RetentionSpan is the unit of retention: what a store drops is whole
// spans of this length counted from the Unix epoch (PostgreSQL's
// partitions), so it keeps up to one span more than the retention. A week,
// as TimescaleDB's default chunk: daily partitions would make thousands of
// tables of a backlog or a backfill that covers years.
const RetentionSpan = 7 * 24 * time.Hour

// Horizon is where a retention of keep (> 0) cuts at now (unix ns): the
// start of the span that holds now minus keep. What is dated before it
// goes.
func Horizon(now int64, keep time.Duration) int64 {
	h, span := now-int64(keep), int64(RetentionSpan)
	r := h % span
	if r < 0 {
		r += span
	}
	return h - r
}

// Retention is how long a store keeps what it holds, in ns; 0 keeps it
// for ever. Raw covers the readings, alerts, gaps, dead letters and the
// dedup ledger; Minute the minute rollups. The hour rollups are kept for
// ever.
type Retention struct {
	Raw, Minute int64
}

// Maintainer is a Store that manages its own storage over time
// (docs/storage.md, "Partitions and retention").
type Maintainer interface {
	// Maintain prepares the storage for the days ahead of now (unix ns)
	// and drops what is older than the retention; a CommandStore also
	// deletes its final commands older than CommandRetention. Among
	// processes sharing a database one drops at a time; the others'
	// Leader is false.
	Maintain(ctx context.Context, now int64, r Retention) (MaintainStats, error)
}

// MaintainStats is what one Maintain did.
type MaintainStats struct {
	Leader  bool  // this process dropped what was due (always, in SQLite)
	Dropped int64 // partitions dropped (PostgreSQL)
	Rows    int64 // rows deleted, commands included
}
