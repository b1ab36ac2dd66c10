-- The schema of ingest/sqlite as the row-layout release (version 1) created it,
-- for the migration test: a file filled by that release.
CREATE TABLE IF NOT EXISTS readings (
	gateway TEXT NOT NULL,
	sensor  TEXT NOT NULL,
	metric  TEXT NOT NULL,
	ts      INTEGER NOT NULL, -- unix ns, UTC
	value   REAL,             -- NULL: NaN
	quality INTEGER NOT NULL  -- 0 good, 1 uncertain, 2 bad
) STRICT;
CREATE INDEX IF NOT EXISTS readings_series_ts ON readings (gateway, sensor, metric, ts);

CREATE TABLE IF NOT EXISTS latest (
	gateway TEXT NOT NULL,
	sensor  TEXT NOT NULL,
	metric  TEXT NOT NULL,
	ts      INTEGER NOT NULL,
	value   REAL,
	quality INTEGER NOT NULL,
	PRIMARY KEY (gateway, sensor, metric)
) STRICT, WITHOUT ROWID;

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

CREATE TABLE IF NOT EXISTS batches (
	gateway     TEXT NOT NULL,
	epoch       INTEGER NOT NULL, -- uint64 as int64 bits
	seq         INTEGER NOT NULL, -- uint64 as int64 bits
	received_at INTEGER NOT NULL,
	n           INTEGER NOT NULL,
	kind        TEXT NOT NULL,
	bytes       INTEGER NOT NULL,
	PRIMARY KEY (gateway, epoch, seq)
) STRICT, WITHOUT ROWID;

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
