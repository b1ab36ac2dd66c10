package sqlite

// schemaVersion is the layout this code writes: 1 was a row per reading
// (readings and latest tables), 2 series chunks (docs/storage.md), 3
// series chunks with rollups and the ledger's batch times.
const schemaVersion = 3

// schema creates the tables of the ingest contract (see package ingest).
// Every statement is idempotent. STRICT tables enforce the column types.
// Times are INTEGER unix nanoseconds; uint64 epoch/seq are stored as the
// same bit pattern in INTEGER (int64); a NaN value is NULL, except in
// chunks, which hold it exactly.
var schema = `
-- 3: series chunks, rollups, the ledger keyed by creation time too;
-- legacy_until: when an older ledger was rebuilt (see ledgerV3).
CREATE TABLE IF NOT EXISTS outpost_schema (version INTEGER NOT NULL, legacy_until INTEGER) STRICT;

CREATE TABLE IF NOT EXISTS series (
	id           INTEGER PRIMARY KEY,
	gateway      TEXT NOT NULL,
	sensor       TEXT NOT NULL,
	metric       TEXT NOT NULL,
	unit         TEXT NOT NULL DEFAULT '',
	labels       TEXT NOT NULL DEFAULT '{}', -- JSON object
	first_ts     INTEGER, -- unix ns of its oldest reading; NULL before the first
	last_ts      INTEGER, -- unix ns of its newest reading; NULL before the first
	last_value   REAL,    -- NULL: NaN (or no reading yet)
	last_quality INTEGER,
	UNIQUE (gateway, sensor, metric)
) STRICT;

-- The readings of one series within one UTC hour, in the format of
-- ingest/internal/chunk; t_min and t_max are its first and last times.
CREATE TABLE IF NOT EXISTS chunks (
	series_id INTEGER NOT NULL,
	t_min     INTEGER NOT NULL,
	t_max     INTEGER NOT NULL,
	n         INTEGER NOT NULL,
	data      BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS chunks_series_t ON chunks (series_id, t_min, t_max);

-- Readings of series with too few in a batch for a chunk.
CREATE TABLE IF NOT EXISTS recent (
	series_id INTEGER NOT NULL,
	ts        INTEGER NOT NULL,
	value     REAL,             -- NULL: NaN
	quality   INTEGER NOT NULL  -- 0 good, 1 uncertain, 2 bad
) STRICT;
CREATE INDEX IF NOT EXISTS recent_series_ts ON recent (series_id, ts);

-- Windows that got chunks since the compactor last folded them: their
-- rollups are not current.
CREATE TABLE IF NOT EXISTS pending (
	series_id INTEGER NOT NULL,
	win       INTEGER NOT NULL,
	PRIMARY KEY (series_id, win)
) STRICT, WITHOUT ROWID;

-- Per series and minute (only of hours with 30 000 readings or more)
-- and per hour (of hours with 240 or more): readings (n), those aggregated (count: not bad, not NaN),
-- their min, max, sum and newest (NULL when count is 0).
` + rollupTable("rollup_1m") + `
` + rollupTable("rollup_1h") + `

-- Made anew at every open: a file of an earlier release has it without
-- unit (SQLite has no CREATE OR REPLACE VIEW).
DROP VIEW IF EXISTS latest;
CREATE VIEW latest AS
	SELECT gateway, sensor, metric, last_ts AS ts, last_value AS value, last_quality AS quality, unit
	FROM series WHERE last_ts IS NOT NULL;

-- The decoder of chunks, a table-valued function of Go code (unpack.go):
-- only a process that links this package has it.
CREATE VIRTUAL TABLE IF NOT EXISTS ` + unpackName + ` USING ` + unpackName + `;

CREATE VIEW IF NOT EXISTS readings AS
	SELECT s.gateway, s.sensor, s.metric, u.ts, u.value, u.quality
	FROM chunks c JOIN series s ON s.id = c.series_id CROSS JOIN ` + unpackName + `(c.data) u
	UNION ALL
	SELECT s.gateway, s.sensor, s.metric, r.ts, r.value, r.quality
	FROM recent r JOIN series s ON s.id = r.series_id;

CREATE TABLE IF NOT EXISTS alerts (
	gateway     TEXT NOT NULL,
	rule        TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	state       TEXT NOT NULL,
	severity    TEXT NOT NULL,
	value       REAL,
	labels      TEXT NOT NULL, -- JSON object
	message     TEXT NOT NULL,
	started_at  INTEGER NOT NULL,
	ts          INTEGER NOT NULL,
	seq         INTEGER NOT NULL, -- uint64 as int64 bits
	annotations TEXT NOT NULL DEFAULT '{}' -- JSON object; added by migrate to older files
) STRICT;
CREATE INDEX IF NOT EXISTS alerts_gateway_ts ON alerts (gateway, ts);
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts); -- /api/v1/alerts of every gateway
-- /api/v1/alerts/active: each instance's newest transition, a seek each.
-- Made at the open of a file from before it (every statement here runs
-- at each open).
CREATE INDEX IF NOT EXISTS alerts_instance ON alerts (gateway, fingerprint, ts, seq);

` + ledgerTable + `

CREATE TABLE IF NOT EXISTS dead_letters (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	topic       TEXT NOT NULL,
	received_at INTEGER NOT NULL,
	reason      TEXT NOT NULL,
	payload     BLOB NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS gateways (
	gateway    TEXT PRIMARY KEY,
	state      TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	payload    TEXT NOT NULL -- the status JSON
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS gaps (
	gateway     TEXT NOT NULL,
	epoch       INTEGER NOT NULL, -- the loss batch; uint64 as int64 bits
	seq         INTEGER NOT NULL, -- the loss batch; uint64 as int64 bits
	idx         INTEGER NOT NULL, -- the record's index in the loss batch
	reason      TEXT NOT NULL,
	kind        TEXT NOT NULL,    -- what was lost: telemetry or alert
	sensor      TEXT NOT NULL,
	metric      TEXT NOT NULL,
	rule        TEXT NOT NULL,
	from_ts     INTEGER NOT NULL, -- unix ns; 0 unknown
	to_ts       INTEGER NOT NULL, -- unix ns; 0 unknown
	count       INTEGER NOT NULL, -- 0 unknown
	lost_epoch  INTEGER NOT NULL, -- uint64 as int64 bits
	first_seq   INTEGER NOT NULL, -- uint64 as int64 bits
	last_seq    INTEGER NOT NULL, -- uint64 as int64 bits
	dropped_at  INTEGER NOT NULL, -- unix ns
	received_at INTEGER NOT NULL, -- unix ns
	PRIMARY KEY (gateway, epoch, seq, idx)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gaps_series_from ON gaps (gateway, sensor, metric, from_ts);

-- Every command sent to a gateway, and those waiting for it to come
-- online (ingest.CommandStore; docs/storage.md, "Commands"). Made at the
-- open of a file from before it.
CREATE TABLE IF NOT EXISTS commands (
	id         TEXT NOT NULL PRIMARY KEY,
	gateway    TEXT NOT NULL,
	name       TEXT NOT NULL,
	sender     TEXT NOT NULL,
	push       TEXT NOT NULL,    -- the fleet push; '' for none
	body       BLOB NOT NULL,    -- MessagePack; may be empty
	created_at INTEGER NOT NULL, -- unix ns
	expires_at INTEGER NOT NULL, -- unix ns
	state      TEXT NOT NULL,    -- queued, sent, lapsed, or the reply's status
	attempts   INTEGER NOT NULL,
	sent_at    INTEGER,          -- unix ns of the last publish; NULL if never sent
	replied_at INTEGER,          -- unix ns; NULL without a reply
	reply_ts   INTEGER,          -- unix ns by the gateway's clock; NULL without one
	reply      BLOB,             -- MessagePack; NULL without a reply
	error      TEXT NOT NULL     -- the reply's error, or why it lapsed; '' for none
) STRICT;
-- /api/v1/commands, newest first: of every gateway, of one, of one push.
CREATE INDEX IF NOT EXISTS commands_created ON commands (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS commands_gateway_created ON commands (gateway, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS commands_push_created ON commands (push, created_at DESC, id DESC);
-- The commands not final only: a gateway's to send, oldest first; those
-- to lapse. The queries name the predicate as it is written here.
CREATE INDEX IF NOT EXISTS commands_pending ON commands (gateway, created_at, id) WHERE state IN ('queued', 'sent');
CREATE INDEX IF NOT EXISTS commands_expiring ON commands (expires_at) WHERE state IN ('queued', 'sent');

-- Each sensor's labels from its gateway's newest status, a sensor
-- without labels having no row: series.labels of the sensor's series,
-- and of those made later (docs/storage.md, "Sensor labels").
CREATE TABLE IF NOT EXISTS sensor_labels (
	gateway TEXT NOT NULL,
	sensor  TEXT NOT NULL,
	labels  TEXT NOT NULL, -- JSON object
	PRIMARY KEY (gateway, sensor)
) STRICT, WITHOUT ROWID;
`

