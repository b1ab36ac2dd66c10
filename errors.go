package outpost

import "errors"

// Sentinel errors shared across packages. Wrap them with %w.
var (
	// ErrInvalidBatch is returned for a batch that decodes but breaks the
	// contract (bad lengths, missing ids, unknown kind).
	ErrInvalidBatch = errors.New("outpost: invalid batch")
	// ErrOverLimit is wrapped, with ErrInvalidBatch, by decode errors
	// for a batch over a limit of the decoder (readings, series, alerts,
	// the decompressed size), and by DecodeAckLimit for an ack naming
	// too many seqs. It is found before the decoder allocates for it.
	ErrOverLimit = errors.New("outpost: over a limit")
	// ErrUnsupportedVersion is returned for a wire version this build
	// does not understand.
	ErrUnsupportedVersion = errors.New("outpost: unsupported wire version")
	// ErrMessageTooLarge is returned by an Encoder for a reading, alert or
	// loss record that cannot fit in a message under its byte cap.
	ErrMessageTooLarge = errors.New("outpost: message too large")
	// ErrBadMAC is wrapped by the errors of VerifyBatch and VerifyAck for
	// a signed message whose MAC the key does not verify: forged, sent
	// under another gateway's topic, changed on the way, or signed with
	// a key the verifier does not hold.
	ErrBadMAC = errors.New("outpost: message authentication failed")
	// ErrClosed is returned by components used after Close.
	ErrClosed = errors.New("outpost: closed")
)
