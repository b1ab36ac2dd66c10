package layout

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest/internal/chunk"
)

// Windows yields what Merge yields of the same chunks and rows, chunks
// first among equal timestamps, for chunks that overlap, span hours
// within a day, or lie apart, and rows between and among them.
func TestWindows(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const day = 2 * Span
	for round := range 300 {
		var chunks []Run
		for range rng.IntN(6) {
			var r Run
			ts := day + rng.Int64N(3*Span)
			span := SpanOf(ts)
			for i := range 1 + rng.IntN(20) {
				if i > 0 {
					ts += rng.Int64N(2 * Window)
				}
				if SpanOf(ts) != span {
					break
				}
				r.TS = append(r.TS, ts)
				r.Values = append(r.Values, float64(len(chunks)*100+i))
			}
			chunks = append(chunks, r)
		}
		slices.SortStableFunc(chunks, func(a, b Run) int { return cmp.Compare(a.TS[0], b.TS[0]) })
		var rows Run
		for range rng.IntN(30) {
			rows.TS = append(rows.TS, day+rng.Int64N(3*Span))
		}
		slices.Sort(rows.TS)
		for i := range rows.TS {
			rows.Values = append(rows.Values, float64(-i))
			rows.Quality = append(rows.Quality, byte(rng.IntN(3)))
		}
		from, to := day+rng.Int64N(2*Span), day+Span+rng.Int64N(3*Span)
		var want []reading
		Merge(append(slices.Clone(chunks), rows), from, to, func(ts int64, v float64, q outpost.Quality) bool {
			want = append(want, reading{0, ts, v, byte(q)})
			return true
		})
		ci, ri := 0, 0
		var data []byte
		w := Windows{
			NextChunk: func() (int64, []byte, bool, error) {
				// As a store reads them: those that start in the span
				// of from or later and end at from or later.
				for ci < len(chunks) && (chunks[ci].TS[0] < SpanOf(from) || chunks[ci].TS[len(chunks[ci].TS)-1] < from) {
					ci++
				}
				if ci == len(chunks) || chunks[ci].TS[0] >= to {
					return 0, nil, false, nil
				}
				c := chunks[ci]
				ci++
				var err error
				data, err = chunk.Append(data[:0], c.TS, c.Values, nil)
				return c.TS[0], data, err == nil, err
			},
			NextRow: func() (int64, float64, outpost.Quality, bool, error) {
				for ri < len(rows.TS) && rows.TS[ri] < from {
					ri++
				}
				if ri == len(rows.TS) || rows.TS[ri] >= to {
					return 0, 0, 0, false, nil
				}
				ri++
				return rows.TS[ri-1], rows.Values[ri-1], outpost.Quality(rows.Quality[ri-1]), true, nil
			},
		}
		var got []reading
		limit := len(want) + 1
		if round%3 == 0 && len(want) > 0 {
			limit = 1 + rng.IntN(len(want))
		}
		err := w.Yield(from, to, limit, func(ts int64, v float64, q outpost.Quality) bool {
			got = append(got, reading{0, ts, v, byte(q)})
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want[:min(limit, len(want))]) {
			t.Fatalf("round %d: got %d readings, want %d:\n%v\n%v", round, len(got), min(limit, len(want)), got, want)
		}
	}
}
