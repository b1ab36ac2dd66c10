package gateway

import (
	"errors"
	"math"

	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/uplink"
)

// outboxStore adapts the buffer to the small interface the uplink declares.
// Only the uplink's goroutine calls it.
type outboxStore struct {
	ob      *buffer.Outbox
	clock   *clockTracker // holds back telemetry stored under an untrusted clock; nil: none
	entries []buffer.Entry
}

var _ uplink.Store = (*outboxStore)(nil)

func (s *outboxStore) Next(lane int, after uint64, max int, dst []uplink.Stored) ([]uplink.Stored, error) {
	hold := buffer.Lane(lane) == buffer.LaneTelemetry && s.clock != nil
	for {
		if hold {
			// Stored under an untrusted clock (docs/clock.md): never sent
			// as it is. Once the clock is trusted it is stored again,
			// re-based, under a new seq, and this one deleted. Skip the
			// held run at once rather than read through it.
			if end, held := s.clock.heldUntil(after + 1); held {
				if end == math.MaxUint64 {
					return dst, nil
				}
				after = end - 1
			}
		}
		var err error
		s.entries, err = s.ob.Read(buffer.Lane(lane), after, max, s.entries[:0])
		n := len(dst)
		skipped := false
		for _, e := range s.entries {
			if hold && s.clock.isHeld(e.Seq) {
				after, skipped = e.Seq-1, true
				break
			}
			dst = append(dst, uplink.Stored{Seq: e.Seq, Data: e.Data})
		}
		if skipped {
			// The entries before the held one are in dst; go on past its
			// run for the rest.
			if max -= len(dst) - n; max > 0 {
				continue
			}
			return dst, nil
		}
		var ce *buffer.CorruptError
		if errors.As(err, &ce) && ce.Seq != 0 {
			// A stored batch failed its checksum: it can never be delivered.
			// Drop it with a loss record instead of retrying it forever; the
			// entries before it are good and go out now.
			if derr := s.ob.DropCorrupt(ce.Seq); derr != nil {
				return dst, errors.Join(err, derr)
			}
			return dst, nil
		}
		return dst, err
	}
}

func (s *outboxStore) Delete(seqs []uint64) error {
	_, err := s.ob.Delete(seqs)
	return err
}

func (s *outboxStore) Has(lane int, seq uint64) (bool, error) {
	if seq == 0 {
		return false, nil
	}
	es, err := s.ob.Read(buffer.Lane(lane), seq-1, 1, nil)
	var ce *buffer.CorruptError
	if errors.As(err, &ce) && ce.Seq == seq {
		return true, nil // stored, though damaged: the next read drops it
	}
	if err != nil {
		return false, err
	}
	return len(es) == 1 && es[0].Seq == seq, nil
}

func (s *outboxStore) Notify() <-chan struct{} { return s.ob.Notify() }

func (s *outboxStore) Epoch() uint64 { return s.ob.Epoch() }

// Last may be called from any goroutine: Stats is safe for that.
func (s *outboxStore) Last() uint64 { return s.ob.Stats().NextSeq - 1 }
