package layout

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest/internal/chunk"
)

// built is one reading as a Builder stores it.
type built struct {
	batch, series int
	ts            int64
	v             float64
	q             byte
	chunk         bool
}

// The Builder stores every reading of every batch once, in a chunk when
// its piece is one and as a row otherwise, under the first index of its
// series' name; and gives one update per batch and series name, of its
// first reading, its newest (the later in the batch of equal times) and
// its last unit. What it built is what it would have built of each batch
// alone, after a Reset.
func TestBuilder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var bd, one Builder
	names := []string{"a", "b", "c"}
	for round := range 200 {
		bd.Reset()
		var bs []*outpost.Batch
		var want []built
		type upKey struct{ batch, series int }
		wantUps := map[upKey]SeriesUpdate{}
		for bi := range 1 + rng.IntN(4) {
			b := &outpost.Batch{Kind: outpost.KindTelemetry}
			for si := range rng.IntN(6) {
				s := outpost.Series{Sensor: names[rng.IntN(2)], Metric: names[rng.IntN(3)], Unit: string(rune('A' + si))}
				n := rng.IntN(60)
				t0 := int64(rng.IntN(3))*Window + rng.Int64N(Window)
				withQ := rng.IntN(3) == 0
				prev := t0
				for i := range n {
					ts := prev + rng.Int64N(Window/40)
					switch rng.IntN(8) {
					case 0:
						ts -= rng.Int64N(Window / 10) // out of order
					case 1:
						ts = prev // equal times
					}
					if i == 0 {
						s.TS = append(s.TS, ts)
					} else {
						s.TS = append(s.TS, ts-prev)
					}
					prev = ts
					s.Values = append(s.Values, float64(round*1e6+bi*1e4+si*100+i))
					if withQ {
						s.Quality = append(s.Quality, byte(rng.IntN(3)))
					}
				}
				if k := len(b.Series); k > 0 && rng.IntN(4) == 0 {
					// The previous series again, at its times: the
					// later of equal newest readings wins.
					p := &b.Series[k-1]
					s.Sensor, s.Metric, s.TS, s.Quality = p.Sensor, p.Metric, p.TS, p.Quality
					s.Values = s.Values[:0]
					for i := range p.Values {
						s.Values = append(s.Values, p.Values[i]+0.5)
					}
				}
				b.Series = append(b.Series, s)
			}
			// The expected: readings by series, sorted stably by time,
			// cut at windows; the updates from every reading in batch
			// order.
			first := map[[2]string]int{}
			for si := range b.Series {
				s := &b.Series[si]
				k := [2]string{s.Sensor, s.Metric}
				if _, ok := first[k]; !ok {
					first[k] = si
				}
				canon := first[k]
				var rs []built
				ts := int64(0)
				for i, d := range s.TS {
					ts += d
					if i == 0 {
						ts = d
					}
					q := byte(0)
					if s.Quality != nil {
						q = s.Quality[i]
					}
					rs = append(rs, built{bi, canon, ts, s.Values[i], q, false})
					u, ok := wantUps[upKey{bi, canon}]
					if !ok {
						u = SeriesUpdate{Batch: bi, Series: canon, First: ts, Last: math.MinInt64}
					}
					u.First, u.Unit = min(u.First, ts), s.Unit
					if ts >= u.Last {
						u.Last, u.LastValue, u.LastQuality = ts, s.Values[i], q
					}
					wantUps[upKey{bi, canon}] = u
				}
				slices.SortStableFunc(rs, func(a, b built) int { return cmp.Compare(a.ts, b.ts) })
				for i := 0; i < len(rs); {
					j := i
					for j < len(rs) && WindowOf(rs[j].ts) == WindowOf(rs[i].ts) {
						j++
					}
					for k := i; k < j; k++ {
						rs[k].chunk = j-i >= MinChunk
					}
					i = j
				}
				want = append(want, rs...)
			}
			if err := bd.Add(b); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			bs = append(bs, b)
		}
		got := readBack(t, &bd)
		sortBuilt := func(rs []built) {
			slices.SortStableFunc(rs, func(a, b built) int {
				return cmp.Or(cmp.Compare(a.batch, b.batch), cmp.Compare(a.series, b.series), cmp.Compare(a.ts, b.ts))
			})
		}
		sortBuilt(got)
		sortBuilt(want)
		if !slices.EqualFunc(got, want, func(a, b built) bool {
			return a.batch == b.batch && a.series == b.series && a.ts == b.ts && a.v == b.v && a.q == b.q && a.chunk == b.chunk
		}) {
			t.Fatalf("round %d: built\n%v\nwant\n%v", round, got, want)
		}
		if len(bd.Series) != len(wantUps) {
			t.Fatalf("round %d: %d series updates, want %d", round, len(bd.Series), len(wantUps))
		}
		for _, u := range bd.Series {
			if w := wantUps[upKey{u.Batch, u.Series}]; u != w {
				t.Fatalf("round %d: update %+v, want %+v", round, u, w)
			}
		}
		// Each batch alone builds the same, but for its number.
		var alone []built
		var aloneUps []SeriesUpdate
		for bi, b := range bs {
			one.Reset()
			if err := one.Add(b); err != nil {
				t.Fatal(err)
			}
			for _, r := range readBack(t, &one) {
				r.batch = bi
				alone = append(alone, r)
			}
			for _, u := range one.Series {
				u.Batch = bi
				aloneUps = append(aloneUps, u)
			}
		}
		together := readBack(t, &bd)
		sortBuilt(together)
		sortBuilt(alone)
		if !slices.Equal(together, alone) || !slices.Equal(bd.Series, aloneUps) {
			t.Fatalf("round %d: the batches built together differ from each alone", round)
		}
	}
}

