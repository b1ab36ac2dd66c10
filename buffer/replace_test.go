package buffer

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/testclock"
)

// Replace deletes the old batches and stores the new ones under new seqs
// in one transaction, and wakes the reader.
func TestReplace(t *testing.T) {
	path := newPath(t)
	o := open(t, path, nil)
	mustAppend(t, o, telemetry(10, 1), telemetry(10, 2), telemetry(10, 3))
	select {
	case <-o.Notify():
	default:
	}
	nb := telemetry(10, 9)
	if err := o.Replace([]uint64{1, 3, 99}, []*outpost.Batch{nb}); err != nil {
		t.Fatal(err)
	}
	es := readAll(t, o, LaneTelemetry)
	if got := seqsOf(es); !sameSeqs(got, []uint64{2, 4}) {
		t.Fatalf("seqs after Replace %v, want [2 4]: the old gone, the new under the next seq", got)
	}
	if b := decode(t, es[1]); b.Seq != 4 || b.Len() != 10 || b.Created != nb.Created {
		t.Fatalf("replacement %+v", b)
	}
	select {
	case <-o.Notify():
	default:
		t.Fatal("Replace did not notify")
	}
	if st := o.Stats(); st.Batches[LaneTelemetry] != 2 || st.NextSeq != 5 || st.Evicted != 0 {
		t.Fatalf("stats %+v", st)
	}
	// A batch that cannot be encoded changes nothing.
	bad := telemetry(1, 1)
	bad.Flags = 0x80
	if err := o.Replace([]uint64{2}, []*outpost.Batch{bad}); err == nil {
		t.Fatal("Replace with an unencodable batch succeeded")
	}
	if got := seqsOf(readAll(t, o, LaneTelemetry)); !sameSeqs(got, []uint64{2, 4}) {
		t.Fatalf("seqs after a failed Replace %v, want [2 4]", got)
	}
}

// While HoldAge says so, the age cap evicts nothing; once it lets go the
// next Append evicts as usual.
func TestHoldAge(t *testing.T) {
	clk := testclock.New(time.Unix(0, testBase))
	var hold atomic.Bool
	hold.Store(true)
	o := open(t, newPath(t), &Options{MaxAge: time.Hour, Now: clk.Now, HoldAge: hold.Load})
	mustAppend(t, o, telemetry(5, 0))
	clk.Step(100 * 365 * 24 * time.Hour) // the wall clock is set: the batch looks a century old
	mustAppend(t, o, telemetry(5, 1))
	if st := o.Stats(); st.Evicted != 0 || st.Batches[LaneTelemetry] != 2 {
		t.Fatalf("evicted %d while held (stats %+v)", st.Evicted, st)
	}
	hold.Store(false)
	mustAppend(t, o, telemetry(5, 2))
	if st := o.Stats(); st.Evicted != 3 {
		t.Fatalf("evicted %d batches once released, want all 3 (stats %+v)", st.Evicted, st)
	}
	if n := lostCount(t, o, outpost.KindTelemetry); n != 15 {
		t.Fatalf("loss records count %d readings, want 15", n)
	}
}

// NewestCreated is the newest batch's Created time over both lanes.
func TestNewestCreated(t *testing.T) {
	o := open(t, newPath(t), nil)
	if n, err := o.NewestCreated(); err != nil || n != 0 {
		t.Fatalf("empty outbox: %d, %v", n, err)
	}
	a := alert("r")
	a.Created = testBase + 5*int64(time.Second)
	mustAppend(t, o, telemetry(3, 1), a, telemetry(3, 2))
	want := telemetry(3, 2).Created
	if n, err := o.NewestCreated(); err != nil || n != max(want, a.Created) {
		t.Fatalf("NewestCreated %d, %v; want %d", n, err, max(want, a.Created))
	}
}
