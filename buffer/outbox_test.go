package buffer

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/outposthq/outpost"
)

func TestAppendRead(t *testing.T) {
	o := open(t, newPath(t), nil)
	if o.Epoch() == 0 {
		t.Fatal("epoch is zero")
	}
	t1, a1, t2 := telemetry(1000, 1), alert("overheat"), telemetry(10, 2)
	mustAppend(t, o, t1, a1, t2)
	select {
	case <-o.Notify():
	default:
		t.Fatal("no notification after Append")
	}
	t3, t4 := telemetry(5, 3), telemetry(7, 4)
	mustAppend(t, o, t3, t4)

	for i, b := range []*outpost.Batch{t1, a1, t2, t3, t4} {
		if b.Seq != uint64(i+1) || b.Epoch != o.Epoch() {
			t.Errorf("batch %d: epoch %d seq %d, want %d %d", i, b.Epoch, b.Seq, o.Epoch(), i+1)
		}
	}
	checkEntries(t, readAll(t, o, LaneTelemetry), LaneTelemetry, t1, t2, t3, t4)
	checkEntries(t, readAll(t, o, LaneAlert), LaneAlert, a1)

	st := o.Stats()
	if st.Epoch != o.Epoch() || st.NextSeq != 6 || st.Batches != [2]int{1, 4} {
		t.Errorf("stats %+v", st)
	}
	wantBytes := int64(len(encoded(t, t1)) + len(encoded(t, t2)) + len(encoded(t, t3)) + len(encoded(t, t4)) + 4*crcLen)
	if st.Bytes[LaneTelemetry] != wantBytes {
		t.Errorf("telemetry bytes %d, want %d", st.Bytes[LaneTelemetry], wantBytes)
	}
}

