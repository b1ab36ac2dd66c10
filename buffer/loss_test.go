package buffer

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/testclock"
)

// newClock is a clock for Options.Now, at ns.
func newClock(ns int64) *testclock.Clock { return testclock.New(time.Unix(0, ns)) }

// series builds a telemetry batch of one reading per ts for each series
// "sensor/metric" given.
func series(created int64, ss map[string][]int64) *outpost.Batch {
	bb := outpost.NewBatchBuilder()
	keys := make([]string, 0, len(ss))
	for k := range ss {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		sensor, metric, _ := strings.Cut(k, "/")
		for _, ts := range ss[k] {
			bb.Add([]outpost.Reading{{Sensor: sensor, Metric: metric, Unit: "Cel", TS: ts, Value: 1}})
		}
	}
	return bb.Take(testGateway, created)
}

func alertsAt(created int64, rules []string, changed []int64) *outpost.Batch {
	b := &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindAlert, Gateway: testGateway, Created: created}
	for i, r := range rules {
		b.Alerts = append(b.Alerts, outpost.Alert{Rule: r, Fingerprint: r + "{}", State: outpost.StateFiring, ChangedAt: changed[i]})
	}
	return b
}

// lossBatches returns the stored loss batches, checking that each is a
// valid batch of the outbox.
func lossBatches(t *testing.T, o *Outbox, clk *testclock.Clock) []*outpost.Batch {
	t.Helper()
	var bs []*outpost.Batch
	for _, e := range readAll(t, o, LaneAlert) {
		b := decode(t, e)
		if b.Kind != outpost.KindLoss {
			continue
		}
		if b.Gateway != testGateway || b.Epoch != o.Epoch() || b.Flags != 0 || (clk != nil && b.Created != clk.Now().UnixNano()) {
			t.Errorf("loss batch %d: gateway %q epoch %d flags %d created %d", e.Seq, b.Gateway, b.Epoch, b.Flags, b.Created)
		}
		bs = append(bs, b)
	}
	return bs
}

// TestLossRecords checks every field of the loss records of evicted
// telemetry and alerts, and that they travel as valid loss batches in the
// alert lane.
func TestLossRecords(t *testing.T) {
	now := testBase + int64(time.Hour)
	clk := newClock(now)
	o := open(t, newPath(t), &Options{MaxBatches: 2, Now: clk.Now})
	ep := o.Epoch()

	a := series(now, map[string][]int64{"s1/temp": {100, 200, 300}, "s2/hum": {150}})
	b := series(now, map[string][]int64{"s1/temp": {500, 400}})
	c := alertsAt(now, []string{"hot", "cold", "hot"}, []int64{1000, 1500, 2000})
	d := series(now, map[string][]int64{"s3/x": {600}})
	// 4 batches and a loss batch for a cap of 2: a, b, then d go.
	mustAppend(t, o, a, b, c, d)
	want := []outpost.Loss{
		{Reason: outpost.LossMaxBatches, Kind: outpost.KindTelemetry, Sensor: "s1", Metric: "temp", From: 100, To: 500, Count: 5, Epoch: ep, FirstSeq: 1, LastSeq: 2, At: now},
		{Reason: outpost.LossMaxBatches, Kind: outpost.KindTelemetry, Sensor: "s2", Metric: "hum", From: 150, To: 150, Count: 1, Epoch: ep, FirstSeq: 1, LastSeq: 1, At: now},
		{Reason: outpost.LossMaxBatches, Kind: outpost.KindTelemetry, Sensor: "s3", Metric: "x", From: 600, To: 600, Count: 1, Epoch: ep, FirstSeq: 4, LastSeq: 4, At: now},
	}
	lb := lossBatches(t, o, clk)
	if len(lb) != 1 || lb[0].Seq != 5 || !slices.Equal(lb[0].Losses, want) {
		t.Fatalf("loss batches %+v\nwant one, seq 5, %+v", lb, want)
	}
	if got := seqsOf(readAll(t, o, LaneAlert)); !sameSeqs(got, []uint64{3, 5}) {
		t.Errorf("alert lane %v, want [3 5]", got)
	}

	// Next, the new telemetry goes, then the alert batch: a loss batch of
	// telemetry and alert records, the older loss batch kept.
	clk.Add(time.Second)
	now += int64(time.Second)
	mustAppend(t, o, series(now, map[string][]int64{"s4/y": {700, 800}}))
	want = []outpost.Loss{
		{Reason: outpost.LossMaxBatches, Kind: outpost.KindTelemetry, Sensor: "s4", Metric: "y", From: 700, To: 800, Count: 2, Epoch: ep, FirstSeq: 6, LastSeq: 6, At: now},
		{Reason: outpost.LossMaxBatches, Kind: outpost.KindAlert, Rule: "hot", From: 1000, To: 2000, Count: 2, Epoch: ep, FirstSeq: 3, LastSeq: 3, At: now},
		{Reason: outpost.LossMaxBatches, Kind: outpost.KindAlert, Rule: "cold", From: 1500, To: 1500, Count: 1, Epoch: ep, FirstSeq: 3, LastSeq: 3, At: now},
	}
	lb = lossBatches(t, o, nil)
	if len(lb) != 2 || lb[1].Seq != 7 || !slices.Equal(lb[1].Losses, want) {
		t.Fatalf("loss batches %+v\nwant two, the second seq 7 with %+v", lb, want)
	}
	st := o.Stats()
	wantC := Counters{Evicted: 5, EvictedReadings: 9, EvictedAlerts: 3, LossRecords: 2}
	if st.Counters != wantC || st.Persisted != wantC {
		t.Errorf("counters %+v persisted %+v, want %+v", st.Counters, st.Persisted, wantC)
	}
	if st.NextSeq != 8 || st.Batches != [2]int{2, 0} {
		t.Errorf("stats %+v", st)
	}
}

