-- The schema of ingest/postgres as release 0.x (row layout, version 1) created it,
-- for the migration test: a database filled by that release.
CREATE TABLE IF NOT EXISTS readings (
	gateway text NOT NULL,
	sensor  text NOT NULL,
	metric  text NOT NULL,
	ts      bigint NOT NULL,
	value   double precision NOT NULL,
	quality smallint NOT NULL
);
CREATE INDEX IF NOT EXISTS readings_series_ts ON readings (gateway, sensor, metric, ts);
COMMENT ON COLUMN readings.ts IS 'unix nanoseconds, UTC';
COMMENT ON COLUMN readings.quality IS '0 good, 1 uncertain, 2 bad';

CREATE TABLE IF NOT EXISTS latest (
	gateway text NOT NULL,
	sensor  text NOT NULL,
	metric  text NOT NULL,
	ts      bigint NOT NULL,
	value   double precision NOT NULL,
	quality smallint NOT NULL,
	PRIMARY KEY (gateway, sensor, metric)
);
COMMENT ON TABLE latest IS 'newest reading per series, kept by each commit';

CREATE TABLE IF NOT EXISTS alerts (
	gateway     text NOT NULL,
	rule        text NOT NULL,
	fingerprint text NOT NULL,
	state       text NOT NULL,
	severity    text NOT NULL,
	value       double precision NOT NULL,
	labels      jsonb NOT NULL,
	message     text NOT NULL,
	started_at  bigint NOT NULL,
	ts          bigint NOT NULL,
	seq         bigint NOT NULL,
	annotations jsonb NOT NULL DEFAULT '{}'
);
-- Migration: annotations came with wire version 2; older tables lack it
-- (their rows read back {}).
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS annotations jsonb NOT NULL DEFAULT '{}';
CREATE INDEX IF NOT EXISTS alerts_gateway_ts ON alerts (gateway, ts);
COMMENT ON COLUMN alerts.ts IS 'unix nanoseconds of the transition, UTC';
COMMENT ON COLUMN alerts.started_at IS 'unix nanoseconds, UTC';
COMMENT ON COLUMN alerts.seq IS 'gateway alert sequence; uint64 stored as its int64 bit pattern';
COMMENT ON COLUMN alerts.annotations IS 'the rule''s rendered annotations, a JSON object; {} when none';

CREATE TABLE IF NOT EXISTS batches (
	gateway     text NOT NULL,
	epoch       bigint NOT NULL,
	seq         bigint NOT NULL,
	received_at bigint NOT NULL,
	n           integer NOT NULL,
	kind        text NOT NULL,
	bytes       integer NOT NULL,
	PRIMARY KEY (gateway, epoch, seq)
);
COMMENT ON COLUMN batches.epoch IS 'uint64 stored as its int64 bit pattern';
COMMENT ON COLUMN batches.seq IS 'uint64 stored as its int64 bit pattern';
COMMENT ON COLUMN batches.received_at IS 'unix nanoseconds, UTC';

CREATE TABLE IF NOT EXISTS dead_letters (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	topic       text NOT NULL,
	received_at bigint NOT NULL,
	reason      text NOT NULL,
	payload     bytea NOT NULL
);
COMMENT ON COLUMN dead_letters.received_at IS 'unix nanoseconds, UTC';

CREATE TABLE IF NOT EXISTS gateways (
	gateway    text PRIMARY KEY,
	state      text NOT NULL,
	updated_at bigint NOT NULL,
	payload    jsonb NOT NULL
);
COMMENT ON COLUMN gateways.updated_at IS 'unix nanoseconds of the status (its ts, else when received), UTC';

CREATE TABLE IF NOT EXISTS gaps (
	gateway     text NOT NULL,
	epoch       bigint NOT NULL,
	seq         bigint NOT NULL,
	idx         integer NOT NULL,
	reason      text NOT NULL,
	kind        text NOT NULL,
	sensor      text NOT NULL,
	metric      text NOT NULL,
	rule        text NOT NULL,
	from_ts     bigint NOT NULL,
	to_ts       bigint NOT NULL,
	count       bigint NOT NULL,
	lost_epoch  bigint NOT NULL,
	first_seq   bigint NOT NULL,
	last_seq    bigint NOT NULL,
	dropped_at  bigint NOT NULL,
	received_at bigint NOT NULL,
	PRIMARY KEY (gateway, epoch, seq, idx)
);
CREATE INDEX IF NOT EXISTS gaps_series_from ON gaps (gateway, sensor, metric, from_ts);
COMMENT ON TABLE gaps IS 'loss records: data a gateway dropped before delivery; (gateway, epoch, seq) is the loss batch, idx the record in it';
COMMENT ON COLUMN gaps.epoch IS 'the loss batch; uint64 stored as its int64 bit pattern';
COMMENT ON COLUMN gaps.seq IS 'the loss batch; uint64 stored as its int64 bit pattern';
COMMENT ON COLUMN gaps.kind IS 'what was lost: telemetry (readings of sensor/metric) or alert (alerts of rule)';
COMMENT ON COLUMN gaps.from_ts IS 'unix nanoseconds of the first lost reading or alert, UTC; 0 unknown';
COMMENT ON COLUMN gaps.to_ts IS 'unix nanoseconds of the last lost reading or alert, UTC; 0 unknown';
COMMENT ON COLUMN gaps.count IS 'readings or alerts lost; 0 unknown';
COMMENT ON COLUMN gaps.lost_epoch IS 'epoch of the dropped batches; uint64 stored as its int64 bit pattern';
COMMENT ON COLUMN gaps.first_seq IS 'seq range of the dropped batches; uint64 stored as its int64 bit pattern';
COMMENT ON COLUMN gaps.last_seq IS 'seq range of the dropped batches; uint64 stored as its int64 bit pattern';
COMMENT ON COLUMN gaps.dropped_at IS 'unix nanoseconds when the gateway dropped the data, UTC';
COMMENT ON COLUMN gaps.received_at IS 'unix nanoseconds when the loss batch was committed, UTC';

