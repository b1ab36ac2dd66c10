// Package config holds the gateway's configuration: the YAML schema as Go
// types, their defaults, and validation that reports every problem in a
// file at once, each as file:line:col: message.
//
// Load (or Parse) reads a file strictly: an unknown field, a value of the
// wrong type or a bad duration is an error with its position, and so is
// every semantic problem found afterwards. Durations are written like
// 500ms, 1s or 10m. examples/gateway.yaml is a complete, commented file.
//
// Any value may name environment variables, ${NAME} or ${NAME:-default},
// so that a fleet can share one file (see Load).
//
// Relative paths in the file (data_dir, rules.files) are resolved against
// the directory of the config file, so a gateway behaves the same whatever
// its working directory.
//
// The command line may override a few values (broker, data directory,
// gateway id): LoadOptions.Overrides applies them before validation, and
// errors about them name their flag. Validate checks a config changed or
// built in code; its errors carry no position.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Defaults for fields the file leaves out.
const (
	DefaultDataDir        = "./data"
	DefaultLogLevel       = "info"
	DefaultLogFormat      = LogFormatAuto
	DefaultShutdownGrace  = 5 * time.Second
	DefaultInterval       = time.Second
	DefaultSamples        = 1
	DefaultBusQueue       = 256
	DefaultBusPolicy      = PolicyBlock
	DefaultBatchReadings  = 1000
	DefaultBatchInterval  = time.Second
	DefaultBatchMaxDelay  = 30 * time.Second
	DefaultBufferBatches  = 1_000_000
	DefaultBufferBytes    = ByteSize(1 << 30)
	DefaultBufferAge      = 7 * 24 * time.Hour
	DefaultTopicPrefix    = "outpost/v1"
	DefaultWindow         = 16
	DefaultAckTimeout     = 10 * time.Second
	DefaultAckMode        = AckIngest
	DefaultKeepAlive      = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultCompression    = CompressionZstd
	DefaultMessageBytes   = ByteSize(128 << 10)
	DefaultBackoffInitial = time.Second
	DefaultBackoffMax     = time.Minute
	DefaultLiveInterval   = time.Second
	DefaultStatusInterval = 5 * time.Minute
)

// MinStatusInterval bounds uplink.status_interval from below (0 aside):
// a status document costs some 550 bytes, 40 s of a small gateway's
// telemetry, and a metered link should not pay for it more often than
// its health can usefully change (changes go out within 10 s anyway).
const MinStatusInterval = 10 * time.Second

// Log formats.
const (
	LogFormatAuto    = "auto"    // console on a terminal, JSON otherwise (files, journald)
	LogFormatConsole = "console" // human-readable lines, coloured on a terminal
	LogFormatJSON    = "json"    // one JSON object per line
)

// MaxBatchDelay bounds batch.max_delay.
const MaxBatchDelay = 10 * time.Minute

// MaxShutdownGrace bounds shutdown_grace: a service manager's stop timeout
// (systemd's TimeoutStopSec, 90 s by default) must not run out first.
const MaxShutdownGrace = time.Minute

// Batch compression.
const (
	CompressionZstd = "zstd" // zstd over the columnar batch (the default)
	CompressionNone = "none" // columnar encoding only
)

// SimDriver is the driver name of simulated sensors, whose metrics need a
// Signal.
const SimDriver = "sim"

// Bus policies: what the bus does when a receiver's queue is full.
const (
	PolicyBlock = "block" // the emitter waits: nothing is lost, sensors may fall behind
	PolicyDrop  = "drop"  // the reading slice is dropped for that receiver and counted
)

// Uplink ack modes: when the gateway may delete a sent batch.
const (
	AckIngest = "ingest" // when the ingest service acks it as committed (the safe default)
	AckBroker = "broker" // on the broker's PUBACK, for setups without an ingest service
)

// Uplink auth modes: whether batches are signed with the gateway's key,
// and which acks may delete them (docs/security.md).
const (
	AuthRequired = "required" // sign; delete only on an ack whose MAC verifies (the default with a key file)
	AuthOptional = "optional" // sign; delete on a verified ack, or on an unsigned one
	AuthOff      = "off"      // sign nothing, check no ack (the default without a key file)
)

// Signal kinds for simulated sensors.
const (
	SignalConstant   = "constant"
	SignalSine       = "sine"
	SignalRamp       = "ramp"
	SignalRandomWalk = "random_walk"
	SignalStep       = "step"
	SignalReplay     = "replay"
)

