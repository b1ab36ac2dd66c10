package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/storetest"
)

// Maintain makes the partitions from now to two days ahead of every
// partitioned table, and a commit into a week whose partition another
// process dropped since finds out and makes it again.
func TestPartitionsAheadAndDropped(t *testing.T) {
	d := dsn(t)
	a, b := open(t, d), open(t, d)
	defer a.Close()
	defer b.Close()
	c := connect(t, d)
	ctx := context.Background()
	const day = int64(24 * time.Hour)
	now := time.Now().UnixNano()
	if _, err := a.Maintain(ctx, now, ingest.Retention{}); err != nil {
		t.Fatal(err)
	}
	span := int64(ingest.RetentionSpan)
	for i := range int64(3) {
		at := now + i*day
		suffix := time.Unix(0, at-at%span).UTC().Format("20060102")
		for _, table := range []string{"chunks", "alerts", "gaps", "dead_letters", "batches", "rollup_1m"} {
			got, err := queryStrings(ctx, c, fmt.Sprintf(`SELECT (to_regclass('%s_p%s') IS NOT NULL)::text`, table, suffix))
			if err != nil || len(got) != 1 || got[0] != "true" {
				t.Fatalf("partition %s_p%s: %v, %v", table, suffix, got, err)
			}
		}
	}
	old := now - 30*day
	b1 := storetest.Telemetry("gw", 1, 1, storetest.Series("s", "t", old, time.Second, 100, 0)...)
	b1.Created = old
	if _, err := b.Commit(ctx, b1, 1); err != nil {
		t.Fatal(err)
	}
	st, err := a.Maintain(ctx, now, ingest.Retention{Raw: 14 * day})
	if err != nil || !st.Leader || st.Dropped != 2 {
		t.Fatalf("maintain: %+v, %v; want the week's chunks and batches partitions dropped", st, err)
	}
	b2 := storetest.Telemetry("gw", 1, 2, storetest.Series("s", "t", old, time.Second, 100, 0)...)
	b2.Created = old
	if dup, err := b.Commit(ctx, b2, 1); err != nil || dup {
		t.Fatalf("commit into a dropped day: dup %v, %v", dup, err)
	}
	if cn, err := b.Counts(ctx); err != nil || cn.Readings != 100 || cn.Batches != 1 {
		t.Fatalf("counts: %+v, %v", cn, err)
	}
}
