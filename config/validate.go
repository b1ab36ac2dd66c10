package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/yamlpos"
)

// Limits checked by Validate.
const (
	MaxIDLen    = 64
	MaxSamples  = 100_000
	MaxBusQueue = 1_000_000
	// MaxBatchSize bounds batch.max_readings: ingest dead-letters a batch
	// of more readings than its MaxReadings, 100 000 by default.
	MaxBatchSize = 100_000
	MaxWindow    = 1024
	MaxKeepAlive = 65535 * time.Second // MQTT carries it as uint16 seconds
	// MinMessageBytes and MaxMessageBytes bound uplink.max_message_bytes.
	MinMessageBytes = ByteSize(1 << 10)
	MaxMessageBytes = ByteSize(256 << 20)
	brokerSchemes   = "tcp, mqtt, ssl, tls, mqtts, ws or wss"
)

// Validate checks every field of c and returns a yamlpos.ErrorList of all
// problems, or nil. Call it on a config built in code, or after changing
// a loaded one; Load has already validated what came from the file and
// from LoadOptions.Overrides. Its errors carry no position: they name the
// field ("uplink.broker: ..."). The files the config names are read
// again.
func (c *Config) Validate() error {
	return c.validate(nil, nil).Err()
}

// checker collects errors, positioned through doc when it is not nil.
type checker struct {
	doc     *yamlpos.Doc
	errs    yamlpos.ErrorList
	drivers []string          // known sensor drivers; nil = not checked
	flags   map[string]string // overridden paths → the flags that gave them
	keyFile func(string) error
}

// errorf reports a problem with the value at path: positioned in the
// file, or named by its flag when a flag gave the value.
func (k *checker) errorf(path, format string, args ...any) {
	if flag, ok := k.flags[path]; ok {
		k.errs = append(k.errs, &yamlpos.Error{Msg: flag + ": " + fmt.Sprintf(format, args...)})
		return
	}
	if k.doc.Failed(path) {
		return // the decoder already said what is wrong there
	}
	k.errs = append(k.errs, k.doc.Errorf(path, format, args...))
}

func (c *Config) validate(doc *yamlpos.Doc, opts *LoadOptions) yamlpos.ErrorList {
	k := &checker{doc: doc}
	if opts != nil {
		k.drivers = opts.Drivers
		k.flags = opts.Overrides.flags()
		k.keyFile = opts.CheckKeyFile
	}
	k.id("$.gateway.id", c.Gateway.ID)
	if err := outpost.CheckSensorLabels(c.Gateway.Labels); err != nil {
		k.errorf("$.gateway.labels", "%v", err)
	}
	if c.DataDir == "" {
		k.errorf("$.data_dir", "must not be empty")
	}
	k.oneOf("$.log_level", c.LogLevel, "log level", "debug", "info", "warn", "error")
	k.oneOf("$.log_format", c.LogFormat, "log format", LogFormatAuto, LogFormatConsole, LogFormatJSON)
	if g := c.Grace(); g < 0 || g > MaxShutdownGrace {
		k.errorf("$.shutdown_grace", "must be between 0 and %v, got %v", MaxShutdownGrace, g)
	}

	if len(c.Sensors) == 0 {
		k.errorf("$.sensors", "at least one sensor is required")
	}
	sensorIDs := map[string]int{}
	for i := range c.Sensors {
		c.Sensors[i].validate(k, fmt.Sprintf("$.sensors[%d]", i), i, sensorIDs)
	}
	c.validateDevices(k)
	// The document's worst case: its longest version, the gateway's
	// labels, and the health with every sensor failing with every
	// condition (StatusSize). It also keeps the sensors far below
	// outpost.MaxStatusSensors: each costs at least 56 bytes.
	if n := outpost.StatusSize(c.Gateway.ID, c.Gateway.Labels, outpost.StatusSensors(c.SensorLabels())); n > outpost.MaxStatusBytes {
		with := ""
		if len(c.Gateway.Labels) > 0 {
			with = ", with gateway.labels,"
		}
		k.errorf("$.sensors", "the sensors and their labels%s make a status document of up to %d bytes, more than %d: the ingest service would refuse it", with, n, outpost.MaxStatusBytes)
	}

	k.between("$.bus.queue", c.Bus.Queue, 1, MaxBusQueue)
	k.oneOf("$.bus.policy", c.Bus.Policy, "policy", PolicyBlock, PolicyDrop)
	k.between("$.batch.max_readings", c.Batch.MaxReadings, 1, MaxBatchSize)
	k.positive("$.batch.interval", c.Batch.Interval)
	if d := c.Batch.MaxDelay; d < 0 || d > MaxBatchDelay {
		k.errorf("$.batch.max_delay", "must be between 0 and %s, got %s", MaxBatchDelay, d)
	}
	k.oneOf("$.batch.compression", c.Batch.Compression, "compression", CompressionZstd, CompressionNone)
	if c.Buffer.MaxBatches < 1 {
		k.errorf("$.buffer.max_batches", "must be at least 1, got %d", c.Buffer.MaxBatches)
	}
	if c.Buffer.MaxBytes < 1 {
		k.errorf("$.buffer.max_bytes", "must be at least 1, got %d", c.Buffer.MaxBytes)
	}
	k.positive("$.buffer.max_age", c.Buffer.MaxAge)
	c.Uplink.validate(k)
	c.Uplink.validateAuth(k, c.AuthKeyPath(), c.DataDir)
	k.positive("$.dashboard.live_interval", c.Dashboard.LiveInterval)
	c.Metrics.validate(k)
	c.Clock.validate(k)
	for i, f := range c.Rules.Files {
		k.rulesFile(fmt.Sprintf("$.rules.files[%d]", i), f)
	}
	return k.errs
}

