package buffer

import (
	"github.com/outposthq/outpost"
)

// unknownSeries names the series of a corrupt telemetry batch, which
// cannot be decoded: the wire contract wants non-empty ids.
const unknownSeries = "*"

// lossSet gathers the loss records of one write transaction, one per
// (reason, kind, series or rule, epoch). Records from a loss batch that is
// itself evicted fold into it: counts add up, ranges widen.
type lossSet struct {
	index map[lossKey]int
	list  []outpost.Loss
	size  int // upper bound of the encoded records (Msgsize)
}

type lossKey struct {
	reason, sensor, metric, rule string
	kind                         outpost.Kind
	epoch                        uint64
}

func (s *lossSet) add(l outpost.Loss) {
	k := lossKey{l.Reason, l.Sensor, l.Metric, l.Rule, l.Kind, l.Epoch}
	i, ok := s.index[k]
	if !ok {
		if s.index == nil {
			s.index = make(map[lossKey]int)
		}
		s.index[k] = len(s.list)
		s.list = append(s.list, l)
		s.size += l.Msgsize()
		return
	}
	m := &s.list[i]
	m.Count += l.Count
	switch {
	case l.From == 0 && l.To == 0: // unknown range: adds nothing
	case m.From == 0 && m.To == 0:
		m.From, m.To = l.From, l.To
	default:
		m.From, m.To = min(m.From, l.From), max(m.To, l.To)
	}
	m.FirstSeq = minNonZero(m.FirstSeq, l.FirstSeq)
	m.LastSeq = max(m.LastSeq, l.LastSeq)
	m.At = minNonZero(m.At, l.At)
}

// lossBatchOverhead bounds the encoded bytes of a loss batch besides its
// records: the header fields, a gateway id of up to 128 bytes, the CRC.
const lossBatchOverhead = 200 + crcLen

// pending returns how many loss batches the set becomes and an upper bound
// of their stored bytes, for an encoder with the byte cap maxMsg (0: none).
func (s *lossSet) pending(maxMsg int) (batches int, bytes int64) {
	if len(s.list) == 0 {
		return 0, 0
	}
	batches = (len(s.list) + outpost.MaxBatchLosses - 1) / outpost.MaxBatchLosses
	if room := maxMsg - lossBatchOverhead; maxMsg > 0 && room > 0 {
		// Split to fit the cap: parts are at least half full.
		batches = max(batches, 2*s.size/room+1)
	}
	return batches, int64(s.size + batches*lossBatchOverhead)
}

// batches returns the loss batches, at most MaxBatchLosses records each.
// The caller numbers them.
func (s *lossSet) batches(gateway string, epoch uint64, now int64) []*outpost.Batch {
	var bs []*outpost.Batch
	for rest := s.list; len(rest) > 0; {
		n := min(len(rest), outpost.MaxBatchLosses)
		bs = append(bs, &outpost.Batch{
			Version: outpost.WireVersion,
			Kind:    outpost.KindLoss,
			Gateway: gateway,
			Epoch:   epoch,
			Created: now,
			Losses:  rest[:n:n],
		})
		rest = rest[n:]
	}
	return bs
}

// unknownLoss is the record of a batch that cannot be decoded: its lane
// says what kind it was; what it held, how much and when is unknown.
func unknownLoss(lane Lane, epoch, seq uint64, now int64) outpost.Loss {
	l := outpost.Loss{Reason: outpost.LossCorrupt, Kind: outpost.KindAlert,
		Epoch: epoch, FirstSeq: seq, LastSeq: seq, At: now}
	if lane == LaneTelemetry {
		l.Kind, l.Sensor, l.Metric = outpost.KindTelemetry, unknownSeries, unknownSeries
	}
	return l
}

// seriesRange returns the first and last timestamp of a delta-encoded
// series (the smallest and largest, should they be out of order).
func seriesRange(ts []int64) (from, to int64) {
	if len(ts) == 0 {
		return 0, 0
	}
	t := ts[0]
	from, to = t, t
	for _, d := range ts[1:] {
		t += d
		from, to = min(from, t), max(to, t)
	}
	return from, to
}

// minNonZero is the smaller of a and b, where 0 means unknown.
func minNonZero[T int64 | uint64](a, b T) T {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}
