package layout

import (
	"cmp"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest/internal/chunk"
)

func TestWindowOf(t *testing.T) {
	for _, tc := range []struct{ ts, want int64 }{
		{0, 0}, {1, 0}, {Window - 1, 0}, {Window, Window}, {-1, -Window}, {-Window, -Window}, {-Window - 1, -2 * Window}, {math.MinInt64, math.MinInt64}, {math.MaxInt64, math.MaxInt64 - math.MaxInt64%Window},
	} {
		if got := WindowOf(tc.ts); got != tc.want {
			t.Errorf("WindowOf(%d) = %d, want %d", tc.ts, got, tc.want)
		}
	}
}

type reading struct {
	series int
	ts     int64
	v      float64
	q      byte
}

// Split keeps every reading once, sorts each series stably by time, cuts
// at window boundaries and keeps quality only where one is not good.
func TestSplit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var sc Scratch
	for round := range 200 {
		b := &outpost.Batch{Kind: outpost.KindTelemetry}
		var want []reading
		for si := range 1 + rng.IntN(4) {
			n := 1 + rng.IntN(300)
			s := outpost.Series{Sensor: "s", Metric: string(rune('a' + si))}
			t0 := int64(rng.IntN(5))*Window + rng.Int64N(Window)
			prev := t0
			withQ := rng.IntN(3) == 0
			for i := range n {
				ts := prev + rng.Int64N(Window/50)
				if rng.IntN(10) == 0 {
					ts -= rng.Int64N(Window / 10) // out of order
				}
				if i == 0 {
					s.TS = append(s.TS, ts)
				} else {
					s.TS = append(s.TS, ts-prev)
				}
				prev = ts
				s.Values = append(s.Values, float64(round*1000+i))
				q := byte(0)
				if withQ {
					q = byte(rng.IntN(3))
					s.Quality = append(s.Quality, q)
				}
				want = append(want, reading{si, ts, float64(round*1000 + i), q})
			}
			b.Series = append(b.Series, s)
		}
		slices.SortStableFunc(want, func(a, b reading) int { return cmp.Or(cmp.Compare(a.series, b.series), cmp.Compare(a.ts, b.ts)) })
		var got []reading
		for _, p := range Split(b, &sc) {
			if len(p.TS) == 0 || len(p.TS) != len(p.Values) || p.Quality != nil && len(p.Quality) != len(p.TS) {
				t.Fatalf("round %d: a piece of %d timestamps, %d values, %d qualities", round, len(p.TS), len(p.Values), len(p.Quality))
			}
			w := WindowOf(p.TS[0])
			if WindowOf(p.TS[len(p.TS)-1]) != w {
				t.Fatalf("round %d: a piece spans windows", round)
			}
			if p.Quality != nil && allZero(p.Quality) {
				t.Fatalf("round %d: an all-good piece keeps its quality", round)
			}
			if p.Chunk() != (len(p.TS) >= MinChunk) {
				t.Fatal("Chunk disagrees with MinChunk")
			}
			for i := range p.TS {
				q := byte(0)
				if p.Quality != nil {
					q = p.Quality[i]
				}
				got = append(got, reading{p.Series, p.TS[i], p.Values[i], q})
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: split gives %d readings, want %d, or in another order", round, len(got), len(want))
		}
	}
}

// Merge equals a stable sort of every run's readings in the window,
// runs in list order among equal times, and stops when asked.
func TestMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 300 {
		var runs []Run
		var all []reading
		for ri := range rng.IntN(8) {
			var r Run
			ts := rng.Int64N(100)
			withQ := rng.IntN(2) == 0
			for i := range rng.IntN(50) {
				ts += rng.Int64N(5) // equal times within and across runs
				r.TS = append(r.TS, ts)
				r.Values = append(r.Values, float64(ri*1000+i))
				if withQ {
					r.Quality = append(r.Quality, byte(rng.IntN(3)))
				}
			}
			for i := range r.TS {
				q := byte(0)
				if withQ {
					q = r.Quality[i]
				}
				all = append(all, reading{ri, r.TS[i], r.Values[i], q})
			}
			runs = append(runs, r)
		}
		from, to := rng.Int64N(150), rng.Int64N(300)
		var want []reading
		for _, r := range all {
			if r.ts >= from && r.ts < to {
				want = append(want, r)
			}
		}
		slices.SortStableFunc(want, func(a, b reading) int { return cmp.Or(cmp.Compare(a.ts, b.ts), cmp.Compare(a.series, b.series)) })
		stop := len(want) + 1
		if rng.IntN(4) == 0 && len(want) > 0 {
			stop = rng.IntN(len(want)) + 1
		}
		var got []reading
		Merge(runs, from, to, func(ts int64, v float64, q outpost.Quality) bool {
			got = append(got, reading{int(v) / 1000, ts, v, byte(q)})
			return len(got) < stop
		})
		if stop <= len(want) {
			want = want[:stop]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d [%d, %d): merged\n%v\nwant\n%v", round, from, to, got, want)
		}
	}
}

