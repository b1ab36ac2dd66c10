package outpost

// The wire types. Alert, Loss and Ack are encoded by msgp as MessagePack
// arrays (msgp "tuple"), fields in declaration order. Batch and Series are
// encoded by hand (codec.go): version 2 is columnar with scaled integers
// and delta-of-delta timestamps; version 1, which gateways in the field
// still hold in their outboxes, is the msgp tuple of batchV1.
// docs/wire-format.md is the normative description. Append fields only at
// the end, and bump the version for anything that changes meaning.

//msgp:tuple batchV1 seriesV1 alertV1 Alert Ack Loss
//msgp:limit arrays:1048576 maps:1024
//msgp:ignore Batch Series Reading SeriesKey

// WireVersion is the version of the batch encoding the encoders write.
// DecodeBatch reads versions 1 and 2.
const WireVersion = 2

// AckVersion is the version of the ack encoding.
const AckVersion = 1

// AlertState is where an alert instance is in its life.
type AlertState uint8

const (
	StateInactive AlertState = 0
	StatePending  AlertState = 1
	StateFiring   AlertState = 2
	StateResolved AlertState = 3
	StateNoData   AlertState = 4
)

// Kind says what a batch carries.
type Kind uint8

const (
	KindTelemetry Kind = 0
	KindAlert     Kind = 1
	// KindLoss batches carry loss records: what the gateway had to drop.
	// They travel in the alert lane.
	KindLoss Kind = 2
)

// Batch flag bits.
const (
	// FlagHistorical marks a batch sent from backlog after an outage.
	FlagHistorical uint8 = 1 << 0
	// FlagZstd marks a version 2 batch whose body is a zstd frame. It
	// exists on the wire only: the encoder sets it per message as its
	// options say, the decoder clears it.
	FlagZstd uint8 = 1 << 1
)

// Batch is the unit of storage in the outbox and of transfer to the cloud.
// (Gateway, Epoch, Seq) identifies it end to end and is the dedup key.
type Batch struct {
	Version uint8  // wire version it was decoded from; encoders write WireVersion
	Kind    Kind   // KindTelemetry or KindAlert
	Flags   uint8  // Flag* bits
	Gateway string // gateway id
	Epoch   uint64 // random, fixed for the life of one outbox file
	Seq     uint64 // per epoch, from 1, never reused
	Created int64  // unix ns when the batch was sealed

	Series []Series // telemetry, grouped per series (Kind == KindTelemetry)
	Alerts []Alert  // alert transitions (Kind == KindAlert)
	Losses []Loss   // loss records (Kind == KindLoss)
}

// Series is the readings of one series within a batch, in columnar form.
type Series struct {
	Sensor string
	Metric string
	Unit   string
	// TS holds timestamps in unix ns, delta-encoded: TS[0] is absolute,
	// TS[i] is the difference to the previous timestamp.
	TS     []int64
	Values []float64
	// Quality is empty when every reading is good, else one byte per reading.
	Quality []byte
}

// Alert is one transition of one alert instance.
type Alert struct {
	Rule        string
	Fingerprint string // rule name plus group labels, stable across restarts
	State       AlertState
	Severity    string
	Value       float64
	Labels      map[string]string
	Message     string
	StartedAt   int64  // unix ns when the instance entered pending/firing
	ChangedAt   int64  // unix ns of this transition (of a repeat: when it was sent)
	Seq         uint64 // gateway alert sequence, increases by one per alert
	// Annotations are the rule's annotations, rendered (e.g. summary,
	// runbook). Version 2 only: an alert decoded from version 1 has none.
	// The decoder refuses more than MaxAlertAnnotations (the tag's limit).
	Annotations map[string]string `msg:"annotations,limit=64"`
}

// Loss records data the gateway dropped before it could be delivered, so
// that a gap in the cloud is known to be a gap. One record covers one
// series (or, for alerts, one rule) and one reason.
type Loss struct {
	Reason   string // LossMaxBytes, LossMaxAge, LossMaxBatches, LossCorrupt, …
	Kind     Kind   // what was lost: KindTelemetry readings or KindAlert alerts
	Sensor   string // telemetry: the series; empty for alerts
	Metric   string
	Rule     string // alerts: the rule; empty for telemetry
	From, To int64  // unix ns of the first and last lost reading or alert
	Count    uint64 // readings or alerts lost
	Epoch    uint64 // the epoch of the dropped batches
	FirstSeq uint64 // the seq range of the dropped batches
	LastSeq  uint64
	At       int64 // unix ns when the gateway dropped them
}

// Loss reasons.
const (
	LossMaxBytes   = "max_bytes"   // the outbox's byte cap
	LossMaxAge     = "max_age"     // older than the outbox's age cap
	LossMaxBatches = "max_batches" // the outbox's batch count cap
	LossCorrupt    = "corrupt"     // a stored batch failed its checksum
)

// Ack is the ingest service's word that batches are committed. The gateway
// deletes a stored batch only when an ack names it.
type Ack struct {
	Version uint8
	Epoch   uint64
	Seqs    []uint64 // committed (or already present) batch seqs of Epoch
}

// batchV1, seriesV1 and alertV1 are the version 1 encoding of Batch,
// Series and Alert: the same fields (Alert without Annotations), a plain
// msgp tuple.
type batchV1 struct {
	Version uint8
	Kind    Kind
	Flags   uint8
	Gateway string
	Epoch   uint64
	Seq     uint64
	Created int64
	Series  []seriesV1
	Alerts  []alertV1
	Losses  []Loss
}

// alertV1 is the version 1 Alert: the fields before Annotations.
type alertV1 struct {
	Rule        string
	Fingerprint string
	State       AlertState
	Severity    string
	Value       float64
	Labels      map[string]string
	Message     string
	StartedAt   int64
	ChangedAt   int64
	Seq         uint64
}

type seriesV1 struct {
	Sensor  string
	Metric  string
	Unit    string
	TS      []int64
	Values  []float64
	Quality []byte
}
