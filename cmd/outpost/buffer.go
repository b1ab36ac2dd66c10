package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/cmd/internal/cli"
	"github.com/outposthq/outpost/gateway"
)

const bufferUsage = `usage: outpost buffer <stats|export> --data-dir DIR [flags]

Inspects the outbox of a stopped gateway: what is waiting to be sent.

commands:
  stats   lanes, depth, bytes, oldest age, epoch, evictions
  export  what is stored, as JSON lines or CSV

Both open the outbox read-only; stop the gateway first (it holds a lock on
the file while it runs). Run 'outpost buffer <command> --help' for flags.

example:
  outpost buffer stats --data-dir /var/lib/outpost
`

var bufferStatsCmd = cli.Command{
	Name:     "outpost buffer stats",
	Args:     "--data-dir DIR [--json]",
	Summary:  "Prints the outbox's lanes (alert, telemetry) with their batches, bytes and oldest age, its epoch\nand next seq, and what was ever evicted. The gateway must be stopped.",
	Examples: []string{"outpost buffer stats --data-dir /var/lib/outpost --json"},
}

var bufferExportCmd = cli.Command{
	Name: "outpost buffer export",
	Args: "--data-dir DIR [--format F] [--lane L]",
	Summary: `Prints what the outbox holds: one JSON object per stored batch (batches), one per
reading (readings), or CSV ts,sensor,metric,value (csv: the input of
'outpost rules replay'). The gateway must be stopped.`,
	Examples: []string{"outpost buffer export --data-dir /var/lib/outpost --format csv > waiting.csv"},
}

func cmdBuffer(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, bufferUsage)
		return cli.ErrUsageShown
	}
	switch {
	case args[0] == "stats":
		return bufferStats(args[1:], stdout, stderr)
	case args[0] == "export":
		return bufferExport(args[1:], stdout, stderr)
	case cli.IsHelp(args[0]):
		_, err := fmt.Fprint(stdout, bufferUsage)
		return err
	}
	return cli.Usagef("outpost buffer: unknown command %q\n\n%s", args[0], bufferUsage)
}

// openOutbox parses fs, lets check validate the flags, and opens the
// outbox of --data-dir read-only.
func openOutbox(fs *flag.FlagSet, args []string, stdout, stderr io.Writer, check func() error) (*buffer.Outbox, error) {
	dir := fs.String("data-dir", "", "the gateway's data `directory` (required)")
	if err := cli.Parse(fs, args, 0, stdout, stderr); err != nil {
		return nil, err
	}
	if *dir == "" {
		return nil, cli.Usagef("%s: --data-dir is required (see %s --help)", fs.Name(), fs.Name())
	}
	if check != nil {
		if err := check(); err != nil {
			return nil, cli.UsageError{Err: err}
		}
	}
	ob, err := buffer.Open(filepath.Join(*dir, gateway.OutboxFile), &buffer.Options{ReadOnly: true})
	if errors.Is(err, buffer.ErrLocked) {
		return nil, fmt.Errorf("%w (stop the gateway first: it holds the outbox while it runs; a running gateway's backlog is on its /metrics, see metrics.listen in docs/metrics.md)", err)
	}
	return ob, err
}

// bufferStatsJSON is what `outpost buffer stats --json` prints.
type bufferStatsJSON struct {
	Epoch   uint64              `json:"epoch"`
	NextSeq uint64              `json:"next_seq"`
	Lanes   map[string]laneJSON `json:"lanes"`
	Evicted buffer.Counters     `json:"evicted"` // since the file was created
	File    int64               `json:"file_bytes"`
}

type laneJSON struct {
	Batches   int     `json:"batches"`
	Bytes     int64   `json:"bytes"`
	OldestAge float64 `json:"oldest_age_s"`
}

