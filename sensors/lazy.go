package sensors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/outposthq/outpost"
)

// ErrSpec marks a factory error caused by the spec itself (an unknown
// option, a malformed address): retrying cannot help. Drivers wrap such
// errors with it; any other factory error is taken to be the device's
// (absent, not answering) and worth retrying.
var ErrSpec = errors.New("bad sensor spec")

// NewOrLater builds the sensor spec names. If the driver fails for a
// reason other than ErrSpec, such as a device that is unplugged or not
// powered yet, it returns a sensor that tries again on each Read, failing
// those reads until the device answers; the poller's backoff and health
// events then apply, and a device that shows up later is picked up. The
// error of the first attempt is returned with it, for the log.
func (r *Registry) NewOrLater(spec Spec) (Sensor, error) {
	s, err := r.New(spec)
	if err == nil {
		return s, nil
	}
	if errors.Is(err, ErrSpec) || !r.Has(spec.Driver) {
		return nil, err
	}
	return &later{r: r, spec: spec, built: make(chan struct{})}, err
}

// later is a sensor whose device did not answer when the gateway started.
type later struct {
	r    *Registry
	spec Spec

	mu     sync.Mutex
	s      Sensor        // nil until built
	built  chan struct{} // closed when s is set
	closed bool
}

func (l *later) get() (Sensor, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s != nil {
		return l.s, nil
	}
	if l.closed {
		return nil, fmt.Errorf("sensors: sensor %s: closed", l.spec.ID)
	}
	s, err := l.r.New(l.spec)
	if err != nil {
		return nil, err
	}
	l.s = s
	close(l.built)
	return s, nil
}

// Read builds the sensor if it is not yet, then reads it.
func (l *later) Read(ctx context.Context, now time.Time, dst []outpost.Reading) ([]outpost.Reading, error) {
	s, err := l.get()
	if err != nil {
		return dst, err
	}
	return s.Read(ctx, now, dst)
}

// Watch waits until the sensor is built, then watches it if it is a
// Watcher.
func (l *later) Watch(ctx context.Context, emit func([]outpost.Reading)) error {
	select {
	case <-ctx.Done():
		return nil
	case <-l.built:
	}
	l.mu.Lock()
	s := l.s
	l.mu.Unlock()
	if w, ok := s.(Watcher); ok {
		return w.Watch(ctx, emit)
	}
	<-ctx.Done()
	return nil
}

// Close closes the sensor if it was built.
func (l *later) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.s == nil {
		return nil
	}
	return l.s.Close()
}