// TestMaxAge evicts by Created with an injected clock: nothing until a
// lane's oldest batch passes the cap, then everything older than 63/64 of
// it, on Append and on Open, telemetry and alerts, with max_age loss
// records; an expired loss batch folds into the new one.
func TestMaxAge(t *testing.T) {
	const maxAge = 64 * time.Hour // lowWater margin: 1h
	t0 := testBase
	clk := newClock(t0)
	path := newPath(t)
	opts := &Options{MaxAge: maxAge, Now: clk.Now}
	o, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	at := func(h float64) int64 { return t0 - int64(h*float64(time.Hour)) }
	tel := func(h float64) *outpost.Batch {
		return series(at(h), map[string][]int64{"s/m": {at(h)}})
	}
	// Within the cap, two of them within the margin: nothing goes.
	mustAppend(t, o, tel(63.5), tel(62.5), alertsAt(at(63.9), []string{"r"}, []int64{at(63.9)}), tel(10))
	if st := o.Stats(); st.Evicted != 0 || st.OldestCreated != [2]int64{at(63.9), at(63.5)} {
		t.Fatalf("stats %+v", st)
	}

	// An hour on, seq 1 and the alert are past the cap: they go, and seq 2
	// with them (past 63/64 of it); seq 4 stays.
	clk.Add(time.Hour)
	now := clk.Now().UnixNano()
	mustAppend(t, o, tel(0))
	if got := seqsOf(readAll(t, o, LaneTelemetry)); !sameSeqs(got, []uint64{4, 5}) {
		t.Errorf("telemetry left %v, want [4 5]", got)
	}
	if got := seqsOf(readAll(t, o, LaneAlert)); !sameSeqs(got, []uint64{6}) {
		t.Errorf("alert lane %v, want only the loss batch 6", got)
	}
	ep := o.Epoch()
	want := []outpost.Loss{
		{Reason: outpost.LossMaxAge, Kind: outpost.KindTelemetry, Sensor: "s", Metric: "m", From: at(63.5), To: at(62.5), Count: 2, Epoch: ep, FirstSeq: 1, LastSeq: 2, At: now},
		{Reason: outpost.LossMaxAge, Kind: outpost.KindAlert, Rule: "r", From: at(63.9), To: at(63.9), Count: 1, Epoch: ep, FirstSeq: 3, LastSeq: 3, At: now},
	}
	if lb := lossBatches(t, o, clk); len(lb) != 1 || !slices.Equal(lb[0].Losses, want) {
		t.Fatalf("loss batches %+v, want one with %+v", lb, want)
	}
	if st := o.Stats(); st.OldestCreated != [2]int64{now, at(10)} {
		t.Errorf("oldest created %v, want the loss batch's and seq 4's", st.OldestCreated)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	// 70h later Open finds everything past the cap: the readings go, and
	// the loss batch folds into the new one.
	clk.Add(70 * time.Hour)
	o = open(t, path, opts)
	if got := seqsOf(readAll(t, o, LaneTelemetry)); len(got) != 0 {
		t.Errorf("telemetry after reopen %v", got)
	}
	want = []outpost.Loss{
		{Reason: outpost.LossMaxAge, Kind: outpost.KindTelemetry, Sensor: "s", Metric: "m", From: at(63.5), To: at(0), Count: 4, Epoch: ep, FirstSeq: 1, LastSeq: 5, At: now},
		want[1],
	}
	if lb := lossBatches(t, o, clk); len(lb) != 1 || lb[0].Seq != 7 || !slices.Equal(lb[0].Losses, want) {
		t.Fatalf("loss batches after reopen %+v, want seq 7 with %+v", lb, want)
	}
	if st := o.Stats(); st.Evicted != 2 || st.Persisted.Evicted != 5 || st.Persisted.LossRecords != 2 {
		t.Errorf("counters since open %+v, persisted %+v", st.Counters, st.Persisted)
	}
}

// TestAlertsOutliveTelemetry: under sustained pressure every alert stays
// while there is telemetry to evict, and the alert lane is read first.
func TestAlertsOutliveTelemetry(t *testing.T) {
	o := open(t, newPath(t), &Options{MaxBatches: 40, NoSync: true})
	var alerts []uint64
	for i := range 200 {
		bs := batches(telemetry(50, i), telemetry(50, i+1000))
		if i%20 == 0 {
			bs = append(bs, alert("r"))
		}
		mustAppend(t, o, bs...)
		if i%20 == 0 {
			alerts = append(alerts, bs[2].Seq)
		}
	}
	var stored []uint64
	for _, e := range readAll(t, o, LaneAlert) {
		if decode(t, e).Kind == outpost.KindAlert {
			stored = append(stored, e.Seq)
		}
	}
	if !sameSeqs(stored, alerts) {
		t.Errorf("alerts stored %v, want all of %v", stored, alerts)
	}
	if st := o.Stats(); st.EvictedAlerts != 0 || st.Batches[LaneTelemetry] == 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestLossNeverLost: under random appends and caps that squeeze the loss
// batches too (folded, consolidated), the stored loss records account for
// every evicted reading and alert, after every Append.
func TestLossNeverLost(t *testing.T) {
	for _, maxBatches := range []int{1, 3, 7, 64} {
		o := open(t, newPath(t), &Options{MaxBatches: maxBatches, NoSync: true})
		r := rand.New(rand.NewPCG(5, uint64(maxBatches)))
		for i := range 300 {
			var bs []*outpost.Batch
			for range 1 + r.IntN(4) {
				if r.IntN(3) == 0 {
					bs = append(bs, alert([...]string{"a", "b", "c"}[r.IntN(3)]))
				} else {
					bs = append(bs, telemetry(1+r.IntN(40), i))
				}
			}
			mustAppend(t, o, bs...)
			st := o.Stats()
			if n := int(st.Batches[0] + st.Batches[1]); n > maxBatches {
				t.Fatalf("max batches %d: %d stored", maxBatches, n)
			}
			if got := lostCount(t, o, outpost.KindTelemetry); got != uint64(st.EvictedReadings) {
				t.Fatalf("max batches %d, append %d: loss records count %d readings, %d evicted", maxBatches, i, got, st.EvictedReadings)
			}
			if got := lostCount(t, o, outpost.KindAlert); got != uint64(st.EvictedAlerts) {
				t.Fatalf("max batches %d, append %d: loss records count %d alerts, %d evicted", maxBatches, i, got, st.EvictedAlerts)
			}
		}
		if n := len(lossBatches(t, o, nil)); maxBatches == 64 && n > 16 {
			t.Errorf("%d loss batches: not consolidated", n)
		}
	}
}

func TestDropCorrupt(t *testing.T) {
	path := newPath(t)
	o, err := Open(path, &Options{Gateway: testGateway})
	if err != nil {
		t.Fatal(err)
	}
	bs := batches(telemetry(100, 1), telemetry(3000, 2), telemetry(50, 3), alert("a"), alert("b"))
	mustAppend(t, o, bs...)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	// Damage seq 2 (many chunks) in a middle chunk, and seq 5's only one.
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		if err := flipValue(tx.Bucket(laneBuckets[LaneTelemetry]), chunkKey(2, 3)); err != nil {
			return err
		}
		return flipValue(tx.Bucket(laneBuckets[LaneAlert]), putKey(nil, 5))
	})

	o = open(t, path, &Options{Gateway: testGateway})
	es, err := o.Read(LaneTelemetry, 0, 10, nil)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Seq != 2 || len(es) != 1 {
		t.Fatalf("Read: %d entries, %v; want 1 and seq 2 corrupt", len(es), err)
	}
	if err := o.DropCorrupt(1); err == nil {
		t.Error("DropCorrupt of a sound batch succeeded")
	}
	for _, seq := range []uint64{2, 5, 99} {
		if err := o.DropCorrupt(seq); err != nil {
			t.Fatalf("DropCorrupt(%d): %v", seq, err)
		}
	}
	checkEntries(t, readAll(t, o, LaneTelemetry), LaneTelemetry, bs[0], bs[2])
	want := []outpost.Loss{
		{Reason: outpost.LossCorrupt, Kind: outpost.KindTelemetry, Sensor: "*", Metric: "*", Epoch: o.Epoch(), FirstSeq: 2, LastSeq: 2},
		{Reason: outpost.LossCorrupt, Kind: outpost.KindAlert, Epoch: o.Epoch(), FirstSeq: 5, LastSeq: 5},
	}
	checkCorruptLoss(t, o, want)
	st := o.Stats()
	if st.Corrupt != 2 || st.LossRecords != 2 || st.Evicted != 0 || st.Batches != [2]int{3, 2} {
		t.Errorf("stats %+v", st)
	}
	for _, k := range rawKeys(t, o, LaneTelemetry) {
		if binary.BigEndian.Uint64(k) == 2 {
			t.Errorf("key %x of seq 2 left", k)
		}
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	// A damaged batch at the head of a lane is dropped by Open: the age
	// cap could not see past it, nor the uplink.
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return flipValue(tx.Bucket(laneBuckets[LaneTelemetry]), chunkKey(1, 1))
	})
	o = open(t, path, nil)
	if got := seqsOf(readAll(t, o, LaneTelemetry)); !sameSeqs(got, []uint64{3}) {
		t.Errorf("telemetry %v, want [3]", got)
	}
	want = append(want, outpost.Loss{Reason: outpost.LossCorrupt, Kind: outpost.KindTelemetry, Sensor: "*", Metric: "*", Epoch: o.Epoch(), FirstSeq: 1, LastSeq: 1})
	checkCorruptLoss(t, o, want)
	if st := o.Stats(); st.Corrupt != 1 || st.Persisted.Corrupt != 3 {
		t.Errorf("stats %+v", st)
	}
}

