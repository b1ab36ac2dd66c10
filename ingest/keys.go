package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outposthq/outpost"
)

// AuthMode says which batches the service takes as to their MAC
// (docs/security.md). In both modes a gateway with a registered key must
// sign its batches, with that key; the modes differ on gateways without
// one.
type AuthMode string

const (
	// AuthOptional (the default) takes batches of gateways without a
	// registered key unchecked, signed or not, and acks them unsigned.
	AuthOptional AuthMode = "optional"
	// AuthRequired dead-letters every batch of a gateway without a
	// registered key.
	AuthRequired AuthMode = "required"
)

// MaxKeysPerGateway is how many keys a gateway may have registered at
// once: its key and, while it is rotated, the next.
const MaxKeysPerGateway = 2

// maxKeysFile bounds a keys file: about 200 000 gateways with two keys.
const maxKeysFile = 64 << 20

// keyRefreshEvery is how often, at most, a batch from an unknown gateway
// or with a MAC no key verifies makes the service look whether the keys
// file changed.
const keyRefreshEvery = time.Second

// Keys is the registry of gateway keys: which keys a gateway's batches
// may be signed with, and its acks are signed with. It is read from a
// file (LoadKeys) of lines "GATEWAY-ID KEY", and reloaded from it by
// Reload (on SIGHUP), or by the service when a batch from a gateway
// without a key, or with a MAC no key verifies, arrives after the file
// changed. A reload that fails keeps the keys it had. Keys is safe for
// concurrent use; it never logs or returns a key but through Lookup.
type Keys struct {
	path string
	set  atomic.Pointer[keySet]

	mu      sync.Mutex // serialises loads; guards the fields below
	stamp   fileStamp  // the file as last loaded (or tried)
	checked time.Time  // when the file was last looked at by refresh
	now     func() time.Time
	every   time.Duration
}

// keySet is one generation of the registry; it is never changed.
type keySet struct {
	byGateway map[string][]outpost.Key
	keys      int
}

// fileStamp tells whether a file changed.
type fileStamp struct {
	mod     time.Time
	size    int64
	regular bool
}

// LoadKeys reads the keys file path (KeysFile format, ParseKeys).
func LoadKeys(path string) (*Keys, error) {
	k := &Keys{path: path, now: time.Now, every: keyRefreshEvery}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.load(); err != nil {
		return nil, err
	}
	return k, nil
}

// NewKeys returns a registry of the keys given, for a service wired in
// code (the demo, tests); Reload does nothing on it. The map is checked
// as a file would be, and copied.
func NewKeys(keys map[string][]outpost.Key) (*Keys, error) {
	set := &keySet{byGateway: make(map[string][]outpost.Key, len(keys))}
	owner := map[string]string{}
	for gw, ks := range keys {
		for _, key := range ks {
			if err := set.add(gw, key, owner); err != nil {
				return nil, fmt.Errorf("ingest: keys: %w", err)
			}
		}
	}
	k := &Keys{now: time.Now, every: keyRefreshEvery}
	k.set.Store(set)
	return k, nil
}

// Lookup returns the keys registered for gateway, nil if none. The
// slice is shared: do not change it.
func (k *Keys) Lookup(gateway string) []outpost.Key {
	if k == nil {
		return nil
	}
	return k.set.Load().byGateway[gateway]
}

// Len returns how many gateways have keys, and how many keys they have.
func (k *Keys) Len() (gateways, keys int) {
	if k == nil {
		return 0, 0
	}
	s := k.set.Load()
	return len(s.byGateway), s.keys
}

