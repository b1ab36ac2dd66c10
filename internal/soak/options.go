package soak

import (
	"io"
	"time"

	"github.com/outposthq/outpost/ingest"
)

// Options configure a soak run.
type Options struct {
	Duration time.Duration // how long the gateway runs
	Rate     int           // readings per second offered by the simulated sensors
	Interval time.Duration // between samples; default 10s
	Limits   Limits        // the judgment
	Goal     int64         // the RSS goal in bytes, drawn and reported; 0: none

	Out    string // directory for the binaries, configs, logs, CSV and plot
	Repo   string // the module's root, where the binaries are built from
	Broker string // MQTT broker URL
	// DB is the ingest database: a postgres:// DSN (the run creates a
	// schema of its own there and drops it at the end) or sqlite:PATH.
	DB string
	// Progress gets a line per sample; nil: none.
	Progress io.Writer
}

// Result is what a run measured.
type Result struct {
	Samples         []Sample
	Verdict         Verdict
	ReadingsEmitted int64 // the gateway's last line
	ReadingsStored  int64
	DB              ingest.Counts // what the ingest committed
	GatewayErrors   []string
	CSV, SVG        string // paths
}
