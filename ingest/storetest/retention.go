package storetest

import (
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

// testRetention, for a store that maintains itself: ten days of
// readings and alerts, compacted; a retention of three days for the raw
// data and one for the minute rollups keeps the last four and two whole
// days (what ends before the start of the day that holds now minus the
// retention goes), the hour rollups all, and a batch that arrives for an
// expired day later is stored and expires at the next pass.
func testRetention(t *testing.T, s ingest.Store) {
	m, ok := s.(ingest.Maintainer)
	if !ok {
		t.Skip("the store does not maintain itself")
	}
	const day, n = int64(24 * time.Hour), 30000
	now := time.Now().UnixNano()
	today := now - now%day
	seq := uint64(0)
	batchAt := func(at int64) {
		seq++
		for k := range int64(3) { // 30 000 readings at 10 Hz in 50 minutes: hour and minute rollups
			b := Telemetry("gw", 1, seq, Series("s", "t", at+k*1000*int64(time.Second), 100*time.Millisecond, 10000, 0)...)
			b.Created = at + (k+1)*1000*int64(time.Second)
			commit(t, s, b, false)
			seq++
		}
		a := AlertBatch("gw", 1, seq, outpost.Alert{Rule: "hot", Fingerprint: "hot{}", State: outpost.StateFiring,
			Severity: "warning", Value: 1, StartedAt: at, ChangedAt: at, Seq: seq})
		a.Created = at
		commit(t, s, a, false)
	}
	for d := range int64(10) {
		batchAt(today - d*day + int64(time.Hour))
	}
	if c, ok := s.(ingest.Compactor); ok {
		if _, err := c.Compact(ctx(t), now+2*int64(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	retention := ingest.Retention{Raw: 3 * day, Minute: day}
	if _, err := m.Maintain(ctx(t), now, retention); err != nil {
		t.Fatal(err)
	}
	counts(t, s, ingest.Counts{Readings: 4 * n, DistinctReadings: 4 * n, Alerts: 4, Batches: 16})
	if q, ok := s.(Querier); ok {
		if _, compacts := s.(ingest.Compactor); compacts {
			for table, want := range map[string]string{"rollup_1h": "10", "rollup_1m": "100"} {
				got, err := q.QueryStrings(ctx(t), `SELECT CAST(count(*) AS TEXT) FROM `+table)
				if err != nil || len(got) != 1 || got[0] != want {
					t.Errorf("%s after the retention: %v, %v; want %s", table, got, err, want)
				}
			}
		}
	}
	// Late data for an expired day is stored, then expires again.
	batchAt(today - 8*day)
	counts(t, s, ingest.Counts{Readings: 5 * n, DistinctReadings: 5 * n, Alerts: 5, Batches: 20})
	if _, err := m.Maintain(ctx(t), now, retention); err != nil {
		t.Fatal(err)
	}
	counts(t, s, ingest.Counts{Readings: 4 * n, DistinctReadings: 4 * n, Alerts: 4, Batches: 16})
}