func (s *Sensor) validate(k *checker, p string, i int, ids map[string]int) {
	if k.id(p+".id", s.ID) {
		if first, dup := ids[s.ID]; dup {
			k.errorf(p+".id", "duplicate sensor id %q (sensors[%d] has it too)", s.ID, first)
		} else {
			ids[s.ID] = i
		}
	}
	if s.Driver == "" {
		k.errorf(p+".driver", "is required")
	} else if k.drivers != nil && !slices.Contains(k.drivers, s.Driver) {
		k.errorf(p+".driver", "unknown driver %q (known: %s)", s.Driver, strings.Join(k.drivers, ", "))
	}
	k.positive(p+".interval", s.Interval)
	k.between(p+".samples", s.Samples, 1, MaxSamples)
	if err := outpost.CheckSensorLabels(s.Labels); err != nil {
		k.errorf(p+".labels", "%v", err)
	}
	if len(s.Metrics) == 0 && s.Driver == SimDriver {
		k.errorf(p+".metrics", "at least one metric is required for the %s driver", SimDriver)
	}
	names := map[string]int{}
	for j := range s.Metrics {
		m := &s.Metrics[j]
		mp := fmt.Sprintf("%s.metrics[%d]", p, j)
		if k.id(mp+".name", m.Name) {
			if first, dup := names[m.Name]; dup {
				k.errorf(mp+".name", "duplicate metric %q (metrics[%d] has it too)", m.Name, first)
			} else {
				names[m.Name] = j
			}
		}
		if s.Driver == SimDriver && m.Signal.Kind == "" && m.Signal == (Signal{}) {
			k.errorf(mp+".signal", "is required for the %s driver (kind: %s)", SimDriver, signalKinds)
		}
		m.Signal.validate(k, mp+".signal")
	}
	s.validateDriver(k, p)
}

const signalKinds = "constant, sine, ramp, random_walk, step or replay"

func (s *Signal) validate(k *checker, p string) {
	switch s.Kind {
	case "":
		if *s != (Signal{}) {
			k.errorf(p+".kind", "is required when a signal is given (%s)", signalKinds)
		}
		return
	case SignalReplay:
		if s.Column == "" {
			k.errorf(p+".column", "is required for a replay signal (the CSV column to play)")
		}
		if s.File == "" {
			k.errorf(p+".file", "is required for a replay signal (a CSV recording)")
		} else {
			k.readable(p+".file", s.File)
		}
	case SignalSine, SignalStep:
		if s.Period <= 0 {
			k.errorf(p+".period", "must be > 0 for a %s signal, got %v", s.Kind, s.Period)
		}
	case SignalConstant, SignalRamp, SignalRandomWalk:
		if s.Period < 0 {
			k.errorf(p+".period", "must not be negative, got %v", s.Period)
		}
	default:
		k.errorf(p+".kind", "unknown signal kind %q (want %s)", s.Kind, signalKinds)
	}
	if s.Step < 0 {
		k.errorf(p+".step", "must not be negative, got %g", s.Step)
	}
	if s.HasMin && s.HasMax && s.Min > s.Max {
		k.errorf(p+".max", "must not be below min (%g), got %g", s.Min, s.Max)
	}
	if s.Noise < 0 {
		k.errorf(p+".noise", "must not be negative, got %g", s.Noise)
	}
	if s.Resolution < 0 {
		k.errorf(p+".resolution", "must not be negative, got %g", s.Resolution)
	}
}

