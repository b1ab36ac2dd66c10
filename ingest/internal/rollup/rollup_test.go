package rollup

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/outposthq/outpost"
)

type reading struct {
	ts int64
	v  float64
	q  outpost.Quality
}

// store is a series whose windows were rolled up, some of them since
// changed (stale, their rows left as they were).
type store struct {
	readings []reading // sorted by ts
	hours    []Agg
	minutes  []Agg
	stale    []int64
}

// roll rolls every window up as the compactor does, then adds late
// readings to some windows, which become stale.
func roll(rs []reading, late []reading) *store {
	s := &store{}
	var w Window
	var mins []Agg
	for i := 0; i < len(rs); {
		start := Floor(rs[i].ts, Hour)
		w.Reset(start)
		j := i
		for ; j < len(rs) && Floor(rs[j].ts, Hour) == start; j++ {
			w.Add(rs[j].ts, rs[j].v, rs[j].q)
		}
		h, ok, m := w.Rows(mins)
		if ok {
			s.hours = append(s.hours, h)
		}
		s.minutes = append(s.minutes, m...)
		mins = m
		i = j
	}
	for _, r := range late {
		s.stale = append(s.stale, Floor(r.ts, Hour))
	}
	s.readings = append(slices.Clone(rs), late...)
	slices.SortStableFunc(s.readings, func(a, b reading) int { return cmpInt(a.ts, b.ts) })
	return s
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *store) source() Source {
	return Source{
		Hours: func(from, to int64) ([]Agg, error) {
			var out []Agg
			for _, h := range s.hours {
				if h.Bucket >= from && h.Bucket < to {
					out = append(out, h)
				}
			}
			return out, nil
		},
		Stale: func(from, to int64) ([]int64, error) {
			var out []int64
			for _, w := range s.stale {
				if w >= from && w < to {
					out = append(out, w)
				}
			}
			return out, nil
		},
		Minutes: func(from, to int64, yield func(Agg) bool) error {
			for _, m := range s.minutes {
				if m.Bucket >= from && m.Bucket < to && !yield(m) {
					return nil
				}
			}
			return nil
		},
		Raw: func(from, to int64, yield func(int64, float64, outpost.Quality) bool) error {
			for _, r := range s.readings {
				if r.ts >= from && r.ts < to && !yield(r.ts, r.v, r.q) {
					return nil
				}
			}
			return nil
		},
	}
}

// want aggregates the readings bucket by bucket, the plain way.
func want(rs []reading, q Query) []Agg {
	var out []Agg
	for _, r := range rs {
		if r.ts < Floor(q.From, q.Step) || r.ts >= q.To {
			continue
		}
		b := Floor(r.ts, q.Step)
		if len(out) == 0 || out[len(out)-1].Bucket != b {
			if len(out) == q.Limit {
				break
			}
			out = append(out, Empty(b))
		}
		out[len(out)-1].Add(r.ts, r.v, r.q)
	}
	return out
}

func same(a, b Agg) bool {
	eq := func(x, y float64) bool {
		return x == y || math.IsNaN(x) && math.IsNaN(y) || math.Abs(x-y) <= 1e-9*math.Max(math.Abs(x), math.Abs(y))
	}
	return a.Bucket == b.Bucket && a.N == b.N && a.Count == b.Count && eq(a.Min, b.Min) && eq(a.Max, b.Max) &&
		eq(a.Sum, b.Sum) && a.LastTS == b.LastTS && eq(a.Last, b.Last)
}

