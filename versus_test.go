package outpost_test

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/outposthq/outpost"
)

// TestWireSizeVersus sets Outpost's wire format beside the two formats a
// gateway would otherwise send the same readings in, on the office
// recordings (all five columns, as a gateway reads them), in batches of
// 1000 readings (200 rows) and of one row (5 readings): Telegraf's influx
// line protocol (one line a row, the five fields together, as Telegraf
// groups fields of one timestamp), and Sparkplug B (a DDATA payload of
// one metric a reading, named by alias as after a birth certificate,
// datatype Double, each with its own timestamp). Each is taken plain and
// compressed (gzip, as Telegraf's HTTP output and Sparkplug's optional
// payload compression do, and zstd). Every encoding is read back and
// checked against the readings. Run with -v for the table
// (docs/benchmarks.md, "Against other formats").
func TestWireSizeVersus(t *testing.T) {
	rows := occupancy(t)
	rs := interleave(rows)
	zenc, err := outpost.NewEncoder(&outpost.EncoderOptions{Compression: outpost.CompressZstd})
	if err != nil {
		t.Fatal(err)
	}
	zs, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer zs.Close()
	formats := []struct {
		name string
		enc  func(t *testing.T, seq int, rs []outpost.Reading) []byte
	}{
		{"outpost v2 zstd", func(t *testing.T, seq int, rs []outpost.Reading) []byte {
			bb := outpost.NewBatchBuilder()
			bb.Add(rs)
			b := bb.Take("gw-01", rs[0].TS)
			b.Epoch, b.Seq = 0x1234abcd5678ef00, uint64(seq)
			p, err := zenc.Encode(nil, b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := outpost.DecodeBatch(p)
			if err != nil {
				t.Fatal(err)
			}
			checkBack(t, got.AppendReadings(nil), rs)
			return p
		}},
		{"influx line protocol", func(t *testing.T, _ int, rs []outpost.Reading) []byte {
			p := lineProtocol(rs)
			checkBack(t, parseLineProtocol(t, p), rs)
			return p
		}},
		{"sparkplug b", func(t *testing.T, seq int, rs []outpost.Reading) []byte {
			p := sparkplug(seq, rs)
			checkBack(t, parseSparkplug(t, p, rs), rs)
			return p
		}},
	}
	var out strings.Builder
	fmt.Fprintf(&out, "| format | readings/batch | plain | gzip | zstd |\n|---|---|---|---|---|\n")
	for _, n := range []int{1000, len(occupancyColumns)} {
		for _, f := range formats {
			var plain, gz, zst int
			for lo, seq := 0, 1; lo < len(rs); lo, seq = lo+n, seq+1 {
				p := f.enc(t, seq, rs[lo:min(lo+n, len(rs))])
				plain += len(p)
				if f.name == "outpost v2 zstd" {
					continue // compressed already
				}
				gz += len(gzipped(t, p))
				zst += len(zs.EncodeAll(p, nil))
			}
			per := func(b int) string {
				if b == 0 {
					return "—"
				}
				return fmt.Sprintf("%.2f", float64(b)/float64(len(rs)))
			}
			fmt.Fprintf(&out, "| %s | %d | %s | %s | %s |\n", f.name, n, per(plain), per(gz), per(zst))
		}
	}
	t.Logf("bytes per reading, office recordings (%d readings), whole payloads:\n%s", len(rs), out.String())
}

// checkBack fails unless got holds want's readings: the same keys, times
// and value bits, in any order (Outpost's batches are by series).
func checkBack(t *testing.T, got, want []outpost.Reading) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d readings back of %d", len(got), len(want))
	}
	order := func(rs []outpost.Reading) []outpost.Reading {
		rs = slices.Clone(rs)
		slices.SortStableFunc(rs, func(a, b outpost.Reading) int {
			return cmp.Or(cmp.Compare(a.Sensor, b.Sensor), cmp.Compare(a.Metric, b.Metric), cmp.Compare(a.TS, b.TS))
		})
		return rs
	}
	got, want = order(got), order(want)
	for i := range got {
		g, w := got[i], want[i]
		if g.Sensor != w.Sensor || g.Metric != w.Metric || g.TS != w.TS || math.Float64bits(g.Value) != math.Float64bits(w.Value) {
			t.Fatalf("reading %d: got %+v, want %+v", i, g, w)
		}
	}
}