// readBack returns every reading bd holds, chunks decoded, in its order.
func readBack(t *testing.T, bd *Builder) []built {
	t.Helper()
	var out []built
	for i := range bd.Chunks {
		c := &bd.Chunks[i]
		ts, vs, qs, err := chunk.Decode(bd.Data(c), nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) != c.N || ts[0] != c.TMin || ts[len(ts)-1] != c.TMax || WindowOf(c.TMin) != WindowOf(c.TMax) {
			t.Fatalf("chunk %+v holds %d readings from %d to %d", c, len(ts), ts[0], ts[len(ts)-1])
		}
		for j := range ts {
			q := byte(0)
			if len(qs) > 0 {
				q = qs[j]
			}
			out = append(out, built{c.Batch, c.Series, ts[j], vs[j], q, true})
		}
	}
	for _, r := range bd.Rows {
		out = append(out, built{r.Batch, r.Series, r.TS, r.Value, r.Quality, false})
	}
	return out
}

// A batch the chunk format refuses leaves the Builder as it was, and
// the next batch is numbered as if it had not been added.
func TestBuilderRefused(t *testing.T) {
	var bd Builder
	good := &outpost.Batch{Series: []outpost.Series{{Sensor: "s", Metric: "m", TS: []int64{5, 1, 1}, Values: []float64{1, 2, 3}}}}
	if err := bd.Add(good); err != nil {
		t.Fatal(err)
	}
	bad := &outpost.Batch{Series: []outpost.Series{{Sensor: "s", Metric: "m", TS: make([]int64, MinChunk), Values: make([]float64, MinChunk),
		Quality: slices.Repeat([]byte{3}, MinChunk)}}}
	bad.Series = append(bad.Series, good.Series...)
	bad.Series[0], bad.Series[1] = bad.Series[1], bad.Series[0] // rows first, then the refused chunk
	if err := bd.Add(bad); err == nil {
		t.Fatal("a quality of 3 was encoded")
	}
	if len(bd.Chunks) != 0 || len(bd.Rows) != 3 || len(bd.Series) != 1 {
		t.Fatalf("after a refused batch: %d chunks, %d rows, %d updates", len(bd.Chunks), len(bd.Rows), len(bd.Series))
	}
	if err := bd.Add(good); err != nil {
		t.Fatal(err)
	}
	if r := bd.Rows[len(bd.Rows)-1]; r.Batch != 1 {
		t.Fatalf("the batch after a refused one is numbered %d, want 1", r.Batch)
	}
}

// BenchmarkBuilder builds 16 batches of 10 series of 100 readings (in
// chunks) and 10 of 3 (rows), as a gateway sends them: each series once,
// in the order first polled.
func BenchmarkBuilder(b *testing.B) {
	bs := make([]*outpost.Batch, 16)
	for i := range bs {
		bt := &outpost.Batch{Kind: outpost.KindTelemetry}
		for s := range 10 {
			for _, sr := range []struct {
				sensor string
				n      int
				step   int64
			}{{"sensor-" + string(rune('0'+s)), 100, 1e9}, {"slow-" + string(rune('0'+s)), 3, 60e9}} {
				ser := outpost.Series{Sensor: sr.sensor, Metric: "temperature", Unit: "Cel"}
				for j := range sr.n {
					d := sr.step
					if j == 0 {
						d = 1_750_000_000e9
					}
					ser.TS, ser.Values = append(ser.TS, d), append(ser.Values, 20.5+float64(j))
				}
				bt.Series = append(bt.Series, ser)
			}
		}
		bs[i] = bt
	}
	var bd Builder
	b.ReportAllocs()
	for b.Loop() {
		bd.Reset()
		for _, bt := range bs {
			if err := bd.Add(bt); err != nil {
				b.Fatal(err)
			}
		}
	}
}
