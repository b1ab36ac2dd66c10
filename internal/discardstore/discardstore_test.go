package discardstore

import (
	"context"
	"testing"

	"github.com/outposthq/outpost"
)

// A batch committed twice is a duplicate the second time, as in the real
// stores, and counts once.
func TestDiscardStoreDedup(t *testing.T) {
	d := New()
	ctx := context.Background()
	b := &outpost.Batch{Kind: outpost.KindTelemetry, Gateway: "gw", Epoch: 7, Seq: 1,
		Series: []outpost.Series{{Sensor: "s", Metric: "m", TS: []int64{1, 1, 1}, Values: []float64{1, 2, 3}}}}
	for i, wantDup := range []bool{false, true} {
		dup, err := d.Commit(ctx, b, 0)
		if err != nil || dup != wantDup {
			t.Fatalf("commit %d: dup %v, err %v; want dup %v", i, dup, err, wantDup)
		}
	}
	b2 := *b
	b2.Seq = 2
	if dup, err := d.Commit(ctx, &b2, 0); err != nil || dup {
		t.Fatalf("seq 2: dup %v, err %v", dup, err)
	}
	if c, err := d.Counts(ctx); err != nil || c.Readings != 6 || c.Batches != 2 {
		t.Fatalf("counts %+v, %v; want 6 readings in 2 batches", c, err)
	}
}