func gzipped(t *testing.T, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// lineProtocol writes rs as Telegraf does: a line per measurement, tag
// set and timestamp, its fields together, floats as the shortest
// decimal that reads back the same.
func lineProtocol(rs []outpost.Reading) []byte {
	var p []byte
	for i := 0; i < len(rs); {
		j := i
		p = append(p, rs[i].Sensor...)
		p = append(p, ",gateway=gw-01 "...)
		for ; j < len(rs) && rs[j].TS == rs[i].TS && rs[j].Sensor == rs[i].Sensor; j++ {
			if j > i {
				p = append(p, ',')
			}
			p = append(p, rs[j].Metric...)
			p = append(p, '=')
			p = strconv.AppendFloat(p, rs[j].Value, 'g', -1, 64)
		}
		p = append(p, ' ')
		p = strconv.AppendInt(p, rs[i].TS, 10)
		p = append(p, '\n')
		i = j
	}
	return p
}

// parseLineProtocol reads back what lineProtocol wrote.
func parseLineProtocol(t *testing.T, p []byte) []outpost.Reading {
	t.Helper()
	var rs []outpost.Reading
	for _, line := range strings.Split(strings.TrimSuffix(string(p), "\n"), "\n") {
		parts := strings.Split(line, " ")
		if len(parts) != 3 {
			t.Fatalf("line %q", line)
		}
		sensor, _, _ := strings.Cut(parts[0], ",")
		ts, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range strings.Split(parts[1], ",") {
			k, v, _ := strings.Cut(f, "=")
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, outpost.Reading{Sensor: sensor, Metric: k, TS: ts, Value: x})
		}
	}
	return rs
}

// Sparkplug B's protobuf fields (sparkplug_b.proto) and datatype.
const (
	spPayloadTimestamp = 1
	spPayloadMetrics   = 2
	spPayloadSeq       = 3
	spMetricAlias      = 2
	spMetricTimestamp  = 3
	spMetricDatatype   = 4
	spMetricDouble     = 13
	spDouble           = 10
)

// sparkplug writes rs as a DDATA payload: the payload's timestamp (ms)
// and seq (0–255), then a metric a reading, by alias (its column), with
// its timestamp (ms, Sparkplug's unit: the recordings are whole seconds)
// and its value as a double.
func sparkplug(seq int, rs []outpost.Reading) []byte {
	var p, m []byte
	p = protowire.AppendTag(p, spPayloadTimestamp, protowire.VarintType)
	p = protowire.AppendVarint(p, uint64(rs[len(rs)-1].TS/1e6))
	for _, r := range rs {
		m = m[:0]
		m = protowire.AppendTag(m, spMetricAlias, protowire.VarintType)
		m = protowire.AppendVarint(m, uint64(column(r.Metric)))
		m = protowire.AppendTag(m, spMetricTimestamp, protowire.VarintType)
		m = protowire.AppendVarint(m, uint64(r.TS/1e6))
		m = protowire.AppendTag(m, spMetricDatatype, protowire.VarintType)
		m = protowire.AppendVarint(m, spDouble)
		m = protowire.AppendTag(m, spMetricDouble, protowire.Fixed64Type)
		m = protowire.AppendFixed64(m, math.Float64bits(r.Value))
		p = protowire.AppendTag(p, spPayloadMetrics, protowire.BytesType)
		p = protowire.AppendBytes(p, m)
	}
	p = protowire.AppendTag(p, spPayloadSeq, protowire.VarintType)
	return protowire.AppendVarint(p, uint64(seq%256))
}

// parseSparkplug reads back what sparkplug wrote, naming each metric by
// its alias as a host application does from the birth certificate.
func parseSparkplug(t *testing.T, p []byte, want []outpost.Reading) []outpost.Reading {
	t.Helper()
	var rs []outpost.Reading
	for len(p) > 0 {
		num, typ, n := protowire.ConsumeTag(p)
		if n < 0 {
			t.Fatal(protowire.ParseError(n))
		}
		p = p[n:]
		if num != spPayloadMetrics {
			n = protowire.ConsumeFieldValue(num, typ, p)
			if n < 0 {
				t.Fatal(protowire.ParseError(n))
			}
			p = p[n:]
			continue
		}
		m, n := protowire.ConsumeBytes(p)
		if n < 0 {
			t.Fatal(protowire.ParseError(n))
		}
		p = p[n:]
		var r outpost.Reading
		for len(m) > 0 {
			num, typ, n := protowire.ConsumeTag(m)
			if n < 0 {
				t.Fatal(protowire.ParseError(n))
			}
			m = m[n:]
			switch {
			case typ == protowire.VarintType:
				v, n := protowire.ConsumeVarint(m)
				if n < 0 {
					t.Fatal(protowire.ParseError(n))
				}
				m = m[n:]
				switch num {
				case spMetricAlias:
					r.Sensor, r.Metric = "office", occupancyColumns[v].metric
				case spMetricTimestamp:
					r.TS = int64(v) * 1e6
				}
			case num == spMetricDouble && typ == protowire.Fixed64Type:
				v, n := protowire.ConsumeFixed64(m)
				if n < 0 {
					t.Fatal(protowire.ParseError(n))
				}
				m = m[n:]
				r.Value = math.Float64frombits(v)
			default:
				t.Fatalf("metric field %d of type %d", num, typ)
			}
		}
		rs = append(rs, r)
	}
	if len(want) > 0 && want[0].TS%1e6 != 0 {
		t.Fatal("the recordings have times finer than Sparkplug's milliseconds")
	}
	return rs
}

// column is the alias of a metric of the recordings: its column.
func column(metric string) int {
	for i, c := range occupancyColumns {
		if c.metric == metric {
			return i
		}
	}
	return -1
}
