package buffer

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost"
)

// evictOrder is the order the caps take batches in: the oldest telemetry
// first, then the alert lane (alerts and loss batches, oldest first).
var evictOrder = [...]Lane{LaneTelemetry, LaneAlert}

// evictor applies the caps inside one write transaction. It deletes the
// oldest batches and gathers what they held into loss records, which
// finish stores in the alert lane in the same transaction: an eviction is
// never committed without its loss record.
type evictor struct {
	o       *Outbox
	tx      *bolt.Tx
	lanes   [numLanes]*bolt.Bucket
	d       *delta
	now     int64
	used    int64 // page bytes in use, estimated from bbolt's exact count at the start
	high    int64 // page bytes allowed after the transaction
	low     int64 // what eviction brings them down to
	losses  lossSet
	gateway string // of the first evicted batch
}

// newEvictor measures the pages in use: the high-water mark less the free
// and pending pages, as the last write transaction left them.
func (o *Outbox) newEvictor(tx *bolt.Tx, d *delta) (*evictor, error) {
	lanes, err := laneBucketsOf(tx)
	if err != nil {
		return nil, err
	}
	st := o.db.Stats()
	e := &evictor{o: o, tx: tx, lanes: lanes, d: d, now: o.now().UnixNano(),
		used: tx.Size() - int64(st.FreePageN+st.PendingPageN)*o.page - d.freed}
	e.high, e.low = o.lim.target(0, o.page)
	return e, nil
}

// expire evicts batches older than the age cap. It looks at each lane's
// oldest batch; once one has passed the cap, everything older than 63/64
// of it goes (lowWater). A damaged oldest batch is dropped as corrupt: it
// can never be sent, and it would hide the age of the lane.
func (e *evictor) expire() error {
	if e.o.holdAge != nil && e.o.holdAge() {
		return nil
	}
	maxAge := int64(e.o.lim.maxAge)
	cut := e.now - maxAge
	due := false
	for _, l := range evictOrder {
		created, ok, found := e.o.headCreated(e.lanes[l], l, nil)
		due = due || found && (!ok || created < cut)
	}
	if !due {
		return nil
	}
	cut += maxAge / lowWater
	for _, l := range evictOrder {
		for {
			created, ok, found := e.o.headCreated(e.lanes[l], l, nil)
			if !found || ok && created >= cut {
				break
			}
			if err := e.evictHead(l, outpost.LossMaxAge); err != nil {
				return err
			}
		}
	}
	return nil
}

// squeeze evicts while a cap is exceeded, counting the loss batches still
// to be written; once over a cap, down to its low mark. When nothing is
// left to evict the loss batches are stored anyway: they are never lost.
func (e *evictor) squeeze() error {
	for low := false; ; low = true {
		reason, over := e.over(low)
		if !over {
			return nil
		}
		lane, ok := e.oldestLane()
		if !ok {
			return nil
		}
		if err := e.evictHead(lane, reason); err != nil {
			return err
		}
	}
}

// over reports whether the batches stored after this transaction would
// exceed a cap (or its low mark), and which.
func (e *evictor) over(low bool) (reason string, over bool) {
	lim := &e.o.lim
	lb, lbytes := e.losses.pending(e.o.encoder.MaxMessageBytes())
	n, bytes := lb, lbytes
	for l := range numLanes {
		n += e.o.stats.Batches[l] + e.d.batches[l]
		bytes += e.o.stats.Bytes[l] + e.d.bytes[l]
	}
	used := e.used + lbytes
	maxN, maxB, maxU := lim.maxBatches, lim.maxBytes, e.high
	if low {
		maxN, maxB, maxU = maxN-maxN/lowWater, maxB-maxB/lowWater, e.low
	}
	switch {
	case n > maxN:
		return outpost.LossMaxBatches, true
	case bytes > maxB || used > maxU:
		return outpost.LossMaxBytes, true
	}
	return "", false
}

// oldestLane returns the lane to evict from next.
func (e *evictor) oldestLane() (Lane, bool) {
	for _, l := range evictOrder {
		if k, _ := e.lanes[l].Cursor().First(); k != nil {
			return l, true
		}
	}
	return 0, false
}

// evictHead evicts the oldest entry of a lane and records what it held.
// It fails rather than loop should the entry survive its delete (a
// damaged page that bbolt misreads).
func (e *evictor) evictHead(l Lane, reason string) error {
	c := e.lanes[l].Cursor()
	k, v := c.First()
	if k == nil {
		return nil
	}
	head := bytes.Clone(k)
	raw, buf, _, _ := readEntry(l, c, k, v, e.o.buf[:0])
	e.o.buf = buf
	if len(k) != keyLen && len(k) != chunkKeyLen {
		// Malformed (Open deletes such keys): no seq to find it by.
		e.record(l, &raw, reason)
		e.d.bytes[l] -= int64(len(v))
		c.First()
		if err := c.Delete(); err != nil {
			return err
		}
	} else if err := e.remove(l, &raw, reason); err != nil {
		return err
	}
	if k, _ := e.lanes[l].Cursor().First(); bytes.Equal(k, head) {
		return &CorruptError{Lane: l, Seq: raw.seq, Reason: "entry survives its delete"}
	}
	return nil
}

// remove deletes an entry (every key of its seq) and records what it held.
func (e *evictor) remove(l Lane, raw *rawEntry, reason string) error {
	e.record(l, raw, reason) // first: raw.val may point into the page
	size, found, err := deleteEntry(e.lanes[l], raw.seq)
	if err != nil {
		return err
	}
	if found {
		e.d.batches[l]--
	}
	e.d.bytes[l] -= size
	e.used -= pageCost(int(size), e.o.chunk)
	return nil
}

