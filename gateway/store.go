package gateway

import (
	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/uplink"
)

// outboxStore adapts the buffer to the small interface the uplink declares.
// Only the uplink's goroutine calls it.
type outboxStore struct {
	ob      *buffer.Outbox
	entries []buffer.Entry
}

var _ uplink.Store = (*outboxStore)(nil)

func (s *outboxStore) Next(lane int, after uint64, max int, dst []uplink.Stored) ([]uplink.Stored, error) {
	var err error
	s.entries, err = s.ob.Read(buffer.Lane(lane), after, max, s.entries[:0])
	if err != nil {
		return dst, err
	}
	for _, e := range s.entries {
		dst = append(dst, uplink.Stored{Seq: e.Seq, Data: e.Data})
	}
	return dst, nil
}

func (s *outboxStore) Delete(seqs []uint64) error {
	_, err := s.ob.Delete(seqs)
	return err
}

func (s *outboxStore) Notify() <-chan struct{} { return s.ob.Notify() }

func (s *outboxStore) Epoch() uint64 { return s.ob.Epoch() }