func (u *UplinkConfig) validate(k *checker) {
	k.broker("$.uplink.broker", u.Broker)
	k.topicPrefix("$.uplink.topic_prefix", u.TopicPrefix)
	k.between("$.uplink.window", u.Window, 1, MaxWindow)
	k.positive("$.uplink.ack_timeout", u.AckTimeout)
	k.oneOf("$.uplink.ack", u.Ack, "ack mode", AckIngest, AckBroker)
	switch {
	case u.KeepAlive < 0 || u.KeepAlive > MaxKeepAlive:
		k.errorf("$.uplink.keepalive", "must be between 0 (off) and %v, got %v", MaxKeepAlive, u.KeepAlive)
	case u.KeepAlive%time.Second != 0:
		k.errorf("$.uplink.keepalive", "must be a whole number of seconds, got %v", u.KeepAlive)
	}
	k.positive("$.uplink.connect_timeout", u.ConnectTimeout)
	if u.PasswordEnv != "" && !envName(u.PasswordEnv) {
		// Not quoted: what is pasted here instead of a name is often the
		// password itself.
		k.errorf("$.uplink.password_env", "is not an environment variable name (it names the variable that holds the password, not the password)")
	}
	if u.PasswordEnv != "" && u.PasswordFile != "" {
		k.errorf("$.uplink.password_file", "give password_env or password_file, not both")
	} else if u.PasswordFile != "" {
		k.read("$.uplink.password_file", u.PasswordFile) // the password goes unused: it is never shown
	}
	if u.MaxMessageBytes < MinMessageBytes || u.MaxMessageBytes > MaxMessageBytes {
		k.errorf("$.uplink.max_message_bytes", "must be between %v and %v, got %v", MinMessageBytes, MaxMessageBytes, u.MaxMessageBytes)
	}
	k.positive("$.uplink.backoff.initial", u.Backoff.Initial)
	if u.Backoff.Max < u.Backoff.Initial {
		k.errorf("$.uplink.backoff.max", "must not be below initial (%v), got %v", u.Backoff.Initial, u.Backoff.Max)
	}
	if u.BacklogBandwidth < 0 {
		k.errorf("$.uplink.backlog_bandwidth", "must not be negative, got %v", u.BacklogBandwidth)
	} else if u.BacklogBandwidth > 0 && u.BacklogBandwidth < MinMessageBytes {
		k.errorf("$.uplink.backlog_bandwidth", "must be 0 (unlimited) or at least %v per second, got %v", MinMessageBytes, u.BacklogBandwidth)
	}
	if d := u.StatusEvery(); d != 0 && d < MinStatusInterval {
		k.errorf("$.uplink.status_interval", "must be 0 (only at connect and on a change) or at least %v, got %v", MinStatusInterval, d)
	}
	u.TLS.validate(k, u.Broker)
}

// validateAuth checks auth and auth_key_file, whose path is file: a key
// file exists and holds a key (through the checker's keyFile), or can be
// created: in a directory that exists, or in the data dir, which the
// gateway creates first.
func (u *UplinkConfig) validateAuth(k *checker, file, dataDir string) {
	const path = "$.uplink.auth_key_file"
	k.oneOf("$.uplink.auth", u.AuthMode(), "auth mode", AuthRequired, AuthOptional, AuthOff)
	if u.AuthKeyFile == "" {
		if m := u.AuthMode(); m == AuthRequired || m == AuthOptional {
			k.errorf("$.uplink.auth", "%s needs auth_key_file, the gateway's key", m)
		}
		return
	}
	fi, err := os.Stat(file)
	switch {
	case err == nil && fi.IsDir():
		k.errorf(path, "%q is a directory", file)
	case err == nil:
		if k.keyFile != nil {
			if err := k.keyFile(file); err != nil {
				k.errorf(path, "%v", err)
			}
		}
	case !errors.Is(err, fs.ErrNotExist):
		k.errorf(path, "%v", err)
	case u.AuthMode() != AuthOff:
		// Created at the first start, in a directory that exists.
		dir := filepath.Dir(file)
		if di, err := os.Stat(dir); (err != nil || !di.IsDir()) && dir != filepath.Clean(dataDir) {
			k.errorf(path, "%s does not exist, and its directory %s is not one the key can be created in", file, dir)
		}
	}
}

