package buffer

import (
	"encoding/binary"
	"hash/crc32"
	"strconv"
)

// The file layout. One bucket per lane, key = 8-byte big-endian seq (so a
// cursor walks in seq order), value = 4-byte big-endian CRC32C of the batch
// bytes followed by the batch bytes. The meta bucket holds the format
// version, the epoch and the next seq, each an 8-byte big-endian integer.
const (
	formatVersion = 1
	crcLen        = 4
	keyLen        = 8
)

var (
	bucketMeta  = []byte("meta")
	laneBuckets = [numLanes][]byte{LaneAlert: []byte("alert"), LaneTelemetry: []byte("telemetry")}

	metaVersion = []byte("version")
	metaEpoch   = []byte("epoch")
	metaNextSeq = []byte("next_seq")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func putKey(dst []byte, seq uint64) []byte { return binary.BigEndian.AppendUint64(dst, seq) }

// checkEntry validates one stored key and value and returns the seq and the
// batch bytes (still pointing into the transaction's memory).
func checkEntry(lane Lane, k, v []byte) (uint64, []byte, error) {
	if len(k) != keyLen {
		return 0, nil, &CorruptError{Lane: lane, Reason: "key of " + strconv.Itoa(len(k)) + " bytes"}
	}
	seq := binary.BigEndian.Uint64(k)
	if len(v) < crcLen {
		return seq, nil, &CorruptError{Lane: lane, Seq: seq, Reason: "value shorter than its CRC"}
	}
	data := v[crcLen:]
	if binary.BigEndian.Uint32(v) != crc32.Checksum(data, castagnoli) {
		return seq, nil, &CorruptError{Lane: lane, Seq: seq, Reason: "CRC mismatch"}
	}
	return seq, data, nil
}
