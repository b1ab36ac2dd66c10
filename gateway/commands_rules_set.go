package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost/gateway/command"
	"github.com/outposthq/outpost/rules"
)

// rulesSetCommand: body {"content": the new rules file (bin or str, at
// most what a request holds), "if_hash": optional, the hash of the rules
// the sender expects to be running (rules.get's "hash")}. It replaces
// the gateway's rules file, when its config names exactly one:
//
//  1. the content is compiled by the same checker as `outpost check` and
//     a reload: any problem refuses it (invalid, "errors" listing each
//     as FILE:LINE:COL, FILE the rules file's name), and the rules that
//     run stay;
//  2. with if_hash, rules other than those expected refuse it (error):
//     a fleet push does not overwrite a change it has not seen;
//  3. the file is replaced atomically (a temporary file in its
//     directory, synced, renamed over it, the directory synced), so a
//     power cut leaves the old file or the new one, and a restart runs
//     what was set;
//  4. the rules are swapped as a reload swaps them: the state of rules
//     that did not change is kept, changed or removed ones end their
//     alerts (docs/rules.md, "Reload").
//
// It replies {"hash": the rules running now, "previous": those before,
// "rules": their names, "path": the file written}. The rules-file
// watcher then sees the new file and reloads the same rules, which
// changes nothing.
func (g *Gateway) rulesSetCommand() command.Command {
	return command.Command{Name: "rules.set", Run: func(_ context.Context, body []byte) ([]byte, error) {
		content, ifHash, err := rulesSetArgs(body)
		if err != nil {
			return nil, err
		}
		if g.ruler == nil || len(g.cfg.Rules.Files) != 1 {
			return nil, fmt.Errorf("rules.set needs exactly one rules file in the gateway's config (rules.files has %d)", len(g.cfg.Rules.Files))
		}
		path := g.cfg.Rules.Files[0]
		set, err := rules.Parse(filepath.Base(path), content)
		if err != nil {
			return nil, command.Invalid(err)
		}
		g.rulesSetMu.Lock()
		defer g.rulesSetMu.Unlock()
		prev := g.runningRulesHash()
		if ifHash != "" && ifHash != prev {
			return nil, fmt.Errorf("the rules running are %s, not %s (if_hash): fetch them again", prev, trimArg(ifHash))
		}
		if err := replaceFile(path, content); err != nil {
			return nil, fmt.Errorf("rules.set: %w", err)
		}
		if _, err := g.ruler.swapRules(set); err != nil {
			return nil, fmt.Errorf("rules.set: the file is written, the rules were not swapped: %w", err)
		}
		g.setRulesHash(set)
		g.log.Info().Str("path", path).Str("hash", set.Hash()).Str("previous", prev).Int("rules", len(set.Rules)).
			Msg("rules set by a remote command")
		b := msgp.AppendMapHeader(nil, 4)
		b = msgp.AppendString(b, "hash")
		b = msgp.AppendString(b, set.Hash())
		b = msgp.AppendString(b, "previous")
		b = msgp.AppendString(b, prev)
		b = msgp.AppendString(b, "rules")
		b = msgp.AppendArrayHeader(b, uint32(len(set.Rules)))
		for _, r := range set.Rules {
			b = msgp.AppendString(b, r.Name)
		}
		b = msgp.AppendString(b, "path")
		return msgp.AppendString(b, path), nil
	}}
}

// rulesSetArgs reads rules.set's body: content (bin or str, required)
// and if_hash (str, optional); another key is refused.
func rulesSetArgs(body []byte) (content []byte, ifHash string, err error) {
	n, rest, err := msgp.ReadMapHeaderBytes(body)
	if err != nil {
		return nil, "", command.Invalid(fmt.Errorf(`body: want {"content": the rules file, "if_hash": optional}: %v`, err))
	}
	if n > 2 {
		return nil, "", command.Invalid(fmt.Errorf("body: %d keys, at most 2", n))
	}
	for range n {
		var k string
		if k, rest, err = msgp.ReadStringBytes(rest); err != nil {
			return nil, "", command.Invalid(fmt.Errorf("body: key: %v", err))
		}
		switch k {
		case "content":
			if msgp.NextType(rest) == msgp.StrType {
				var s string
				s, rest, err = msgp.ReadStringBytes(rest)
				content = []byte(s)
			} else {
				content, rest, err = msgp.ReadBytesBytes(rest, nil)
			}
		case "if_hash":
			ifHash, rest, err = msgp.ReadStringBytes(rest)
		default:
			return nil, "", command.Invalid(fmt.Errorf("body: unknown key %q", trimArg(k)))
		}
		if err != nil {
			return nil, "", command.Invalid(fmt.Errorf("body: %q: %v", k, err))
		}
	}
	if len(rest) != 0 {
		return nil, "", command.Invalid(errors.New("body: bytes after the map"))
	}
	if content == nil {
		return nil, "", command.Invalid(errors.New(`body: "content", the rules file, is required`))
	}
	return content, ifHash, nil
}

// replaceFile replaces path with data atomically: a temporary file in
// its directory with path's mode (0644 if it has none), synced, renamed
// over it, then the directory synced.
func replaceFile(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