func (t *TLSConfig) validate(k *checker, broker string) {
	if !t.Enabled() {
		return
	}
	if u, err := url.Parse(broker); err == nil && u.Scheme != "" {
		switch u.Scheme {
		case "ssl", "tls", "mqtts", "wss":
		default:
			whose := "the broker URL's"
			if flag, ok := k.flags["$.uplink.broker"]; ok {
				whose = "the " + flag + " URL's"
			}
			k.errorf("$.uplink.tls", "is set but %s scheme is %s; use ssl:// (or wss://) for TLS", whose, u.Scheme)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		k.errorf("$.uplink.tls", "cert_file and key_file go together: give both for mTLS, or neither")
	}
	t.checkFiles(k)
}

// readable checks that f is a file that can be read.
func (k *checker) readable(path, f string) {
	fi, err := os.Stat(f)
	switch {
	case err != nil:
		k.errorf(path, "%v", err)
	case fi.IsDir():
		k.errorf(path, "%q is a directory", f)
	}
}

// id checks an id or name: required, 1 to MaxIDLen of [A-Za-z0-9_.-],
// and not "." or "..". It reports whether the id is valid.
func (k *checker) id(path, s string) bool {
	switch {
	case s == "":
		k.errorf(path, "is required")
	case !ValidID(s):
		k.errorf(path, "%q is not a valid id (use 1 to %d of A-Z a-z 0-9 _ . -)", s, MaxIDLen)
	default:
		return true
	}
	return false
}

// ValidID reports whether s may be used as a gateway, sensor or metric
// id: 1 to 64 of [A-Za-z0-9_.-], and not "." or "..". Such ids are safe
// as MQTT topic levels and as file names.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func (k *checker) oneOf(path, s, what string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	want := strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
	k.errorf(path, "unknown %s %q (want %s)", what, s, want)
}

func (k *checker) between(path string, n, lo, hi int) {
	if n < lo || n > hi {
		k.errorf(path, "must be between %d and %d, got %d", lo, hi, n)
	}
}

func (k *checker) positive(path string, d time.Duration) {
	if d <= 0 {
		k.errorf(path, "must be > 0, got %v", d)
	}
}

func (k *checker) broker(path, s string) {
	if s == "" {
		k.errorf(path, "is required (e.g. tcp://127.0.0.1:1883)")
		return
	}
	if !strings.Contains(s, "://") {
		k.errorf(path, "%q has no scheme (e.g. tcp://%s)", s, s)
		return
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		k.errorf(path, "invalid broker URL %q: %v", s, err)
		return
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	default:
		k.errorf(path, "unsupported scheme %q (want %s)", u.Scheme, brokerSchemes)
		return
	}
	if u.Host == "" {
		k.errorf(path, "%q has no host", s)
	}
}

func (k *checker) topicPrefix(path, s string) {
	switch {
	case s == "":
		k.errorf(path, "must not be empty")
	case strings.ContainsAny(s, "+#\x00"):
		k.errorf(path, "%q must not contain the MQTT wildcards + or #", s)
	case strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || strings.Contains(s, "//"):
		k.errorf(path, "%q must not have empty topic levels (no leading, trailing or double /)", s)
	}
}

func (k *checker) rulesFile(path, f string) {
	if f == "" {
		k.errorf(path, "must not be empty")
		return
	}
	fi, err := os.Stat(f)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		k.errorf(path, "rules file %q does not exist", f)
	case err != nil:
		k.errorf(path, "rules file %q: %v", f, err)
	case fi.IsDir():
		k.errorf(path, "rules file %q is a directory", f)
	}
}

func envName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}