// checkCorruptLoss checks the stored loss batches hold one record each,
// want, apart from the time.
func checkCorruptLoss(t *testing.T, o *Outbox, want []outpost.Loss) {
	t.Helper()
	lb := lossBatches(t, o, nil)
	if len(lb) != len(want) {
		t.Fatalf("%d loss batches, want %d", len(lb), len(want))
	}
	for i, b := range lb {
		l := b.Losses[0]
		l.At = 0
		if len(b.Losses) != 1 || l != want[i] || b.Losses[0].At == 0 {
			t.Errorf("loss batch %d: %+v, want %+v", i, b.Losses, want[i])
		}
	}
}

func TestReadOnly(t *testing.T) {
	path := newPath(t)
	o, err := Open(path, &Options{MaxBatches: 5})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		mustAppend(t, o, telemetry(2000, i), alert("a"))
	}
	want := o.Stats()
	if _, err := Open(path, &Options{ReadOnly: true}); !errors.Is(err, ErrLocked) {
		t.Errorf("read-only Open of a file in use: %v, want ErrLocked", err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, path)

	ro := open(t, path, &Options{ReadOnly: true})
	got := ro.Stats()
	want.Counters, want.FileBytes = Counters{}, got.FileBytes
	if got != want {
		t.Errorf("read-only stats %+v\nwant %+v", got, want)
	}
	if es := readAll(t, ro, LaneTelemetry); len(es) != want.Batches[LaneTelemetry] {
		t.Errorf("read %d entries", len(es))
	}
	_, derr := ro.Delete([]uint64{1})
	for name, err := range map[string]error{
		"Append": ro.Append(batches(telemetry(1, 1))), "Delete": derr, "DropCorrupt": ro.DropCorrupt(1),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s: %v, want ErrReadOnly", name, err)
		}
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(readFile(t, path), before) {
		t.Error("the read-only outbox changed the file")
	}

	missing := newPath(t)
	if _, err := Open(missing, &Options{ReadOnly: true}); err == nil {
		t.Error("read-only Open of a missing file succeeded")
	}
	bad := newPath(t)
	writeFile(t, bad, randomBytes(8192))
	if _, err := Open(bad, &Options{ReadOnly: true}); err == nil {
		t.Error("read-only Open of garbage succeeded")
	}
	if m, _ := filepath.Glob(bad + ".corrupt-*"); len(m) != 0 {
		t.Errorf("read-only Open moved a file aside: %v", m)
	}
}

// TestReopenCounters: a reopened outbox has the same contents, seq and
// persisted counters; the counters since Open start at zero.
func TestReopenCounters(t *testing.T) {
	path := newPath(t)
	o, err := Open(path, &Options{MaxBatches: 6})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		mustAppend(t, o, telemetry(500, i), alert("a"))
	}
	if _, err := o.Delete([]uint64{12}); err != nil {
		t.Fatal(err)
	}
	before := o.Stats()
	if before.Evicted == 0 || before.Counters != before.Persisted {
		t.Fatalf("stats %+v", before)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = open(t, path, &Options{MaxBatches: 6})
	after := o.Stats()
	before.Counters = Counters{}
	if !sameStats(after, before) {
		t.Errorf("after reopen %+v\nwant %+v", after, before)
	}
}