// Config is the whole gateway configuration. Load returns it with
// defaults applied and relative paths resolved.
type Config struct {
	// Path is the file the config was read from ("" when built in code).
	Path string `yaml:"-"`

	Gateway GatewayConfig `yaml:"gateway"`
	// DataDir holds the buffer and other state. Default "./data",
	// relative to the config file's directory; Load stores the resolved path.
	DataDir string `yaml:"data_dir"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// LogFormat is auto, console or json. Default auto: console on a
	// terminal, JSON otherwise.
	LogFormat string `yaml:"log_format"`
	// ShutdownGrace is how long a graceful stop (SIGTERM, SIGINT) keeps the
	// uplink running to deliver what is stored and collect its acks,
	// after the sensors stop and the open batch is sealed; 0 to
	// MaxShutdownGrace, default 5s (nil). A second signal ends it at once.
	ShutdownGrace *time.Duration `yaml:"shutdown_grace"`
	// Sensors to poll; at least one.
	Sensors []Sensor     `yaml:"sensors"`
	Bus     BusConfig    `yaml:"bus"`
	Batch   BatchConfig  `yaml:"batch"`
	Buffer  BufferConfig `yaml:"buffer"`
	Uplink  UplinkConfig `yaml:"uplink"`
	Rules   RulesConfig  `yaml:"rules"`
	// Dashboard configures the retained live and alert topics.
	Dashboard DashboardConfig `yaml:"dashboard"`
	// Metrics configures the /metrics and /healthz listener; off by default.
	Metrics MetricsConfig `yaml:"metrics"`
	// Clock says when the wall clock is trusted (docs/clock.md).
	Clock ClockConfig `yaml:"clock"`
}

// GatewayConfig identifies the gateway.
type GatewayConfig struct {
	// ID names the gateway; required, 1 to 64 of [A-Za-z0-9_.-]. It becomes
	// an MQTT topic level, so it may hold no '/', '+' or '#'.
	ID string `yaml:"id"`
	// Labels are free key/value pairs describing the gateway (its site,
	// its rollout ring), by which a fleet is told apart; optional. The
	// same bounds as a sensor's labels: at most outpost.MaxSensorLabels,
	// names of 1 to outpost.MaxLabelNameLen bytes, values of at most
	// outpost.MaxLabelValueLen bytes, without NUL. The gateway's status
	// document carries them to the ingest service ("labels").
	Labels map[string]string `yaml:"labels"`
}

// Sensor is one device the gateway polls.
type Sensor struct {
	// ID names the sensor; required, unique, same characters as the gateway id.
	ID string `yaml:"id"`
	// Driver names the driver in the gateway's registry (e.g. "sim",
	// "bme280"); required. Config checks only that it is set, and that
	// the metrics of a SimDriver sensor have a signal: the gateway checks
	// the name against its registry.
	Driver string `yaml:"driver"`
	// Interval between polls; > 0, default 1s.
	Interval time.Duration `yaml:"interval"`
	// Samples is how many readings per metric one poll yields (a sensor
	// FIFO burst); 1 to 100000, default 1.
	Samples int `yaml:"samples"`
	// Labels are free key/value pairs describing the sensor; optional.
	// At most outpost.MaxSensorLabels, names of 1 to
	// outpost.MaxLabelNameLen bytes, values of at most
	// outpost.MaxLabelValueLen bytes, without NUL. The gateway's status
	// document carries them to the ingest service, which labels the
	// sensor's series with them.
	Labels map[string]string `yaml:"labels"`
	// Metrics the sensor yields, names unique in the sensor. The sim
	// driver needs at least one, each with a signal. bme280, bmp280 and
	// ds18b20 have fixed metrics: listing some selects them. gpio and
	// ads1115 have one output, which a single metric names.
	Metrics []Metric `yaml:"metrics"`
	// Bus the device sits on (built-in drivers but sim): a simulated bus
	// "sim-<name>", or a host bus: "1" (/dev/i2c-1) for I2C, "w1" for the
	// kernel's first 1-Wire master, "host" for GPIO pins.
	Bus string `yaml:"bus"`
	// Address on the bus: an I2C address ("0x76"; default 0x76 for
	// bme280/bmp280, 0x48 for ads1115), a DS18B20 ROM id
	// ("28-00000abcdef0", required) or a GPIO pin ("GPIO17", required).
	Address string `yaml:"address"`
	// Options specific to the driver.
	Options DriverOptions `yaml:"options"`
	// Supervision tunes retries, health events and quality checks.
	Supervision Supervision `yaml:"supervision"`
	// Sim is the scenario of the simulated chip, on a sim- bus only;
	// without it the chip measures its defaults.
	Sim *SimChip `yaml:"sim"`
}

// Metric is one quantity a sensor measures.
type Metric struct {
	// Name of the metric, e.g. "temperature"; required, same characters
	// as ids.
	Name string `yaml:"name"`
	// Unit is the UCUM/SI unit symbol, e.g. "Cel", "%RH", "Pa"; optional.
	Unit string `yaml:"unit"`
	// Signal describes the simulated values; required for the sim driver,
	// ignored by others. Kind "" means none.
	Signal Signal `yaml:"signal"`
}

// Signal describes a simulated metric: a shape chosen by Kind, plus
// uniform noise, then quantized to Resolution like a real sensor. Time t
// counts from when the signal starts (the sensor's first poll).
//
//	constant:    Value
//	sine:        Base + Amplitude·sin(2π·t/Period)
//	ramp:        Base + Slope·t (t in seconds)
//	random_walk: starts at Base, moves by up to ±Step per sample,
//	             clamped to [Min, Max] when they are set
//	step:        Base until t = Period, then Value
//	replay:      the Column of the CSV File (a recording such as
//	             testdata/occupancy/), at the pace it was recorded,
//	             looping at its end
type Signal struct {
	// Kind is constant, sine, ramp, random_walk, step or replay; required
	// when any other signal field is set.
	Kind string `yaml:"kind"`
	// File and Column name the recording a replay plays; File is relative
	// to the config file's directory.
	File   string `yaml:"file"`
	Column string `yaml:"column"`
	// Value is the constant's value, and step's second level.
	Value float64 `yaml:"value"`
	// Base is the sine's center, the ramp's and random walk's start, and
	// step's first level.
	Base float64 `yaml:"base"`
	// Amplitude of the sine.
	Amplitude float64 `yaml:"amplitude"`
	// Period of the sine, and the time of the step; > 0 for those kinds.
	Period time.Duration `yaml:"period"`
	// Slope of the ramp, in units per second.
	Slope float64 `yaml:"slope"`
	// Step is the random walk's largest move per sample; >= 0.
	Step float64 `yaml:"step"`
	// Min and Max clamp the random walk when HasMin and HasMax say they
	// are set; optional.
	Min float64 `yaml:"min"`
	Max float64 `yaml:"max"`
	// HasMin and HasMax say whether Min and Max were given. Load sets
	// them from the file; set them yourself in code.
	HasMin bool `yaml:"-"`
	HasMax bool `yaml:"-"`
	// Noise is the amplitude of uniform noise added to any kind; >= 0.
	Noise float64 `yaml:"noise"`
	// Seed makes the noise and the random walk deterministic.
	Seed int64 `yaml:"seed"`
	// Resolution quantizes values to multiples of it; >= 0, 0 means none.
	Resolution float64 `yaml:"resolution"`
}

// BusConfig sizes the in-process event bus.
type BusConfig struct {
	// Queue is each receiver's queue length, in reading slices; 1 to
	// 1000000, default 256.
	Queue int `yaml:"queue"`
	// Policy when a receiver's queue is full: block or drop. Default block.
	Policy string `yaml:"policy"`
}

// BatchConfig says when the batcher seals a batch: when it holds
// MaxReadings readings or Interval has passed, whichever comes first.
type BatchConfig struct {
	// MaxReadings per batch; 1 to 1000000, default 1000.
	MaxReadings int `yaml:"max_readings"`
	// Interval is the flush interval; > 0, default 1s.
	Interval time.Duration `yaml:"interval"`
	// MaxDelay, when longer than Interval, lets a batch stay open until
	// its first reading has waited that long (or it holds MaxReadings):
	// at each interval its readings are written to the outbox instead of
	// being sealed, so a low-rate gateway sends fewer, larger batches
	// and loses no more at a power cut. Alerts and the live topics do
	// not wait. Up to MaxBatchDelay; 0 takes the default, 30s; at most
	// Interval seals a batch at every interval.
	MaxDelay time.Duration `yaml:"max_delay"`
	// Compression of sealed batches: zstd or none; default zstd. It applies
	// on top of the columnar encoding, to what is stored and sent.
	Compression string `yaml:"compression"`
}

// BufferConfig caps the store-and-forward buffer on disk. When a cap is
// reached the oldest telemetry is evicted first, alerts last.
type BufferConfig struct {
	// MaxBatches stored; >= 1, default 1000000.
	MaxBatches int `yaml:"max_batches"`
	// MaxBytes of the buffer file; >= 1, default 1GiB. Written as a plain
	// number of bytes or with a unit: 512MiB, 1GiB, 10MB.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// MaxAge evicts batches older than this; > 0, default 168h (7 days).
	MaxAge time.Duration `yaml:"max_age"`
}

// UplinkConfig is the MQTT connection to the cloud.
type UplinkConfig struct {
	// Broker URL; required. Schemes: tcp, mqtt, ssl, tls, ws, wss.
	Broker string `yaml:"broker"`
	// ClientID for MQTT; "" means "outpost-" + gateway id (see
	// Config.ClientID, which applies that default).
	ClientID string `yaml:"client_id"`
	// TopicPrefix; topics are {prefix}/{gateway}/…. Default outpost/v1.
	// No wildcards, no empty levels.
	TopicPrefix string `yaml:"topic_prefix"`
	// Window is how many batches may be in flight unacked; 1 to 1024,
	// default 16.
	Window int `yaml:"window"`
	// AckTimeout after which unacked batches are resent; > 0, default 10s.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// Ack is ingest or broker; default ingest.
	Ack string `yaml:"ack"`
	// KeepAlive is the MQTT keepalive; 0 (off) to 65535s, default 30s.
	KeepAlive time.Duration `yaml:"keepalive"`
	// ConnectTimeout bounds one connection attempt; > 0, default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// Username for the broker; optional.
	Username string `yaml:"username"`
	// PasswordEnv names the environment variable that holds the broker
	// password; optional. The password itself never goes in the file.
	PasswordEnv string `yaml:"password_env"`
	// PasswordFile is a file whose content (one trailing newline removed)
	// is the broker password, e.g. a mounted secret; optional, not with
	// PasswordEnv. Relative to the config file's directory.
	PasswordFile string `yaml:"password_file"`
	// TLS for ssl://, tls:// and wss:// brokers; optional.
	TLS TLSConfig `yaml:"tls"`
	// AuthKeyFile holds the gateway's key, with which it signs its
	// batches and checks the acks for them: 64 hex digits, readable by
	// the gateway's user only. Created (0600) at the first start when
	// it does not exist, in the data dir or a directory that exists.
	// Unlike the other files, a relative path is relative to DataDir:
	// the key is the gateway's state, like its outbox, and follows
	// --data-dir (Config.AuthKeyPath). Optional.
	AuthKeyFile string `yaml:"auth_key_file"`
	// Commands turns on remote commands (docs/commands.md): the gateway
	// subscribes to {prefix}/{gateway}/cmd/+ and answers on
	// {prefix}/{gateway}/reply/{id}. With a key (AuthKeyFile, Auth not
	// off) it runs only the requests signed with its key
	// (outpost-ingest command --auth-keys) and signs its replies;
	// without one, any client that may publish to cmd/# could run them,
	// and only the broker's ACL, letting the cloud's identity alone
	// publish there, protects them (docs/security.md). Off by default.
	Commands bool `yaml:"commands"`
	// Auth is required, optional or off; empty means required with an
	// AuthKeyFile and off without (see AuthMode). required and optional
	// sign every batch; required deletes a batch only on an ack whose
	// MAC verifies, optional also on an unsigned ack (until the ingest
	// service holds the key). off signs nothing and uses no key.
	Auth string `yaml:"auth"`
	// MaxMessageBytes caps one published batch; a batch that would be
	// larger is split when it is sealed. 1KiB to 256MiB, default 128KiB
	// (AWS IoT Core's limit; 5KB fits metered units of 5 KB).
	MaxMessageBytes ByteSize `yaml:"max_message_bytes"`
	// Backoff between connection attempts.
	Backoff BackoffConfig `yaml:"backoff"`
	// BacklogBandwidth limits, in bytes per second, how fast batches stored
	// before the current connection (the backlog after an outage) are sent;
	// fresh batches and alerts are not limited. 0 (the default) means
	// unlimited.
	BacklogBandwidth ByteSize `yaml:"backlog_bandwidth"`
	// StatusInterval is how often a connected gateway publishes its
	// retained status document again, with its health (outbox, rate,
	// alerts, failing sensors), after the last one; it is published at
	// every connect, and soon after a change of the alert counts or the
	// failing sensors (at most one per 10 s) in any case
	// (docs/wire-format.md, "Status"). 0 publishes it only then; else at
	// least MinStatusInterval. nil means the default, 5m (StatusEvery).
	StatusInterval *time.Duration `yaml:"status_interval"`
}

// StatusEvery returns StatusInterval, or DefaultStatusInterval when it
// is not set.
func (u *UplinkConfig) StatusEvery() time.Duration {
	if u.StatusInterval == nil {
		return DefaultStatusInterval
	}
	return *u.StatusInterval
}

// TLSConfig secures the broker connection. With no CA file the system's
// roots are used; with a client certificate and key the gateway
// authenticates itself (mTLS).
type TLSConfig struct {
	// CAFile is a PEM file of CA certificates to trust for the broker.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the gateway's PEM client certificate and
	// key; both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the broker's certificate
	// (default: the broker URL's host).
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify turns off certificate checks. For tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Enabled reports whether any TLS setting is given.
func (t *TLSConfig) Enabled() bool { return *t != (TLSConfig{}) }

// BackoffConfig is exponential backoff with jitter: the n-th wait is drawn
// from [d/2, d] where d = min(Initial·2ⁿ, Max), so that a fleet does not
// reconnect in step after a broker restart.
type BackoffConfig struct {
	// Initial wait; > 0, default 1s.
	Initial time.Duration `yaml:"initial"`
	// Max wait; >= Initial, default 1m.
	Max time.Duration `yaml:"max"`
}

// DashboardConfig configures the retained topics dashboards subscribe to:
// {prefix}/{gateway}/live/{sensor}/{metric} and …/alert/{rule}.
type DashboardConfig struct {
	// Live publishes each series' latest reading; default true.
	Live *bool `yaml:"live"`
	// LiveInterval is the shortest time between two live messages of one
	// series; > 0, default 1s.
	LiveInterval time.Duration `yaml:"live_interval"`
	// Alerts publishes each rule's current alert state; default true.
	Alerts *bool `yaml:"alerts"`
}

// LiveOn reports whether live topics are published.
func (d *DashboardConfig) LiveOn() bool { return d.Live == nil || *d.Live }

// AlertsOn reports whether alert topics are published.
func (d *DashboardConfig) AlertsOn() bool { return d.Alerts == nil || *d.Alerts }

// RulesConfig lists the alert rule files.
type RulesConfig struct {
	// Files of rules, relative to the config file's directory; optional.
	// Each must exist. Load stores the resolved paths.
	Files []string `yaml:"files"`
}

// SetDefaults fills the zero fields of c, and of its sensors and
// sections, with their defaults. Load applies defaults itself; this is for
// configs built in code.
func (c *Config) SetDefaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.LogLevel == "" {
		c.LogLevel = DefaultLogLevel
	}
	if c.LogFormat == "" {
		c.LogFormat = DefaultLogFormat
	}
	for i := range c.Sensors {
		c.Sensors[i].SetDefaults()
	}
	c.Bus.SetDefaults()
	c.Batch.SetDefaults()
	c.Buffer.SetDefaults()
	c.Uplink.SetDefaults()
	c.Clock.SetDefaults()
	if c.Dashboard.LiveInterval == 0 {
		c.Dashboard.LiveInterval = DefaultLiveInterval
	}
}

// SetDefaults fills the zero fields of s with their defaults.
func (s *Sensor) SetDefaults() {
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Samples == 0 {
		s.Samples = DefaultSamples
	}
}

// SetDefaults fills the zero fields of b with their defaults.
func (b *BusConfig) SetDefaults() {
	if b.Queue == 0 {
		b.Queue = DefaultBusQueue
	}
	if b.Policy == "" {
		b.Policy = DefaultBusPolicy
	}
}

// SetDefaults fills the zero fields of b with their defaults.
func (b *BatchConfig) SetDefaults() {
	if b.MaxReadings == 0 {
		b.MaxReadings = DefaultBatchReadings
	}
	if b.Interval == 0 {
		b.Interval = DefaultBatchInterval
	}
	if b.MaxDelay == 0 {
		b.MaxDelay = DefaultBatchMaxDelay
	}
	if b.Compression == "" {
		b.Compression = DefaultCompression
	}
}

// SetDefaults fills the zero fields of b with their defaults.
func (b *BufferConfig) SetDefaults() {
	if b.MaxBatches == 0 {
		b.MaxBatches = DefaultBufferBatches
	}
	if b.MaxBytes == 0 {
		b.MaxBytes = DefaultBufferBytes
	}
	if b.MaxAge == 0 {
		b.MaxAge = DefaultBufferAge
	}
}

// SetDefaults fills the zero fields of u with their defaults. ClientID
// stays empty: its default depends on the gateway id (see Config.ClientID).
func (u *UplinkConfig) SetDefaults() {
	if u.TopicPrefix == "" {
		u.TopicPrefix = DefaultTopicPrefix
	}
	if u.Window == 0 {
		u.Window = DefaultWindow
	}
	if u.AckTimeout == 0 {
		u.AckTimeout = DefaultAckTimeout
	}
	if u.Ack == "" {
		u.Ack = DefaultAckMode
	}
	if u.KeepAlive == 0 {
		u.KeepAlive = DefaultKeepAlive
	}
	if u.ConnectTimeout == 0 {
		u.ConnectTimeout = DefaultConnectTimeout
	}
	if u.MaxMessageBytes == 0 {
		u.MaxMessageBytes = DefaultMessageBytes
	}
	if u.Backoff.Initial == 0 {
		u.Backoff.Initial = DefaultBackoffInitial
	}
	if u.Backoff.Max == 0 {
		u.Backoff.Max = max(DefaultBackoffMax, u.Backoff.Initial)
	}
}

// Grace returns ShutdownGrace, or DefaultShutdownGrace when it is not set.
func (c *Config) Grace() time.Duration {
	if c.ShutdownGrace == nil {
		return DefaultShutdownGrace
	}
	return *c.ShutdownGrace
}

// ClientID returns the MQTT client id: Uplink.ClientID, or "outpost-" +
// the gateway id when that is empty. It is computed on each call so that a
// gateway id overridden after Load is taken into account.
func (c *Config) ClientID() string {
	if c.Uplink.ClientID != "" {
		return c.Uplink.ClientID
	}
	return "outpost-" + c.Gateway.ID
}

// SensorLabels returns every sensor's labels by sensor id (nil for a
// sensor without any): what the gateway's status document carries
// (docs/wire-format.md, "Status"). The maps are the config's own.
func (c *Config) SensorLabels() map[string]map[string]string {
	out := make(map[string]map[string]string, len(c.Sensors))
	for i := range c.Sensors {
		out[c.Sensors[i].ID] = c.Sensors[i].Labels
	}
	return out
}

// AuthKeyPath returns the path of the gateway's key file: AuthKeyFile,
// relative to DataDir unless it is absolute; "" when there is none.
func (c *Config) AuthKeyPath() string {
	f := c.Uplink.AuthKeyFile
	if f == "" || filepath.IsAbs(f) {
		return f
	}
	return filepath.Join(c.DataDir, f)
}

// AuthMode returns Auth, or its default: AuthRequired with an
// AuthKeyFile, AuthOff without.
func (u *UplinkConfig) AuthMode() string {
	switch {
	case u.Auth != "":
		return u.Auth
	case u.AuthKeyFile != "":
		return AuthRequired
	}
	return AuthOff
}

// Password returns the broker password: from the file PasswordFile
// names (one trailing newline removed; at most MaxFileBytes), or from the environment variable
// PasswordEnv names; "" when neither is configured. It is an error when
// the variable is not set or the file cannot be read.
func (u *UplinkConfig) Password() (string, error) {
	switch {
	case u.PasswordFile != "":
		b, err := readFile(u.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("config: password file: %w", err)
		}
		s := strings.TrimSuffix(string(b), "\n")
		return strings.TrimSuffix(s, "\r"), nil
	case u.PasswordEnv != "":
		p, ok := os.LookupEnv(u.PasswordEnv)
		if !ok {
			return "", fmt.Errorf("config: environment variable %s (uplink.password_env) is not set", u.PasswordEnv)
		}
		return p, nil
	}
	return "", nil
}