// Rechunk gives Merge's readings, in chunks of at most the limit, each
// decoding to its part and holding quality only when one is not good:
// a window with sparse readings or more in chunks of its own, the
// windows with fewer between two such together, cut only at the limit.
func TestRechunk(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const size = 10
	for round := range 300 {
		var runs []Run
		for ri := range rng.IntN(5) {
			var r Run
			ts := rng.Int64N(100)
			withQ := rng.IntN(3) == 0
			for i := range rng.IntN(40) {
				ts += rng.Int64N(4)
				r.TS = append(r.TS, ts)
				r.Values = append(r.Values, float64(ri*1000+i))
				if withQ {
					r.Quality = append(r.Quality, byte(rng.IntN(3)))
				}
			}
			runs = append(runs, r)
		}
		from, to := rng.Int64N(50), 50+rng.Int64N(200)
		var want []reading
		count := map[int64]int{} // readings a window
		Merge(runs, from, to, func(ts int64, v float64, q outpost.Quality) bool {
			want = append(want, reading{0, ts, v, byte(q)})
			count[ts/size]++
			return true
		})
		most, sparse := 1+rng.IntN(30), 1+rng.IntN(8)
		var got []reading
		var sizes []int
		err := rechunk(runs, from, to, most, size, sparse, func(tMin, tMax int64, n int, data []byte) error {
			ts, vs, qs, err := chunk.Decode(data, nil, nil, nil)
			if err != nil {
				return err
			}
			if n != len(ts) || n > most || ts[0] != tMin || ts[n-1] != tMax {
				t.Fatalf("round %d: chunk of %d readings (%d to %d) said to be %d (%d to %d), limit %d", round, len(ts), ts[0], ts[n-1], n, tMin, tMax, most)
			}
			if len(qs) > 0 && allZero(qs) {
				t.Fatalf("round %d: an all-good chunk keeps its quality", round)
			}
			if tMin/size != tMax/size {
				for w := tMin / size; w <= tMax/size; w++ {
					if count[w] >= sparse || count[w] > most {
						t.Fatalf("round %d: a chunk from %d to %d holds window %d of %d readings, not sparse (< %d)", round, tMin, tMax, w, count[w], sparse)
					}
				}
			}
			for i := range ts {
				q := byte(0)
				if len(qs) > 0 {
					q = qs[i]
				}
				got = append(got, reading{0, ts[i], vs[i], q})
			}
			sizes = append(sizes, n)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: %d readings in %v, want %d", round, len(got), sizes, len(want))
		}
		// No two chunks in a row could have been one: a chunk is cut
		// only at the limit or at a dense window.
		at := 0
		for k := 1; k < len(sizes); k++ {
			at += sizes[k-1]
			prev, next := got[at-1].ts/size, got[at].ts/size
			if sizes[k-1]+sizes[k] <= most && count[prev] < sparse && count[next] < sparse && prev != next {
				t.Fatalf("round %d: chunks of %v: %d and %d could be one", round, sizes, sizes[k-1], sizes[k])
			}
		}
	}
	// An error of emit ends it.
	stop := errors.New("stop")
	runs := []Run{{TS: []int64{1, 2, 3}, Values: []float64{1, 2, 3}}}
	calls := 0
	if err := rechunk(runs, 0, 10, 1, Window, SparseChunk, func(int64, int64, int, []byte) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("rechunk after emit failed: %v, %d calls", err, calls)
	}
}
