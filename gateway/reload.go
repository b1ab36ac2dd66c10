package gateway

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/outposthq/outpost/rules"
)

// reloadDebounce is how long the watcher waits after the last change to a
// rules file before it reloads: an editor's save is several events.
const reloadDebounce = 250 * time.Millisecond

// ReloadRules loads the config's rules files anew and, if they are valid,
// swaps them in on the rule engine's goroutine: rules whose definition did
// not change keep their state (pending `for` timers, firing instances);
// the instances of changed or removed rules end with a resolved (firing)
// or inactive (pending) alert, and a changed rule starts afresh. The new
// state is saved. The outbox's batches are not touched.
//
// A file with errors keeps the running rules: the error (file:line:col)
// is logged and returned. A file too large (rules.MaxFileBytes), nested
// too deep (yamlpos.MaxDepth) or that is not a regular file (a named
// pipe, a device) is refused the same way, before it is read or parsed,
// so that no file can make a reload take the gateway's memory. ReloadRules returns once the new rules are in
// use. It is safe for concurrent use; it returns an error before Start,
// after Close, and for a gateway started without rules files.
func (g *Gateway) ReloadRules() error {
	if g.ruler == nil {
		g.log.Warn().Msg("rules reload: no rules files configured")
		return errors.New("gateway: rules reload: no rules files configured")
	}
	if !g.started.Load() {
		return errors.New("gateway: rules reload: not started")
	}
	set, err := rules.LoadFiles(g.cfg.Rules.Files...)
	if err != nil {
		g.reloadFails.Add(1)
		g.log.Error().Err(err).Msg("rules reload failed: the running rules stay")
		return fmt.Errorf("gateway: rules reload: %w", err)
	}
	if _, err := g.ruler.swapRules(set); err != nil {
		return err
	}
	g.setRulesHash(set)
	return nil
}

// setRulesHash records the hash of the rules now running.
func (g *Gateway) setRulesHash(set *rules.Set) {
	h := set.Hash()
	g.rulesHash.Store(&h)
}

// runningRulesHash is the hash of the rules running, "" without rules.
func (g *Gateway) runningRulesHash() string {
	if h := g.rulesHash.Load(); h != nil {
		return *h
	}
	return ""
}

// watcher reloads the rules when one of their files changes. It watches
// the files' directories, as editors and config management replace a file
// by renaming another over it, and debounces bursts of events.
type watcher struct {
	fs    *fsnotify.Watcher
	files map[string]bool // cleaned absolute paths
	stop  chan struct{}
	done  chan struct{}
}

// startWatcher starts watching the rules files; a watcher that cannot be
// set up (inotify limits) is logged, and SIGHUP still reloads.
func (g *Gateway) startWatcher() {
	if len(g.cfg.Rules.Files) == 0 {
		return
	}
	w, err := newWatcher(g.cfg.Rules.Files)
	if err != nil {
		g.log.Error().Err(err).Msg("watching the rules files failed: reload them with SIGHUP")
		return
	}
	g.watch = w
	go w.run(g)
}

func (g *Gateway) stopWatcher() {
	if g.watch == nil {
		return
	}
	close(g.watch.stop)
	<-g.watch.done
}

func newWatcher(files []string) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("gateway: rules watcher: %w", err)
	}
	w := &watcher{fs: fw, files: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	dirs := map[string]bool{}
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			fw.Close()
			return nil, fmt.Errorf("gateway: rules watcher: %w", err)
		}
		w.files[abs] = true
		dirs[filepath.Dir(abs)] = true
	}
	for d := range dirs {
		if err := fw.Add(d); err != nil {
			fw.Close()
			return nil, fmt.Errorf("gateway: rules watcher: %w", err)
		}
	}
	return w, nil
}

// run is the watcher's goroutine; stopWatcher ends it and waits.
func (w *watcher) run(g *Gateway) {
	defer close(w.done)
	defer func() {
		if err := w.fs.Close(); err != nil {
			g.log.Error().Err(err).Msg("closing the rules watcher")
		}
	}()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-w.stop:
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if w.files[filepath.Clean(ev.Name)] && ev.Op&^fsnotify.Chmod != 0 {
				timer.Reset(reloadDebounce)
			}
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			g.log.Error().Err(err).Msg("rules watcher")
		case <-timer.C:
			g.log.Info().Msg("rules file changed: reloading")
			// Errors are logged by ReloadRules; a later change retries.
			if err := g.ReloadRules(); errors.Is(err, errRulerStopped) {
				return
			}
		}
	}
}
