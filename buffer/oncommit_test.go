package buffer

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestOnCommitReportsWriteTransactions(t *testing.T) {
	var n, neg atomic.Int64
	o := open(t, newPath(t), &Options{OnCommit: func(d time.Duration) {
		n.Add(1)
		if d < 0 {
			neg.Add(1)
		}
	}})
	before := n.Load() // Open's own transactions, if any
	mustAppend(t, o, telemetry(10, 1))
	mustAppend(t, o, telemetry(10, 2), alert("hot"))
	if got := n.Load() - before; got != 2 {
		t.Fatalf("OnCommit called %d times for 2 appends", got)
	}
	if _, err := o.Delete([]uint64{1}); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, o, telemetry(10, 3)) // carries the delete
	if got := n.Load() - before; got != 3 || neg.Load() != 0 {
		t.Fatalf("OnCommit called %d times (want 3), %d negative durations", got, neg.Load())
	}
}
