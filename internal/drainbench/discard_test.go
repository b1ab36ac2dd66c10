package drainbench

import (
	"context"
	"iter"
	"sync"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

// discardStore is an ingest.Store without a database: it counts the
// readings of each batch the service decoded and deduplicates on
// (gateway, epoch, seq) like the real stores, so a drain into it measures
// the transport and decoding alone.
type discardStore struct {
	mu          sync.Mutex
	seen        map[batchKey]struct{}
	readings    int64
	dups        int64
	deadLetters int64
}

type batchKey struct {
	gateway    string
	epoch, seq uint64
}

var _ ingest.Store = (*discardStore)(nil)

func newDiscardStore() *discardStore { return &discardStore{seen: make(map[batchKey]struct{})} }

func (d *discardStore) Commit(_ context.Context, b *outpost.Batch, _ int) (bool, error) {
	k := batchKey{b.Gateway, b.Epoch, b.Seq}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.seen[k]; ok {
		d.dups++
		return true, nil
	}
	d.seen[k] = struct{}{}
	if b.Kind == outpost.KindTelemetry {
		d.readings += int64(b.Len())
	}
	return false, nil
}

// counts returns the readings committed; each batch counts once, so they
// are distinct.
func (d *discardStore) counts() (readings, distinct int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.readings, d.readings
}

func (d *discardStore) DeadLetter(context.Context, string, string, []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deadLetters++
	return nil
}

func (d *discardStore) SetGatewayStatus(context.Context, string, string, time.Time, []byte, ingest.SensorLabels) error {
	return nil
}

// The queries answer nothing: nothing is kept.

func (d *discardStore) Gateways(context.Context) iter.Seq2[ingest.GatewayStatus, error] {
	return func(func(ingest.GatewayStatus, error) bool) {}
}

func (d *discardStore) Series(context.Context, ingest.SeriesQuery) iter.Seq2[ingest.SeriesInfo, error] {
	return func(func(ingest.SeriesInfo, error) bool) {}
}

func (d *discardStore) Latest(context.Context, ingest.LatestQuery) iter.Seq2[ingest.Point, error] {
	return func(func(ingest.Point, error) bool) {}
}

func (d *discardStore) Range(context.Context, ingest.RangeQuery) iter.Seq2[ingest.Point, error] {
	return func(func(ingest.Point, error) bool) {}
}

func (d *discardStore) Buckets(context.Context, ingest.BucketQuery) iter.Seq2[ingest.Bucket, error] {
	return func(func(ingest.Bucket, error) bool) {}
}

func (d *discardStore) Gaps(context.Context, ingest.GapQuery) iter.Seq2[ingest.Gap, error] {
	return func(func(ingest.Gap, error) bool) {}
}

func (d *discardStore) Alerts(context.Context, ingest.AlertQuery) iter.Seq2[ingest.AlertRow, error] {
	return func(func(ingest.AlertRow, error) bool) {}
}

func (d *discardStore) Counts(context.Context) (ingest.Counts, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return ingest.Counts{Readings: d.readings, DistinctReadings: d.readings, Batches: int64(len(d.seen)), DeadLetters: d.deadLetters}, nil
}

func (d *discardStore) Close() error { return nil }
