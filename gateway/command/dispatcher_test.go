package command

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// published records what a Dispatcher publishes.
type published struct {
	mu      sync.Mutex
	replies map[string][]Reply
	more    chan struct{}
}

func newPublished() *published {
	return &published{replies: map[string][]Reply{}, more: make(chan struct{}, 1024)}
}

func (p *published) publish(id string, b []byte) {
	r, err := DecodeReply(b)
	if err != nil || r.ID != id {
		panic(fmt.Sprintf("bad reply for %s: %+v %v", id, r, err))
	}
	p.mu.Lock()
	p.replies[id] = append(p.replies[id], r)
	p.mu.Unlock()
	p.more <- struct{}{}
}

func (p *published) get(id string) []Reply {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Reply(nil), p.replies[id]...)
}

// wait waits until id has n replies.
func (p *published) wait(t *testing.T, id string, n int) []Reply {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for len(p.get(id)) < n {
		select {
		case <-p.more:
		case <-timeout:
			t.Fatalf("%s: %d replies, want %d", id, len(p.get(id)), n)
		}
	}
	return p.get(id)
}

func request(id string) []byte {
	return AppendRequest(nil, Request{ID: id, Deadline: time.Now().Add(time.Hour).UnixNano()})
}

// A repeated id while the first runs is not run again and gets no second
// reply; a full queue answers busy at once; after the run, a repeat gets
// the kept reply.
func TestDispatcherRepeatAndBusy(t *testing.T) {
	pub := newPublished()
	started, release := make(chan struct{}, 1), make(chan struct{})
	var mu sync.Mutex
	runs := map[string]int{}
	d, err := New(Options{Publish: pub.publish, Commands: []Command{
		{Name: "block", Run: func(ctx context.Context, _ []byte) ([]byte, error) {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return []byte{0xc0}, nil
		}},
		{Name: "count", Run: func(_ context.Context, b []byte) ([]byte, error) {
			mu.Lock()
			runs[string(b)]++
			mu.Unlock()
			return []byte{0xc3}, nil
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	defer d.Close()

	d.Submit("block", request("b1"))
	<-started
	d.Submit("block", request("b1")) // redelivered while running
	for i := range QueueLen {
		d.Submit("count", request(fmt.Sprint("q", i)))
	}
	d.Submit("count", request("over"))
	if r := pub.wait(t, "over", 1); r[0].Status != StatusError {
		t.Fatalf("over a full queue: %+v", r)
	}
	close(release)
	for i := range QueueLen {
		if r := pub.wait(t, fmt.Sprint("q", i), 1); r[0].Status != StatusOK {
			t.Fatalf("q%d: %+v", i, r)
		}
	}
	if r := pub.get("b1"); len(r) != 1 || r[0].Status != StatusOK {
		t.Fatalf("b1 answered %+v, want once ok", r)
	}
	d.Submit("block", request("b1")) // a later redelivery: the kept reply
	if r := pub.wait(t, "b1", 2); r[0].TS != r[1].TS {
		t.Fatalf("b1 replies differ: %+v", r)
	}
	if st := d.Stats(); st.Runs != QueueLen+1 || st.Repeats != 2 || st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Close cancels a running command and answers the queued ones.
func TestDispatcherClose(t *testing.T) {
	pub := newPublished()
	started := make(chan struct{}, 1)
	d, err := New(Options{Publish: pub.publish, Commands: []Command{
		{Name: "block", Run: func(ctx context.Context, _ []byte) ([]byte, error) {
			started <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	d.Submit("block", request("a"))
	<-started
	d.Submit("block", request("b"))
	d.Close()
	d.Close()
	if ra, rb := pub.wait(t, "a", 1), pub.wait(t, "b", 1); ra[0].Status != StatusError || rb[0].Status != StatusError {
		t.Fatalf("replies %+v %+v", ra, rb)
	}
	// Never started: Close still answers what was queued.
	d2, _ := New(Options{Publish: pub.publish, Commands: []Command{{Name: "x", Run: func(context.Context, []byte) ([]byte, error) { return nil, nil }}}})
	d2.Submit("x", request("c"))
	d2.Close()
	pub.wait(t, "c", 1)
}

// A command's panic is an error reply, not a crash.
func TestDispatcherPanic(t *testing.T) {
	pub := newPublished()
	d, _ := New(Options{Publish: pub.publish, Commands: []Command{{Name: "boom", Run: func(context.Context, []byte) ([]byte, error) { panic("boom") }}}})
	d.Start()
	defer d.Close()
	d.Submit("boom", request("p"))
	if r := pub.wait(t, "p", 1); r[0].Status != StatusError {
		t.Fatalf("%+v", r)
	}
}

func TestNewRefusesBadCommands(t *testing.T) {
	run := func(context.Context, []byte) ([]byte, error) { return nil, nil }
	for _, cs := range [][]Command{{{Name: "a/b", Run: run}}, {{Name: "a"}}, {{Name: "a", Run: run}, {Name: "a", Run: run}}} {
		if _, err := New(Options{Publish: func(string, []byte) {}, Commands: cs}); err == nil {
			t.Errorf("%v accepted", cs)
		}
	}
}

// After Close a request is answered error, not left queued.
func TestDispatcherAfterClose(t *testing.T) {
	pub := newPublished()
	d, _ := New(Options{Publish: pub.publish, Commands: []Command{{Name: "x", Run: func(context.Context, []byte) ([]byte, error) { return nil, nil }}}})
	d.Start()
	d.Close()
	d.Submit("x", request("late"))
	if r := pub.wait(t, "late", 1); r[0].Status != StatusError {
		t.Fatalf("%+v", r)
	}
}
