package outpost

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/tinylib/msgp/msgp"
)

// Message authentication (docs/wire-format.md, "Signed messages"). Each
// gateway has a key of its own. A signed batch (version 3) is the stored
// batch, version 1 or 2, wrapped with a MAC; a signed ack (version 2) is
// an ack with a MAC after its fields:
//
//	signed batch: [3, batch bin, mac bin(32)]
//	signed ack:   [2, epoch, seqs, mac bin(32)]
//
// The MAC is HMAC-SHA256 with the gateway's key over a tag of the
// message's kind, the gateway id (of the topic) and every byte of the
// message before the MAC field, so a message checks only under its own
// gateway's topic, and the epoch and seq it carries are covered.
const (
	// KeySize is the length of a gateway key in bytes.
	KeySize = 32
	// MACSize is the length of a MAC in bytes (HMAC-SHA256, whole).
	MACSize = sha256.Size
	// SignedVersion is the version of a signed batch.
	SignedVersion = 3
	// SignedAckVersion is the version of a signed ack.
	SignedAckVersion = 2
	// SignedOverhead is the most bytes that signing adds to a batch: the
	// array header, the version, the header of a bin of up to 4 GiB and
	// the MAC with its bin header.
	SignedOverhead = 1 + 1 + 5 + macField
	// macField is the MAC on the wire: bin 8 of 32 bytes.
	macField = 2 + MACSize
)

// The tags that keep a batch's MAC from passing for an ack's, and both
// from any other use of the key.
const (
	batchTag = "outpost batch v3\x00"
	ackTag   = "outpost ack v2\x00"
)

// Key is a gateway's secret, with which its batches and the acks for
// them are signed. Printing it with any fmt verb shows its fingerprint
// only, and printers that look into values (reflection, %p) find a
// pointer; Hex is the one way to the key itself. Compare keys with
// Equal. The zero Key is all zeros, which ParseKey refuses.
type Key struct {
	b *[KeySize]byte // never changed once set
}

var zeroKey [KeySize]byte

// NewKey returns a random key.
func NewKey() Key {
	b := new([KeySize]byte)
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return Key{b: b}
}

func (k Key) bytes() []byte {
	if k.b == nil {
		return zeroKey[:]
	}
	return k.b[:]
}

// ParseKey reads a key written as text: 64 hex digits, or 32 bytes in
// base64 (standard or URL alphabet, padded or not), with white space
// around it ignored. A key of zeros is refused. Its errors never quote
// the text.
func ParseKey(text []byte) (Key, error) {
	s := strings.TrimSpace(string(text))
	var k Key
	var b []byte
	var err error
	switch len(s) {
	case 2 * KeySize:
		b, err = hex.DecodeString(s)
	case base64.StdEncoding.EncodedLen(KeySize), base64.RawStdEncoding.EncodedLen(KeySize):
		s = strings.TrimRight(s, "=")
		if b, err = base64.RawStdEncoding.DecodeString(s); err != nil {
			b, err = base64.RawURLEncoding.DecodeString(s)
		}
	default:
		return k, fmt.Errorf("outpost: key: %d characters; want %d bytes as %d hex digits or in base64",
			len(s), KeySize, 2*KeySize)
	}
	if err != nil || len(b) != KeySize {
		return k, fmt.Errorf("outpost: key: not %d bytes of hex or base64", KeySize)
	}
	k.b = new([KeySize]byte)
	copy(k.b[:], b)
	if k.zero() {
		return k, fmt.Errorf("outpost: key: all zeros")
	}
	return k, nil
}

func (k Key) zero() bool {
	return subtle.ConstantTimeCompare(k.bytes(), zeroKey[:]) == 1
}

// Hex returns the key itself as 64 hex digits, the text of a key file.
// It is for registering the key with the ingest service: never log it.
func (k Key) Hex() string { return hex.EncodeToString(k.bytes()) }

// Fingerprint names the key without revealing it: the first 8 bytes of
// SHA-256("outpost-key" || key), as 16 hex digits. Log this.
func (k Key) Fingerprint() string {
	h := sha256.New()
	io.WriteString(h, "outpost-key")
	h.Write(k.bytes())
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Equal reports whether k and o are the same key, in constant time.
func (k Key) Equal(o Key) bool { return hmac.Equal(k.bytes(), o.bytes()) }

// String names the key by its fingerprint.
func (k Key) String() string { return "key " + k.Fingerprint() }

// GoString names the key by its fingerprint, for %#v.
func (k Key) GoString() string { return "outpost.Key(" + k.Fingerprint() + ")" }

// Format prints the key's fingerprint whatever the verb, so that no
// format string shows the key.
func (k Key) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, k.GoString())
		return
	}
	io.WriteString(f, k.String())
}

// mac is the MAC of msg, a message's bytes before its MAC field, for
// gateway: HMAC-SHA256(key, tag || uvarint(len(gateway)) || gateway || msg).
func (k *Key) mac(tag, gateway string, msg []byte) [MACSize]byte {
	h := hmac.New(sha256.New, k.bytes())
	writeMACInput(h, tag, gateway, msg)
	var out [MACSize]byte
	h.Sum(out[:0])
	return out
}

