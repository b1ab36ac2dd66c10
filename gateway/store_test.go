package gateway

import (
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/uplink"
)

// A stored batch that fails its checksum is dropped with a loss record, and
// the uplink's reads go on past it instead of retrying it forever.
func TestStoreDropsCorruptBatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), OutboxFile)
	ob, err := buffer.Open(path, &buffer.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixNano()
	var bs []*outpost.Batch
	for i := 0; i < 3; i++ {
		b := outpost.NewBatchBuilder()
		b.Add(readings("dev1", 10, now+int64(i)*100))
		bs = append(bs, b.Take("gw", now))
	}
	if err := ob.Append(bs); err != nil {
		t.Fatal(err)
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	// Flip the last byte of seq 2's stored value, as a bad sector would.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("telemetry"))
		k := binary.BigEndian.AppendUint64(nil, 2)
		v := append([]byte(nil), b.Get(k)...)
		v[len(v)-1] ^= 0xff
		return b.Put(k, v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	ob, err = buffer.Open(path, &buffer.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	s := &outboxStore{ob: ob}
	var got []uint64
	var after uint64
	for i := 0; i < 5; i++ {
		es, err := s.Next(uplink.LaneTelemetry, after, 10, nil)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		for _, e := range es {
			got = append(got, e.Seq)
			after = e.Seq
		}
	}
	if len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Fatalf("read seqs %v, want [1 3] with the corrupt 2 dropped", got)
	}
	losses, err := s.Next(uplink.LaneAlert, 0, 10, nil)
	if err != nil || len(losses) != 1 {
		t.Fatalf("alert lane: %d entries, %v; want one loss batch", len(losses), err)
	}
	lb, err := outpost.DecodeBatch(losses[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if lb.Kind != outpost.KindLoss || lb.Losses[0].Reason != outpost.LossCorrupt || lb.Losses[0].FirstSeq != 2 {
		t.Fatalf("loss batch %+v", lb)
	}
}
