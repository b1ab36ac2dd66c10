package outpost

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"io"
)

// Command MACs (docs/wire-format.md, "Commands"). With a key, a gateway
// runs only command requests that carry a MAC of its key, and signs its
// replies, so that a client of the broker that may publish to a
// gateway's cmd topics cannot make it run anything, nor pass for it on
// its reply topics. The MACs are taken over the fields of the request
// or reply rather than its bytes, so that the encoding of the map (the
// order of its keys, the MAC field itself) is free; the tags keep them
// apart from each other and from the MACs of batches and acks.
const (
	commandTag = "outpost cmd v1\x00"
	replyTag   = "outpost reply v1\x00"
)

// CommandMAC is the MAC of a command request for gateway (the {gw} of
// its topic): HMAC-SHA256 with key over a tag "outpost cmd v1\x00", the
// gateway, then the command name (of the topic), the request id, the
// deadline (8 bytes big-endian) and the body, each variable-length field
// prefixed with its uvarint length.
func CommandMAC(key *Key, gateway, name, id string, deadline int64, body []byte) [MACSize]byte {
	return key.fieldsMAC(commandTag, gateway, name, id, deadline, body)
}

// ReplyMAC is the MAC of a reply from gateway: tag "outpost reply
// v1\x00", then id, status, ts (8 bytes BE), body, length-prefixed
// likewise.
func ReplyMAC(key *Key, gateway, id, status string, ts int64, body []byte) [MACSize]byte {
	return key.fieldsMAC(replyTag, gateway, id, status, ts, body)
}

// fieldsMAC is the MAC, under tag and for gateway, of two strings, a
// time and a body, in that order: what a command request and a reply
// both are.
func (k *Key) fieldsMAC(tag, gateway, a, b string, t int64, body []byte) [MACSize]byte {
	h := hmac.New(sha256.New, k.bytes())
	writeMACInput(h, tag, gateway, nil)
	writeField(h, a)
	writeField(h, b)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(t))
	h.Write(n[:])
	writeFieldBytes(h, body)
	var out [MACSize]byte
	h.Sum(out[:0])
	return out
}

// writeField writes s prefixed with its uvarint length.
func writeField(h hash.Hash, s string) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
	io.WriteString(h, s)
}

// writeFieldBytes writes b prefixed with its uvarint length.
func writeFieldBytes(h hash.Hash, b []byte) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
	h.Write(b)
}
