package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

// testRetention, for a store that maintains itself: twelve days of
// readings and alerts, compacted; a retention of three days for the raw
// data and one for the minute rollups keeps what is dated from the
// horizons on (ingest.Horizon: the start of the week that holds now
// minus the retention, as PostgreSQL drops whole weekly partitions), the
// hour rollups all, and a batch that arrives for an expired week later is
// stored and expires at the next pass.
func testRetention(t *testing.T, s ingest.Store) {
	m, ok := s.(ingest.Maintainer)
	if !ok {
		t.Skip("the store does not maintain itself")
	}
	const day, n, days = int64(24 * time.Hour), 30000, 12
	now := time.Now().UnixNano()
	today := now - now%day
	seq := uint64(0)
	batchAt := func(at int64) {
		for k := range int64(3) { // 30 000 readings at 10 Hz in 50 minutes: hour and minute rollups
			seq++
			b := Telemetry("gw", 1, seq, Series("s", "t", at+k*1000*int64(time.Second), 100*time.Millisecond, 10000, 0)...)
			b.Created = at + (k+1)*1000*int64(time.Second)
			commit(t, s, b, false)
		}
		seq++
		a := AlertBatch("gw", 1, seq, outpost.Alert{Rule: "hot", Fingerprint: "hot{}", State: outpost.StateFiring,
			Severity: "warning", Value: 1, StartedAt: at, ChangedAt: at, Seq: seq})
		a.Created = at
		commit(t, s, a, false)
	}
	retention := ingest.Retention{Raw: 3 * day, Minute: day}
	raw, minute := ingest.Horizon(now, 3*24*time.Hour), ingest.Horizon(now, 24*time.Hour)
	var keptRaw, keptMinute int64
	for d := range int64(days) {
		at := today - d*day + int64(time.Hour)
		batchAt(at)
		if at >= raw {
			keptRaw++
		}
		if at >= minute {
			keptMinute++
		}
	}
	if keptRaw == days || keptRaw == 0 {
		t.Fatalf("the test's days do not straddle the horizon: %d of %d kept", keptRaw, days)
	}
	if c, ok := s.(ingest.Compactor); ok {
		if _, err := c.Compact(ctx(t), now+2*int64(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Maintain(ctx(t), now, retention); err != nil {
		t.Fatal(err)
	}
	want := ingest.Counts{Readings: keptRaw * n, DistinctReadings: keptRaw * n, Alerts: keptRaw, Batches: 4 * keptRaw}
	counts(t, s, want)
	if q, ok := s.(Querier); ok {
		if _, compacts := s.(ingest.Compactor); compacts {
			for table, want := range map[string]int64{"rollup_1h": days, "rollup_1m": 50 * keptMinute} {
				got, err := q.QueryStrings(ctx(t), `SELECT CAST(count(*) AS TEXT) FROM `+table)
				if err != nil || len(got) != 1 || got[0] != fmt.Sprint(want) {
					t.Errorf("%s after the retention: %v, %v; want %d", table, got, err, want)
				}
			}
		}
	}
	// Late data for an expired week is stored, then expires again.
	batchAt(today - 20*day)
	counts(t, s, ingest.Counts{Readings: want.Readings + n, DistinctReadings: want.Readings + n, Alerts: want.Alerts + 1, Batches: want.Batches + 4})
	if _, err := m.Maintain(ctx(t), now, retention); err != nil {
		t.Fatal(err)
	}
	counts(t, s, want)
}
