package outpost

import (
	"crypto/hmac"
	"crypto/sha256"
	"testing"
)

// The command and reply MACs are HMAC-SHA256 over exactly the bytes
// docs/wire-format.md lists, here written out by hand.
func TestCommandMACInput(t *testing.T) {
	k := testKey(t)
	// name "ping", id "r1", deadline 0x0102030405060708, body 0x80.
	fields := []byte{4, 'p', 'i', 'n', 'g', 2, 'r', '1', 1, 2, 3, 4, 5, 6, 7, 8, 1, 0x80}
	h := hmac.New(sha256.New, k.bytes())
	h.Write([]byte("outpost cmd v1\x00"))
	h.Write([]byte{5, 'g', 'w', '-', '0', '1'})
	h.Write(fields)
	if got := CommandMAC(&k, "gw-01", "ping", "r1", 0x0102030405060708, []byte{0x80}); !hmac.Equal(got[:], h.Sum(nil)) {
		t.Fatalf("CommandMAC %x, want %x", got, h.Sum(nil))
	}
	h = hmac.New(sha256.New, k.bytes())
	h.Write([]byte("outpost reply v1\x00"))
	h.Write([]byte{5, 'g', 'w', '-', '0', '1'})
	h.Write([]byte{2, 'r', '1', 2, 'o', 'k', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0})
	if got := ReplyMAC(&k, "gw-01", "r1", "ok", -1, nil); !hmac.Equal(got[:], h.Sum(nil)) {
		t.Fatalf("ReplyMAC %x, want %x", got, h.Sum(nil))
	}
}

// The tags keep the four MACs of one key apart: the same bytes give a
// different MAC as a batch, an ack, a command and a reply.
func TestCommandMACTags(t *testing.T) {
	k := testKey(t)
	msg := []byte{4, 'p', 'i', 'n', 'g', 2, 'r', '1', 0, 0, 0, 0, 0, 0, 0, 9, 1, 0x80}
	macs := map[string][MACSize]byte{
		"batch":   k.mac(batchTag, "gw-01", msg),
		"ack":     k.mac(ackTag, "gw-01", msg),
		"command": CommandMAC(&k, "gw-01", "ping", "r1", 9, []byte{0x80}),
		"reply":   ReplyMAC(&k, "gw-01", "ping", "r1", 9, []byte{0x80}),
	}
	seen := map[[MACSize]byte]string{}
	for kind, m := range macs {
		if other, dup := seen[m]; dup {
			t.Errorf("the %s and %s MACs of the same bytes are equal", kind, other)
		}
		seen[m] = kind
	}
}

// Every field is covered: changing any one changes the MAC, and so does
// moving bytes from one field to the next (the length prefixes).
func TestCommandMACFields(t *testing.T) {
	k, other := testKey(t), NewKey()
	base := CommandMAC(&k, "gw-01", "ping", "r1", 9, []byte{0x80})
	for name, m := range map[string][MACSize]byte{
		"key":      CommandMAC(&other, "gw-01", "ping", "r1", 9, []byte{0x80}),
		"gateway":  CommandMAC(&k, "gw-02", "ping", "r1", 9, []byte{0x80}),
		"name":     CommandMAC(&k, "gw-01", "stats", "r1", 9, []byte{0x80}),
		"id":       CommandMAC(&k, "gw-01", "ping", "r2", 9, []byte{0x80}),
		"deadline": CommandMAC(&k, "gw-01", "ping", "r1", 10, []byte{0x80}),
		"body":     CommandMAC(&k, "gw-01", "ping", "r1", 9, []byte{0x81}),
		"no body":  CommandMAC(&k, "gw-01", "ping", "r1", 9, nil),
		"shifted":  CommandMAC(&k, "gw-01", "pin", "gr1", 9, []byte{0x80}),
	} {
		if m == base {
			t.Errorf("another %s, the same command MAC", name)
		}
	}
	if again := CommandMAC(&k, "gw-01", "ping", "r1", 9, []byte{0x80}); again != base {
		t.Error("the same request, another MAC")
	}
	rbase := ReplyMAC(&k, "gw-01", "r1", "ok", 9, []byte{0x80})
	for name, m := range map[string][MACSize]byte{
		"key":     ReplyMAC(&other, "gw-01", "r1", "ok", 9, []byte{0x80}),
		"gateway": ReplyMAC(&k, "gw-02", "r1", "ok", 9, []byte{0x80}),
		"id":      ReplyMAC(&k, "gw-01", "r2", "ok", 9, []byte{0x80}),
		"status":  ReplyMAC(&k, "gw-01", "r1", "error", 9, []byte{0x80}),
		"ts":      ReplyMAC(&k, "gw-01", "r1", "ok", 10, []byte{0x80}),
		"body":    ReplyMAC(&k, "gw-01", "r1", "ok", 9, []byte{0x81}),
		"shifted": ReplyMAC(&k, "gw-01", "r1o", "k", 9, []byte{0x80}),
	} {
		if m == rbase {
			t.Errorf("another %s, the same reply MAC", name)
		}
	}
}
