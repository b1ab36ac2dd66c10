// Package discardstore is an ingest.Store without a database, for
// benchmarks that measure what comes before one: the transport, the
// decoding, the gateway. It deduplicates on (gateway, epoch, seq) as the
// real stores do, counts what it was given, and keeps nothing else.
package discardstore

import (
	"context"
	"iter"
	"sync"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

// Store is an ingest.Store without a database: it counts the readings
// of each batch the service decoded and deduplicates on (gateway, epoch,
// seq) like the real stores, so a drain into it measures the transport
// and decoding alone. Its queries answer nothing. It is safe for
// concurrent use.
type Store struct {
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

var _ ingest.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store { return &Store{seen: make(map[batchKey]struct{})} }

func (d *Store) Commit(_ context.Context, b *outpost.Batch, _ int) (bool, error) {
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

func (d *Store) DeadLetter(context.Context, string, string, []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deadLetters++
	return nil
}

func (d *Store) SetGatewayStatus(context.Context, string, string, time.Time, []byte, ingest.SensorLabels) error {
	return nil
}

// The queries answer nothing: nothing is kept.

func (d *Store) Gateways(context.Context) iter.Seq2[ingest.GatewayStatus, error] {
	return func(func(ingest.GatewayStatus, error) bool) {}
}

func (d *Store) Series(context.Context, ingest.SeriesQuery) iter.Seq2[ingest.SeriesInfo, error] {
	return func(func(ingest.SeriesInfo, error) bool) {}
}

func (d *Store) Latest(context.Context, ingest.LatestQuery) iter.Seq2[ingest.Point, error] {
	return func(func(ingest.Point, error) bool) {}
}

func (d *Store) Range(context.Context, ingest.RangeQuery) iter.Seq2[ingest.Point, error] {
	return func(func(ingest.Point, error) bool) {}
}

func (d *Store) Buckets(context.Context, ingest.BucketQuery) iter.Seq2[ingest.Bucket, error] {
	return func(func(ingest.Bucket, error) bool) {}
}

func (d *Store) Gaps(context.Context, ingest.GapQuery) iter.Seq2[ingest.Gap, error] {
	return func(func(ingest.Gap, error) bool) {}
}

func (d *Store) Alerts(context.Context, ingest.AlertQuery) iter.Seq2[ingest.AlertRow, error] {
	return func(func(ingest.AlertRow, error) bool) {}
}

func (d *Store) ActiveAlerts(context.Context, ingest.ActiveAlertQuery) iter.Seq2[ingest.AlertRow, error] {
	return func(func(ingest.AlertRow, error) bool) {}
}

func (d *Store) Counts(context.Context) (ingest.Counts, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return ingest.Counts{Readings: d.readings, DistinctReadings: d.readings, Batches: int64(len(d.seen)), DeadLetters: d.deadLetters}, nil
}

func (d *Store) Close() error { return nil }