// addedColumns are columns added to a table after its first release.
// CREATE TABLE IF NOT EXISTS leaves an older file's table as it was, so
// migrate adds those it lacks; each must have a default for the old rows.
var addedColumns = []struct{ table, column, def, fill string }{
	{"alerts", "annotations", "TEXT NOT NULL DEFAULT '{}'", ""}, // wire version 2
	{"outpost_schema", "legacy_until", "INTEGER", ""},
}

// ledgerTable is the dedup ledger: one row per batch stored, a batch
// known by its key and its creation time.
const ledgerTable = `CREATE TABLE IF NOT EXISTS batches (
	gateway     TEXT NOT NULL,
	epoch       INTEGER NOT NULL, -- uint64 as int64 bits
	seq         INTEGER NOT NULL, -- uint64 as int64 bits
	received_at INTEGER NOT NULL,
	n           INTEGER NOT NULL,
	kind        TEXT NOT NULL,
	bytes       INTEGER NOT NULL,
	created     INTEGER NOT NULL, -- unix ns when the gateway sealed it: every copy of a batch carries it
	PRIMARY KEY (gateway, epoch, seq, created)
) STRICT, WITHOUT ROWID;`

// rollupTable is the CREATE TABLE of a rollup table: both have the same
// columns.
func rollupTable(name string) string {
	return `CREATE TABLE IF NOT EXISTS ` + name + ` (
	series_id INTEGER NOT NULL,
	bucket    INTEGER NOT NULL,
	n         INTEGER NOT NULL,
	count     INTEGER NOT NULL,
	min       REAL,
	max       REAL,
	sum       REAL,
	last_ts   INTEGER NOT NULL,
	last      REAL,
	PRIMARY KEY (series_id, bucket)
) STRICT, WITHOUT ROWID;`
}
