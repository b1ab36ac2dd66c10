package outpost

import "errors"

// Sentinel errors shared across packages. Wrap them with %w.
var (
	// ErrInvalidBatch is returned for a batch that decodes but breaks the
	// contract (bad lengths, missing ids, unknown kind).
	ErrInvalidBatch = errors.New("outpost: invalid batch")
	// ErrUnsupportedVersion is returned for a wire version this build
	// does not understand.
	ErrUnsupportedVersion = errors.New("outpost: unsupported wire version")
	// ErrClosed is returned by components used after Close.
	ErrClosed = errors.New("outpost: closed")
)