func writeMACInput(h hash.Hash, tag, gateway string, msg []byte) {
	var n [binary.MaxVarintLen64]byte
	io.WriteString(h, tag)
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(gateway)))])
	io.WriteString(h, gateway)
	h.Write(msg)
}

// SignBatch appends to dst the signed message (version 3) of batch, one
// encoded batch of version 1 or 2 as the outbox stores it, published
// under gateway's topic. Resigning the same bytes gives the same message.
func SignBatch(dst []byte, key *Key, gateway string, batch []byte) []byte {
	start := len(dst)
	dst = msgp.AppendArrayHeader(dst, 3)
	dst = msgp.AppendUint8(dst, SignedVersion)
	dst = msgp.AppendBytes(dst, batch)
	m := key.mac(batchTag, gateway, dst[start:])
	return msgp.AppendBytes(dst, m[:])
}

// IsSigned reports whether p is a signed batch (version 3) by its first
// two bytes, which are 93 03; a version 1 or 2 batch starts 9a 01 or
// 98 02. It does not check the rest.
func IsSigned(p []byte) bool {
	return len(p) >= 2 && p[0] == 0x93 && p[1] == SignedVersion
}

// OpenBatch returns the batch inside a signed message, without checking
// its MAC: for a gateway no key is known of. A message that is not a
// signed batch is an error wrapping ErrInvalidBatch. The batch aliases p.
func OpenBatch(p []byte) ([]byte, error) {
	batch, _, err := splitSigned(p)
	return batch, err
}

// VerifyBatch checks the MAC of p, a signed batch published under
// gateway's topic, with each of keys in turn, and returns the batch
// inside (aliasing p) and the index of the key that verified it. It
// reads no more of p than the envelope's headers before the MAC is
// checked. A MAC that no key verifies is an error wrapping ErrBadMAC;
// a message that is not a signed batch, one wrapping ErrInvalidBatch.
func VerifyBatch(p []byte, gateway string, keys ...Key) ([]byte, int, error) {
	batch, signed, err := splitSigned(p)
	if err != nil {
		return nil, -1, err
	}
	got := p[len(signed)+2:]
	for i := range keys {
		want := keys[i].mac(batchTag, gateway, signed)
		if hmac.Equal(got, want[:]) {
			return batch, i, nil
		}
	}
	return nil, -1, fmt.Errorf("%w: signed batch of %d bytes", ErrBadMAC, len(p))
}

// splitSigned splits a signed batch into the batch inside and the bytes
// the MAC covers; the MAC is the last MACSize bytes.
func splitSigned(p []byte) (batch, signed []byte, err error) {
	bad := func(format string, args ...any) ([]byte, []byte, error) {
		return nil, nil, fmt.Errorf("%w: signed: "+format, append([]any{ErrInvalidBatch}, args...)...)
	}
	if !IsSigned(p) {
		return bad("not a signed batch (version 3)")
	}
	batch, rest, err := msgp.ReadBytesZC(p[2:])
	switch {
	case err != nil:
		return bad("batch: %v", err)
	case len(rest) != macField || rest[0] != 0xc4 || rest[1] != MACSize:
		return bad("%d bytes after the batch, want the MAC: bin 8 of %d bytes", len(rest), MACSize)
	}
	return batch, p[:len(p)-macField], nil
}

// AppendSigned appends the signed ack (version 2) of a's epoch and seqs,
// for gateway, to dst; a.Version is not looked at.
func (a *Ack) AppendSigned(dst []byte, key *Key, gateway string) []byte {
	start := len(dst)
	dst = msgp.AppendArrayHeader(dst, 4)
	dst = msgp.AppendUint8(dst, SignedAckVersion)
	dst = msgp.AppendUint64(dst, a.Epoch)
	dst = msgp.AppendArrayHeader(dst, uint32(len(a.Seqs)))
	for _, s := range a.Seqs {
		dst = msgp.AppendUint64(dst, s)
	}
	m := key.mac(ackTag, gateway, dst[start:])
	return msgp.AppendBytes(dst, m[:])
}

// IsSignedAck reports whether p is a signed ack (version 2) by its first
// two bytes, 94 02; an unsigned ack starts 93 01.
func IsSignedAck(p []byte) bool {
	return len(p) >= 2 && p[0] == 0x94 && p[1] == SignedAckVersion
}

// VerifyAck checks the MAC of p, a signed ack received on gateway's ack
// topic, with key. An ack it does not verify is an error wrapping
// ErrBadMAC. It does not decode the ack: DecodeAckLimit does, and may
// come first, since it bounds what it reads.
func VerifyAck(p []byte, gateway string, key *Key) error {
	if !IsSignedAck(p) || len(p) < 2+macField || p[len(p)-macField] != 0xc4 || p[len(p)-macField+1] != MACSize {
		return fmt.Errorf("%w: not a signed ack", ErrBadMAC)
	}
	signed := p[:len(p)-macField]
	want := key.mac(ackTag, gateway, signed)
	if !hmac.Equal(p[len(signed)+2:], want[:]) {
		return fmt.Errorf("%w: signed ack of %d bytes", ErrBadMAC, len(p))
	}
	return nil
}