// record turns an evicted entry into loss records: one per series (or per
// rule) of a telemetry (alert) batch; an evicted loss batch's records fold
// in as they are; an entry that fails its CRC or does not decode is
// recorded as corrupt.
func (e *evictor) record(lane Lane, raw *rawEntry, reason string) {
	seq := raw.seq
	b := &e.o.scratch
	data, err := checkEntry(lane, raw)
	if err == nil {
		_, err = b.UnmarshalMsg(data) // wire version 1 or 2; copies what it keeps
	}
	if err != nil || b.Kind > outpost.KindLoss {
		e.losses.add(unknownLoss(lane, e.o.epoch, seq, e.now))
		e.d.counts.Corrupt++
		return
	}
	if e.gateway == "" {
		e.gateway = b.Gateway
	}
	l := outpost.Loss{Reason: reason, Kind: b.Kind, Epoch: b.Epoch, FirstSeq: seq, LastSeq: seq, At: e.now}
	switch b.Kind {
	case outpost.KindTelemetry:
		for i := range b.Series {
			s := &b.Series[i]
			l.Sensor, l.Metric, l.Count = s.Sensor, s.Metric, uint64(len(s.Values))
			l.From, l.To = seriesRange(s.TS)
			e.losses.add(l)
		}
		e.d.counts.Evicted++
		e.d.counts.EvictedReadings += int64(b.Len())
	case outpost.KindAlert:
		for i := range b.Alerts {
			a := &b.Alerts[i]
			l.Rule, l.From, l.To, l.Count = a.Rule, a.ChangedAt, a.ChangedAt, 1
			e.losses.add(l)
		}
		e.d.counts.Evicted++
		e.d.counts.EvictedAlerts += int64(len(b.Alerts))
	case outpost.KindLoss:
		for i := range b.Losses {
			e.losses.add(b.Losses[i])
		}
	}
}

// finish stores the loss batches in the alert lane with the next seqs,
// then the next seq, the persisted counters and the lanes' oldest batch.
func (e *evictor) finish() error {
	if len(e.losses.list) > 0 {
		if err := e.consolidate(); err != nil {
			return err
		}
		gw := e.gateway
		if gw == "" {
			gw = e.o.gatewayFor(e.tx)
		}
		for _, b := range e.losses.batches(gw, e.o.epoch, e.now) {
			// The encoder's byte cap may split a loss batch: each part
			// takes the next seq.
			b.Seq = e.d.next
			v, ends, err := e.o.encoder.AppendParts(nil, b, crcLen, nil)
			if err != nil {
				return err
			}
			start := 0
			for _, end := range ends {
				val := v[start:end:end]
				binary.BigEndian.PutUint32(val, crc32.Checksum(val[crcLen:], castagnoli))
				keys := appendKeys(nil, e.d.next, len(val), e.o.chunk)
				if err := putEntry(e.lanes[LaneAlert], keys, val, e.o.chunk); err != nil {
					return err
				}
				e.d.batches[LaneAlert]++
				e.d.bytes[LaneAlert] += int64(len(val))
				e.d.counts.LossRecords++
				e.d.next++
				start = end
			}
		}
	}
	return e.o.finishTx(e.tx, e.lanes, e.d)
}

// changed reports whether the transaction evicted anything.
func (e *evictor) changed() bool {
	return e.d.batches != [numLanes]int{} || len(e.losses.list) > 0
}

// consolidate folds the oldest stored loss batches into the new loss
// record when loss batches take more than 1/16 of a cap (at least 16
// batches or 64 KiB), down to half of that. In a long outage every
// eviction round adds one, evicted last, and they would crowd out the
// data. (A folded batch that was in flight may reach the cloud as well as
// the record it was folded into: docs/buffer.md.)
func (e *evictor) consolidate() error {
	lim := &e.o.lim
	maxN, maxB := int64(max(lim.maxBatches/16, 16)), max(min(lim.maxBytes, lim.fileCap)/16, 64<<10)
	n, size, seqs := e.storedLoss()
	if n <= maxN && size <= maxB {
		return nil
	}
	c := e.lanes[LaneAlert].Cursor()
	for _, seq := range seqs {
		if n <= maxN/2 && size <= maxB/2 {
			break
		}
		k, v := c.Seek(putKey(nil, seq))
		raw, buf, _, _ := readEntry(LaneAlert, c, k, v, e.o.buf[:0])
		e.o.buf = buf
		n, size = n-1, size-int64(len(raw.val))
		if err := e.remove(LaneAlert, &raw, ""); err != nil {
			return err
		}
	}
	return nil
}

// storedLoss counts the loss batches in the alert lane and their bytes,
// and returns their seqs, oldest first. It reads the kind from the first
// bytes of each batch (a msgp array whose second element is the kind) and
// the sizes of the chunks, not the batches.
func (e *evictor) storedLoss() (n, size int64, seqs []uint64) {
	c := e.lanes[LaneAlert].Cursor()
	loss := false
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) == keyLen {
			loss = len(v) > crcLen+2 && v[crcLen]&0xf0 == 0x90 && v[crcLen+2] == byte(outpost.KindLoss)
			if loss {
				n++
				seqs = append(seqs, binary.BigEndian.Uint64(k))
			}
		}
		if loss {
			size += int64(len(v))
		}
	}
	return n, size, seqs
}