// Reload reads the keys file again. On an error the registry keeps the
// keys it had.
func (k *Keys) Reload() error {
	if k == nil || k.path == "" {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.load()
}

// refresh reloads the keys file if it changed since it was last read,
// looking at most once every k.every; a refresh under way elsewhere is
// not waited for. It reports whether it reloaded.
func (k *Keys) refresh() (bool, error) {
	if k == nil || k.path == "" || !k.mu.TryLock() {
		return false, nil
	}
	defer k.mu.Unlock()
	now := k.now()
	if !k.checked.IsZero() && now.Sub(k.checked) < k.every {
		return false, nil
	}
	k.checked = now
	st, err := stampOf(k.path)
	if err != nil {
		return false, fmt.Errorf("ingest: keys file: %w", err)
	}
	if st == k.stamp {
		return false, nil
	}
	return true, k.load()
}

// load reads the file into a new generation. The caller holds mu.
func (k *Keys) load() error {
	st, err := stampOf(k.path)
	if err != nil {
		return fmt.Errorf("ingest: keys file: %w", err)
	}
	k.stamp = st // a file that fails is tried again when it changes
	if !st.regular {
		return fmt.Errorf("ingest: keys file %s: not a regular file", k.path)
	}
	if st.size > maxKeysFile {
		return fmt.Errorf("ingest: keys file %s: larger than %d MiB", k.path, maxKeysFile>>20)
	}
	b, err := os.ReadFile(k.path)
	if err != nil {
		return fmt.Errorf("ingest: keys file: %w", err)
	}
	set, err := parseKeys(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("ingest: keys file %s: %w", k.path, err)
	}
	k.set.Store(set)
	return nil
}

func stampOf(path string) (fileStamp, error) {
	// Stat, not open: opening a FIFO would wait for a writer.
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size(), fi.Mode().IsRegular()}, nil
}

// ParseKeys reads a keys file: one line per key, "GATEWAY-ID KEY", the
// key as 64 hex digits or in base64 (outpost.ParseKey); blank lines, and
// whatever follows a #, are ignored. A gateway may have
// MaxKeysPerGateway lines; no key may be listed twice, for one gateway
// or for two. Errors name the line, never a key.
func ParseKeys(r io.Reader) (map[string][]outpost.Key, error) {
	set, err := parseKeys(r)
	if err != nil {
		return nil, err
	}
	return set.byGateway, nil
}

func parseKeys(r io.Reader) (*keySet, error) {
	set := &keySet{byGateway: map[string][]outpost.Key{}}
	owner := map[string]string{} // key fingerprint → gateway, to find a key listed twice
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 4<<10)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		switch len(f) {
		case 0:
			continue
		case 2:
		default:
			return nil, fmt.Errorf("line %d: %d fields, want 2: GATEWAY-ID KEY", n, len(f))
		}
		if !outpost.ValidName(f[0]) {
			return nil, fmt.Errorf("line %d: %v", n, badName("gateway id", f[0]))
		}
		key, err := outpost.ParseKey([]byte(f[1]))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if err := set.add(f[0], key, owner); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = errors.New("a line longer than 4 KiB")
		}
		return nil, err
	}
	return set, nil
}

// add registers key for gw; owner maps the keys so far to their gateway.
func (s *keySet) add(gw string, key outpost.Key, owner map[string]string) error {
	if !outpost.ValidName(gw) {
		return badName("gateway id", gw)
	}
	fp := key.Fingerprint()
	if other, ok := owner[fp]; ok {
		if other == gw {
			return fmt.Errorf("gateway %s: key %s listed twice", gw, fp)
		}
		return fmt.Errorf("gateway %s: key %s is %s's too; each gateway needs a key of its own", gw, fp, other)
	}
	if len(s.byGateway[gw]) == MaxKeysPerGateway {
		return fmt.Errorf("gateway %s: more than %d keys (its key, and the next while it is rotated)", gw, MaxKeysPerGateway)
	}
	owner[fp] = gw
	s.byGateway[gw] = append(s.byGateway[gw], key)
	s.keys++
	return nil
}

// fingerprints lists keys' fingerprints, for a reason or a log line.
func fingerprints(keys []outpost.Key) string {
	fps := make([]string, len(keys))
	for i, k := range keys {
		fps[i] = k.Fingerprint()
	}
	slices.Sort(fps)
	return strings.Join(fps, ", ")
}
