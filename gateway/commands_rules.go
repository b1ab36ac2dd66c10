package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost/gateway/command"
	"github.com/outposthq/outpost/rules"
)

// maxRulesReply bounds what rules.get reads of the rules files in all,
// so that its reply stays within command.MaxReplyBytes.
const maxRulesReply = command.MaxReplyBytes - 16<<10

// rulesGetCommand: no arguments; replies {"hash": the rules running
// (rules.Set.Hash, "" without rules), "files": [{"path", "content"
// (binary: the file as it is on disk now), "sha256" (hex of content)}],
// "rules": the names of the rules running, as of the engine's last tick,
// "reloads", "reload_fails"}. A file that is not a regular file, or files
// over 240 KiB in all, make it fail; the running rules are what the last
// successful load or reload made of the files, which may differ from
// them after a refused reload (reload_fails counts those).
func (g *Gateway) rulesGetCommand() command.Command {
	return command.Command{Name: "rules.get", Run: func(_ context.Context, body []byte) ([]byte, error) {
		if err := noBody(body); err != nil {
			return nil, err
		}
		files := g.cfg.Rules.Files
		b := msgp.AppendMapHeader(nil, 5)
		b = msgp.AppendString(b, "hash")
		b = msgp.AppendString(b, g.runningRulesHash())
		b = msgp.AppendString(b, "files")
		b = msgp.AppendArrayHeader(b, uint32(len(files)))
		total := 0
		for _, f := range files {
			data, err := readBounded(f, min(rules.MaxFileBytes, maxRulesReply-total))
			if err != nil {
				return nil, err
			}
			total += len(data)
			sum := sha256.Sum256(data)
			b = msgp.AppendMapHeader(b, 3)
			b = msgp.AppendString(b, "path")
			b = msgp.AppendString(b, f)
			b = msgp.AppendString(b, "content")
			b = msgp.AppendBytes(b, data)
			b = msgp.AppendString(b, "sha256")
			b = msgp.AppendString(b, hex.EncodeToString(sum[:]))
		}
		var names []string
		var reloads, fails int64
		if g.ruler != nil {
			for _, st := range g.ruler.ruleStats() {
				names = append(names, st.Rule)
			}
			reloads, fails = g.ruler.reloads.Load(), g.reloadFails.Load()
		}
		b = msgp.AppendString(b, "rules")
		b = msgp.AppendArrayHeader(b, uint32(len(names)))
		for _, n := range names {
			b = msgp.AppendString(b, n)
		}
		b = msgp.AppendString(b, "reloads")
		b = msgp.AppendInt64(b, reloads)
		b = msgp.AppendString(b, "reload_fails")
		return msgp.AppendInt64(b, fails), nil
	}}
}

// readBounded reads the regular file path, refusing one over limit bytes
// before reading more than limit+1.
func readBounded(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if limit < 0 {
		limit = 0
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes: too large for a reply", path, limit)
	}
	return data, nil
}