func bufferStats(args []string, stdout, stderr io.Writer) error {
	fs := bufferStatsCmd.FlagSet()
	asJSON := fs.Bool("json", false, "print JSON")
	ob, err := openOutbox(fs, args, stdout, stderr, nil)
	if err != nil {
		return err
	}
	defer ob.Close()
	st := ob.Stats()
	now := time.Now()
	out := bufferStatsJSON{Epoch: st.Epoch, NextSeq: st.NextSeq, Lanes: map[string]laneJSON{}, Evicted: st.Persisted, File: st.FileBytes}
	for _, l := range []buffer.Lane{buffer.LaneAlert, buffer.LaneTelemetry} {
		lj := laneJSON{Batches: st.Batches[l], Bytes: st.Bytes[l]}
		if st.OldestCreated[l] != 0 {
			lj.OldestAge = now.Sub(time.Unix(0, st.OldestCreated[l])).Seconds()
		}
		out.Lanes[l.String()] = lj
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "epoch\t%d (0x%x)\n", st.Epoch, st.Epoch)
	fmt.Fprintf(tw, "next seq\t%d\n", st.NextSeq)
	fmt.Fprintf(tw, "file\t%d bytes\n", st.FileBytes)
	fmt.Fprintf(tw, "\nlane\tbatches\tbytes\toldest\n")
	for _, l := range []buffer.Lane{buffer.LaneAlert, buffer.LaneTelemetry} {
		age := "-"
		if st.OldestCreated[l] != 0 {
			age = now.Sub(time.Unix(0, st.OldestCreated[l])).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", l, st.Batches[l], st.Bytes[l], age)
	}
	p := st.Persisted
	fmt.Fprintf(tw, "\nevicted (ever)\t%d batches\t%d readings\t%d alerts\n", p.Evicted, p.EvictedReadings, p.EvictedAlerts)
	fmt.Fprintf(tw, "loss records\t%d batches\n", p.LossRecords)
	fmt.Fprintf(tw, "corrupt dropped\t%d batches\n", p.Corrupt)
	return tw.Flush()
}

func bufferExport(args []string, stdout, stderr io.Writer) error {
	fs := bufferExportCmd.FlagSet()
	format := fs.String("format", "batches", "batches, readings or csv")
	laneName := fs.String("lane", "all", "all, alert or telemetry")
	var lanes []buffer.Lane
	var ex exporter
	ob, err := openOutbox(fs, args, stdout, stderr, func() error {
		switch *laneName {
		case "all":
			lanes = []buffer.Lane{buffer.LaneAlert, buffer.LaneTelemetry}
		case "alert":
			lanes = []buffer.Lane{buffer.LaneAlert}
		case "telemetry":
			lanes = []buffer.Lane{buffer.LaneTelemetry}
		default:
			return fmt.Errorf("outpost buffer export: --lane %q: want all, alert or telemetry", *laneName)
		}
		switch *format {
		case "batches":
			ex = exportBatch
		case "readings":
			ex = exportReadings
		case "csv":
			ex = exportCSV
		default:
			return fmt.Errorf("outpost buffer export: --format %q: want batches, readings or csv", *format)
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer ob.Close()
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	if *format == "csv" {
		fmt.Fprintln(w, "ts,sensor,metric,value")
	}
	for _, l := range lanes {
		var after uint64
		for {
			es, err := ob.Read(l, after, 256, nil)
			var ce *buffer.CorruptError
			if errors.As(err, &ce) {
				// Export what is readable; say what is not.
				fmt.Fprintf(w, "# %v\n", err)
				err = nil
				es = append(es, buffer.Entry{Seq: ce.Seq, Lane: l})
			}
			if err != nil {
				return err
			}
			if len(es) == 0 {
				break
			}
			for _, e := range es {
				after = e.Seq
				if e.Data == nil {
					continue
				}
				b, err := outpost.DecodeBatch(e.Data)
				if err != nil {
					fmt.Fprintf(w, "# lane %s seq %d: %v\n", l, e.Seq, err)
					continue
				}
				if err := ex(w, l, b); err != nil {
					return err
				}
			}
		}
	}
	return w.Flush()
}

type exporter func(w *bufio.Writer, l buffer.Lane, b *outpost.Batch) error

// batchJSON is one line of `outpost buffer export --format batches`.
type batchJSON struct {
	Lane     string        `json:"lane"`
	Kind     string        `json:"kind"`
	Gateway  string        `json:"gateway"`
	Epoch    uint64        `json:"epoch"`
	Seq      uint64        `json:"seq"`
	Created  string        `json:"created"`
	Readings []readingJSON `json:"readings,omitempty"`
	Alerts   []alertJSON   `json:"alerts,omitempty"`
	Losses   []lossJSON    `json:"losses,omitempty"`
}

type alertJSON struct {
	Rule        string            `json:"rule"`
	Fingerprint string            `json:"fingerprint"`
	State       string            `json:"state"`
	Severity    string            `json:"severity"`
	Value       jsonFloat         `json:"value"`
	Labels      map[string]string `json:"labels,omitempty"`
	Message     string            `json:"message"`
	StartedAt   string            `json:"started_at"`
	ChangedAt   string            `json:"changed_at"`
	Seq         uint64            `json:"seq"`
}

type lossJSON struct {
	Reason   string `json:"reason"`
	Kind     string `json:"kind"`
	Sensor   string `json:"sensor,omitempty"`
	Metric   string `json:"metric,omitempty"`
	Rule     string `json:"rule,omitempty"`
	From     string `json:"from"`
	To       string `json:"to"`
	Count    uint64 `json:"count"`
	Epoch    uint64 `json:"epoch"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	At       string `json:"at"`
}

type readingJSON struct {
	TS      string    `json:"ts"`
	Sensor  string    `json:"sensor"`
	Metric  string    `json:"metric"`
	Unit    string    `json:"unit,omitempty"`
	Value   jsonFloat `json:"value"`
	Quality string    `json:"quality"`
}

// jsonFloat writes NaN and ±Inf, which JSON cannot hold, as null.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

func readingsOf(b *outpost.Batch) []readingJSON {
	rs := b.AppendReadings(nil)
	out := make([]readingJSON, len(rs))
	for i, r := range rs {
		out[i] = readingJSON{TS: ts(r.TS), Sensor: r.Sensor, Metric: r.Metric, Unit: r.Unit, Value: jsonFloat(r.Value), Quality: r.Quality.String()}
	}
	return out
}

func exportBatch(w *bufio.Writer, l buffer.Lane, b *outpost.Batch) error {
	line := batchJSON{Lane: l.String(), Kind: b.Kind.String(), Gateway: b.Gateway, Epoch: b.Epoch, Seq: b.Seq,
		Created: ts(b.Created), Readings: readingsOf(b)}
	for _, a := range b.Alerts {
		line.Alerts = append(line.Alerts, alertJSON{Rule: a.Rule, Fingerprint: a.Fingerprint, State: a.State.String(),
			Severity: a.Severity, Value: jsonFloat(a.Value), Labels: a.Labels, Message: a.Message,
			StartedAt: ts(a.StartedAt), ChangedAt: ts(a.ChangedAt), Seq: a.Seq})
	}
	for _, x := range b.Losses {
		line.Losses = append(line.Losses, lossJSON{Reason: x.Reason, Kind: x.Kind.String(), Sensor: x.Sensor, Metric: x.Metric,
			Rule: x.Rule, From: ts(x.From), To: ts(x.To), Count: x.Count, Epoch: x.Epoch, FirstSeq: x.FirstSeq, LastSeq: x.LastSeq, At: ts(x.At)})
	}
	return writeJSONLine(w, line)
}

func exportReadings(w *bufio.Writer, _ buffer.Lane, b *outpost.Batch) error {
	for _, r := range readingsOf(b) {
		if err := writeJSONLine(w, r); err != nil {
			return err
		}
	}
	return nil
}

func exportCSV(w *bufio.Writer, _ buffer.Lane, b *outpost.Batch) error {
	for _, r := range b.AppendReadings(nil) {
		fmt.Fprintf(w, "%s,%s,%s,%s\n", ts(r.TS), r.Sensor, r.Metric, strconv.FormatFloat(r.Value, 'g', -1, 64))
	}
	return nil
}

func writeJSONLine(w *bufio.Writer, v any) error {
	p, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Write(p)
	return w.WriteByte('\n')
}

func ts(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