// TestBucketsMatchReadings checks that buckets served from rollups,
// stale windows and raw readings together equal the readings aggregated
// directly, for steps served from hours, minutes and raw, ranges cut
// anywhere, with dense and sparse hours, bad readings, NaN and late data.
func TestBucketsMatchReadings(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const t0 = int64(1_780_000_000e9)
	var rs []reading
	ts := t0 + 123e9
	for i := 0; i < 140_000; i++ {
		// Dense stretches (10 Hz: hour and minute rows), medium ones
		// (1 Hz: hour rows), sparse ones (30 s: none), and a day off.
		switch k := i % 70_000; {
		case k < 50_000:
			ts += 100e6
		case k < 60_000:
			ts += 1e9
		case k == 60_000:
			ts += 24 * Hour
		default:
			ts += 30e9
		}
		r := reading{ts: ts, v: math.Round(rng.NormFloat64()*1000) / 100}
		switch rng.IntN(50) {
		case 0:
			r.q = outpost.QualityBad
		case 1:
			r.q = outpost.QualityUncertain
		case 2:
			r.v = math.NaN()
		}
		rs = append(rs, r)
	}
	var late []reading
	for _, i := range []int{55_000, 65_000, 118_000, 139_000} { // medium, sparse, dense, sparse
		late = append(late, reading{ts: rs[i].ts + 1, v: 1e6, q: outpost.QualityGood})
	}
	s := roll(rs, late)
	src := s.source()
	rowsRead := 0
	minutes := src.Minutes
	src.Minutes = func(from, to int64, yield func(Agg) bool) error {
		return minutes(from, to, func(a Agg) bool { rowsRead++; return yield(a) })
	}
	end := s.readings[len(s.readings)-1].ts + 1
	for _, step := range []int64{7e9, Minute, 5 * Minute, 90 * Minute, Hour, 6 * Hour, 24 * Hour} {
		for k := 0; k < 20; k++ {
			from := t0 + rng.Int64N(end-t0)
			to := from + rng.Int64N(end-from+1)
			if k == 0 {
				from, to = t0, end
			}
			q := Query{From: from, To: to, Step: step, Limit: 1 + rng.IntN(5000)}
			if k == 0 {
				q.Limit = math.MaxInt32
			}
			var got []Agg
			if err := Buckets(src, q, func(a Agg) bool { got = append(got, a); return true }); err != nil {
				t.Fatal(err)
			}
			if k == 0 && step%Minute == 0 && rowsRead == 0 {
				t.Fatalf("step %d over everything read no minute rows", step)
			}
			exp := want(s.readings, q)
			if len(got) != len(exp) {
				t.Fatalf("step %d [%d, %d) limit %d: %d buckets, want %d", step, from, to, q.Limit, len(got), len(exp))
			}
			for i := range got {
				if !same(got[i], exp[i]) {
					t.Fatalf("step %d [%d, %d): bucket %d:\n got %+v\nwant %+v", step, from, to, i, got[i], exp[i])
				}
			}
		}
	}
}

// TestPlanReadsRows checks that a long range of current windows is read
// from the rows, not from the readings: hours from hour rows, and minutes
// from minute rows where the hour is dense enough to have them (not the
// second, at 1 Hz).
func TestPlanReadsRows(t *testing.T) {
	const t0 = int64(1_780_000_000e9) / Hour * Hour
	hours := []Agg{{Bucket: t0, N: 36000}, {Bucket: t0 + Hour, N: 3600}, {Bucket: t0 + 2*Hour, N: 36000}, {Bucket: t0 + 3*Hour, N: 36000}}
	stale := []int64{t0 + 3*Hour}
	to := t0 + 4*Hour + 5
	got := plan(t0, to, Hour, hours, stale)
	exp := []segment{{t0, t0 + 3*Hour, true}, {t0 + 3*Hour, to, false}}
	if !slices.Equal(got, exp) {
		t.Errorf("hours: %v, want %v", got, exp)
	}
	got = plan(t0, to, Minute, hours, stale)
	exp = []segment{{t0, t0 + Hour, true}, {t0 + Hour, t0 + 2*Hour, false}, {t0 + 2*Hour, t0 + 3*Hour, true}, {t0 + 3*Hour, to, false}}
	if !slices.Equal(got, exp) {
		t.Errorf("minutes: %v, want %v", got, exp)
	}
}

func TestQueryCheck(t *testing.T) {
	for _, q := range []Query{{Step: 0, Limit: 1}, {Step: -1, Limit: 1}, {Step: 1, Limit: 0}} {
		if err := Buckets(Source{}, q, func(Agg) bool { return true }); err == nil {
			t.Errorf("%+v: no error", q)
		}
	}
}