func TestReadPaging(t *testing.T) {
	o := open(t, newPath(t), nil)
	var bs []*outpost.Batch
	for i := range 10 {
		bs = append(bs, telemetry(3, i))
	}
	mustAppend(t, o, bs...)

	tests := []struct {
		name  string
		after uint64
		max   int
		want  []uint64
	}{
		{"first page", 0, 4, []uint64{1, 2, 3, 4}},
		{"next page", 4, 4, []uint64{5, 6, 7, 8}},
		{"last page", 8, 4, []uint64{9, 10}},
		{"past the end", 10, 4, []uint64{}},
		{"max zero", 0, 0, []uint64{}},
		{"after max uint64", ^uint64(0), 4, []uint64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := o.Read(LaneTelemetry, tt.after, tt.max, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := seqsOf(es); !sameSeqs(got, tt.want) {
				t.Errorf("seqs %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("appends to dst", func(t *testing.T) {
		dst := []Entry{{Seq: 99}}
		es, err := o.Read(LaneTelemetry, 0, 2, dst)
		if err != nil {
			t.Fatal(err)
		}
		if got := seqsOf(es); !sameSeqs(got, []uint64{99, 1, 2}) {
			t.Errorf("seqs %v", got)
		}
	})
	t.Run("invalid lane", func(t *testing.T) {
		if _, err := o.Read(Lane(2), 0, 1, nil); err == nil {
			t.Error("no error for lane 2")
		}
	})
}

func TestDelete(t *testing.T) {
	o := open(t, newPath(t), nil)
	bs := []*outpost.Batch{telemetry(10, 1), alert("a"), telemetry(10, 2), alert("b"), telemetry(10, 3)}
	mustAppend(t, o, bs...)

	tests := []struct {
		name   string
		seqs   []uint64
		want   int
		remain [2][]uint64 // per lane
	}{
		{"none", nil, 0, [2][]uint64{{2, 4}, {1, 3, 5}}},
		{"missing only", []uint64{0, 6, 1000}, 0, [2][]uint64{{2, 4}, {1, 3, 5}}},
		{"both lanes, missing and repeated ignored", []uint64{2, 3, 99, 3}, 2, [2][]uint64{{4}, {1, 5}}},
		{"already deleted", []uint64{2, 3}, 0, [2][]uint64{{4}, {1, 5}}},
		{"the rest", []uint64{5, 4, 1}, 3, [2][]uint64{{}, {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := o.Delete(tt.seqs)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.want {
				t.Errorf("deleted %d, want %d", n, tt.want)
			}
			st := o.Stats()
			var bytes [2]int64
			for l := range numLanes {
				es := readAll(t, o, Lane(l))
				if got := seqsOf(es); !sameSeqs(got, tt.remain[l]) {
					t.Errorf("%s lane holds %v, want %v", Lane(l), got, tt.remain[l])
				}
				if st.Batches[l] != len(es) {
					t.Errorf("stats: %d %s batches, want %d", st.Batches[l], Lane(l), len(es))
				}
				for _, e := range es {
					bytes[l] += int64(len(e.Data) + crcLen)
				}
			}
			if st.Bytes != bytes {
				t.Errorf("stats: bytes %v, want %v", st.Bytes, bytes)
			}
		})
	}
}

func TestReopen(t *testing.T) {
	path := newPath(t)
	o, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	epoch := o.Epoch()
	bs := []*outpost.Batch{telemetry(100, 1), alert("a"), telemetry(100, 2), telemetry(100, 3), alert("b")}
	mustAppend(t, o, bs...)
	// Ack the first and the two newest: a new seq must still not reuse 4 or 5.
	if _, err := o.Delete([]uint64{1, 4, 5}); err != nil {
		t.Fatal(err)
	}
	before := o.Stats()
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	o = open(t, path, nil)
	if o.Epoch() != epoch {
		t.Fatalf("epoch %d after reopen, want %d", o.Epoch(), epoch)
	}
	if st := o.Stats(); st.FileBytes == 0 || !sameStats(st, before) {
		t.Errorf("stats after reopen %+v, want %+v", st, before)
	}
	checkEntries(t, readAll(t, o, LaneTelemetry), LaneTelemetry, bs[2])
	checkEntries(t, readAll(t, o, LaneAlert), LaneAlert, bs[1])

	b := telemetry(1, 9)
	mustAppend(t, o, b)
	if b.Seq != 6 || b.Epoch != epoch {
		t.Errorf("after reopen: seq %d epoch %d, want 6 %d", b.Seq, b.Epoch, epoch)
	}
}

// TestCaps: the oldest telemetry goes first, then the alert lane; each
// eviction stores a loss batch (in the alert lane, with the next seq),
// which counts against the caps like any batch.
func TestCaps(t *testing.T) {
	tel := func(seed int) *outpost.Batch { return telemetry(1000, seed) }
	size := int64(len(encoded(t, appendedCopy(tel(0)))) + crcLen) // every tel(seed) has this size
	tests := []struct {
		name         string
		opts         Options
		appends      [][]*outpost.Batch
		alerts, tels []uint64 // seqs left
		loss         []uint64 // which of alerts are loss batches
		evicted      int64
	}{
		{
			name:    "max batches: oldest telemetry first",
			opts:    Options{MaxBatches: 4},
			appends: [][]*outpost.Batch{{alert("a"), tel(1), tel(2)}, {tel(3), alert("b"), tel(5)}},
			alerts:  []uint64{1, 5, 7}, tels: []uint64{6}, loss: []uint64{7}, evicted: 3,
		},
		{
			name:    "max batches: new telemetry goes before old alerts",
			opts:    Options{MaxBatches: 2},
			appends: [][]*outpost.Batch{{alert("a"), alert("b")}, {tel(1)}},
			alerts:  []uint64{2, 4}, tels: []uint64{}, loss: []uint64{4}, evicted: 2,
		},
		{
			name:    "max batches: alerts when no telemetry is left",
			opts:    Options{MaxBatches: 2},
			appends: [][]*outpost.Batch{{alert("a"), tel(1)}, {alert("b"), alert("c")}},
			alerts:  []uint64{4, 5}, tels: []uint64{}, loss: []uint64{5}, evicted: 3,
		},
		{
			name:    "max batches: an old loss batch folds into the new one",
			opts:    Options{MaxBatches: 3},
			appends: [][]*outpost.Batch{{tel(1), tel(2), tel(3), tel(4)}, {alert("a"), alert("b")}},
			// 1, 2 evicted, loss 5; then 3, 4 evicted, 5 folded into 8.
			alerts: []uint64{6, 7, 8}, tels: []uint64{}, loss: []uint64{8}, evicted: 4,
		},
		{
			name:    "max bytes",
			opts:    Options{MaxBytes: 3*size + 4000},
			appends: [][]*outpost.Batch{{tel(1), tel(2)}, {tel(3), tel(4)}, {tel(6)}},
			alerts:  []uint64{5, 7}, tels: []uint64{3, 4, 6}, loss: []uint64{5, 7}, evicted: 2,
		},
		{
			name:    "one append over the cap by itself",
			opts:    Options{MaxBatches: 3},
			appends: [][]*outpost.Batch{{tel(1), tel(2), tel(3), alert("a")}},
			alerts:  []uint64{4, 5}, tels: []uint64{3}, loss: []uint64{5}, evicted: 2,
		},
		{
			name:    "a batch larger than the byte cap is evicted at once",
			opts:    Options{MaxBytes: size / 2},
			appends: [][]*outpost.Batch{{tel(1)}},
			alerts:  []uint64{2}, tels: []uint64{}, loss: []uint64{2}, evicted: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := open(t, newPath(t), &tt.opts)
			for _, bs := range tt.appends {
				mustAppend(t, o, bs...)
			}
			kept := map[uint64]bool{}
			for _, s := range append(slices.Clone(tt.alerts), tt.tels...) {
				kept[s] = true
			}
			var readings int64
			for _, bs := range tt.appends {
				for _, b := range bs {
					if !kept[b.Seq] && b.Kind == outpost.KindTelemetry {
						readings += int64(b.Len())
					}
				}
			}
			alerts := readAll(t, o, LaneAlert)
			if got := seqsOf(alerts); !sameSeqs(got, tt.alerts) {
				t.Errorf("alerts %v, want %v", got, tt.alerts)
			}
			var loss []uint64
			for _, e := range alerts {
				if b := decode(t, e); b.Kind == outpost.KindLoss {
					loss = append(loss, e.Seq)
				}
			}
			if !sameSeqs(loss, tt.loss) {
				t.Errorf("loss batches %v, want %v", loss, tt.loss)
			}
			if got := seqsOf(readAll(t, o, LaneTelemetry)); !sameSeqs(got, tt.tels) {
				t.Errorf("telemetry %v, want %v", got, tt.tels)
			}
			st := o.Stats()
			if st.Evicted != tt.evicted || st.EvictedReadings != readings {
				t.Errorf("evicted %d batches %d readings, want %d %d", st.Evicted, st.EvictedReadings, tt.evicted, readings)
			}
			if st.Batches != [2]int{len(tt.alerts), len(tt.tels)} {
				t.Errorf("stats batches %v", st.Batches)
			}
			if got := lostCount(t, o, outpost.KindTelemetry); got != uint64(readings) {
				t.Errorf("loss records count %d readings, want %d", got, readings)
			}
		})
	}
}

// appendedCopy stamps b as Append would, so its encoded size is the stored one.
func appendedCopy(b *outpost.Batch) *outpost.Batch {
	b.Epoch, b.Seq = 1<<63, 1
	return b
}

func TestClosed(t *testing.T) {
	o, err := Open(newPath(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := o.Close(); err != nil {
			t.Fatalf("Close %d: %v", i, err)
		}
	}
	calls := map[string]error{
		"Append": o.Append([]*outpost.Batch{telemetry(1, 1)}),
	}
	_, calls["Read"] = o.Read(LaneTelemetry, 0, 1, nil)
	_, calls["Delete"] = o.Delete([]uint64{1})
	for name, err := range calls {
		if !errors.Is(err, outpost.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func TestAppendNil(t *testing.T) {
	o := open(t, newPath(t), nil)
	if err := o.Append([]*outpost.Batch{telemetry(1, 1), nil}); err == nil {
		t.Fatal("no error for a nil batch")
	}
	if err := o.Append(nil); err != nil {
		t.Fatalf("empty Append: %v", err)
	}
	select {
	case <-o.Notify():
		t.Fatal("notified without a stored batch")
	default:
	}
	b := telemetry(1, 2)
	mustAppend(t, o, b)
	if b.Seq != 1 {
		t.Errorf("seq %d after failed Append, want 1", b.Seq)
	}
}

// TestConcurrent runs a batcher and an uplink against one outbox: every
// batch is read exactly once, in order, and the counters end at zero.
func TestConcurrent(t *testing.T) {
	o := open(t, newPath(t), &Options{NoSync: true})
	const rounds, per = 50, 4
	var wg sync.WaitGroup
	written := make(chan struct{})
	wg.Go(func() {
		defer close(written)
		for i := range rounds {
			bs := make([]*outpost.Batch, per)
			for j := range bs {
				bs[j] = telemetry(20, i*per+j)
			}
			if i%5 == 0 {
				bs[0] = alert("a")
			}
			if err := o.Append(bs); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var got []uint64
	wg.Go(func() {
		var after [2]uint64
		var dst []Entry
		for done := false; !done; {
			select {
			case <-o.Notify():
			case <-written:
				done = true // drain once more, then stop
			}
			for l := range numLanes {
				for {
					var err error
					dst, err = o.Read(Lane(l), after[l], 7, dst[:0])
					if err != nil {
						t.Error(err)
						return
					}
					if len(dst) == 0 {
						break
					}
					seqs := seqsOf(dst)
					after[l] = seqs[len(seqs)-1]
					got = append(got, seqs...)
					if n, err := o.Delete(seqs); err != nil || n != len(seqs) {
						t.Errorf("Delete: %d, %v", n, err)
						return
					}
				}
			}
		}
	})
	wg.Wait()
	slices.Sort(got)
	if want := seqRange(1, rounds*per); !sameSeqs(slices.Compact(got), want) {
		t.Errorf("read seqs %v, want 1..%d once each", got, rounds*per)
	}
	if st := o.Stats(); st.Batches != [2]int{} || st.Bytes != [2]int64{} {
		t.Errorf("stats after draining: %+v", st)
	}
}

func seqRange(from, n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = uint64(from + i)
	}
	return s
}
