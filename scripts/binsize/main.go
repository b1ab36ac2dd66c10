// Command binsize measures the release binaries: their stripped size per
// target, built as scripts/release builds them, and what each module
// costs in a binary, from the sizes of its symbols. It prints Markdown
// for docs/benchmarks.md.
//
//	go run ./scripts/binsize                     # or: make binsize
//	go run ./scripts/binsize -breakdown outpost@armv7,outpost-ingest@amd64 -top 20
//
// A module's cost is the sum of the sizes of the symbols of its packages
// (code, read-only data, data, type descriptors) in the ELF symbol table
// of a build with the same flags but -s (which drops that table). The
// runtime's function tables (.gopclntab, which grow with the code of
// every package), ELF headers and padding are not attributed to any
// module; the table shows them in two lines, so the rows add up to the
// stripped file's size.
package main

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// target is one of scripts/release's targets.
type target struct {
	name, goarch, goarm string
}

var targets = []target{
	{"armv6", "arm", "6"},
	{"armv7", "arm", "7"},
	{"arm64", "arm64", ""},
	{"amd64", "amd64", ""},
}

func main() {
	var (
		cmds      = flag.String("cmds", "outpost,outpost-ingest,outpost-sim", "commands under ./cmd to measure, comma-separated")
		breakdown = flag.String("breakdown", "outpost@armv7", "CMD@TARGET pairs to break down by module, comma-separated")
		top       = flag.Int("top", 15, "modules to list in a breakdown; the rest are summed in one row")
		goCmd     = flag.String("go", envOr("GO", "go"), "the go command")
	)
	flag.Parse()
	if err := run(os.Stdout, *goCmd, split(*cmds), split(*breakdown), *top); err != nil {
		fmt.Fprintln(os.Stderr, "binsize:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, goCmd string, cmds, breakdowns []string, top int) error {
	dir, err := os.MkdirTemp("", "binsize")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Fprintf(w, "Stripped sizes (CGO_ENABLED=0, -trimpath, -ldflags \"-s -w\"), bytes (MiB):\n\n")
	fmt.Fprintf(w, "| binary |")
	for _, t := range targets {
		fmt.Fprintf(w, " %s |", t.name)
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---:|", len(targets)))
	for _, c := range cmds {
		fmt.Fprintf(w, "| %s |", c)
		for _, t := range targets {
			out := filepath.Join(dir, t.name, c)
			if err := build(goCmd, t, c, "-s -w", out); err != nil {
				return err
			}
			fi, err := os.Stat(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, " %d (%.1f) |", fi.Size(), mib(fi.Size()))
		}
		fmt.Fprintln(w)
	}

	for _, b := range breakdowns {
		c, tname, ok := strings.Cut(b, "@")
		i := slices.IndexFunc(targets, func(t target) bool { return t.name == tname })
		if !ok || i < 0 {
			return fmt.Errorf("-breakdown %q: want CMD@TARGET, TARGET one of armv6 armv7 arm64 amd64", b)
		}
		t := targets[i]
		stripped := filepath.Join(dir, t.name, c+".stripped")
		if err := build(goCmd, t, c, "-s -w", stripped); err != nil {
			return err
		}
		withSyms := filepath.Join(dir, t.name, c+".syms")
		if err := build(goCmd, t, c, "-w", withSyms); err != nil {
			return err
		}
		fi, err := os.Stat(stripped)
		if err != nil {
			return err
		}
		costs, pclntab, err := moduleCosts(withSyms)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\n%s on %s (%d bytes stripped), by module:\n\n", c, t.name, fi.Size())
		writeCosts(w, costs, pclntab, fi.Size(), top)
	}
	return nil
}

func build(goCmd string, t target, cmd, ldflags, out string) error {
	c := exec.Command(goCmd, "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, "./cmd/"+cmd)
	c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+t.goarch, "GOARM="+t.goarm)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("go build %s for %s: %v\n%s", cmd, t.name, err, stderr.Bytes())
	}
	return nil
}

// cost is what one module's symbols take.
type cost struct {
	module string
	bytes  int64
}

// moduleCosts sums the sizes of a binary's symbols by module, largest
// first, and returns the size of its .gopclntab section. Symbols in
// .gopclntab and in sections that take no room in the file (.bss) are
// left out.
func moduleCosts(name string) (costs []cost, pclntab int64, err error) {
	bi, err := buildinfo.ReadFile(name)
	if err != nil {
		return nil, 0, err
	}
	mods := []string{bi.Main.Path}
	for _, d := range bi.Deps {
		mods = append(mods, d.Path)
	}
	f, err := elf.Open(name)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	if s := f.Section(".gopclntab"); s != nil {
		pclntab = int64(s.Size)
	}
	syms, err := f.Symbols()
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w (built without -s?)", name, err)
	}
	sum := map[string]int64{}
	for _, s := range syms {
		if int(s.Section) <= 0 || int(s.Section) >= len(f.Sections) {
			continue // undefined, absolute or common
		}
		sec := f.Sections[s.Section]
		if sec.Type == elf.SHT_NOBITS || sec.Flags&elf.SHF_ALLOC == 0 || sec.Name == ".gopclntab" {
			continue
		}
		sum[moduleOf(packageOf(s.Name), mods)] += int64(s.Size)
	}
	for m, b := range sum {
		costs = append(costs, cost{m, b})
	}
	slices.SortFunc(costs, func(a, b cost) int {
		if a.bytes != b.bytes {
			return int(b.bytes - a.bytes)
		}
		return strings.Compare(a.module, b.module)
	})
	return costs, pclntab, nil
}

func writeCosts(w io.Writer, costs []cost, pclntab, fileSize int64, top int) {
	fmt.Fprintf(w, "| module | bytes | share |\n|---|---:|---:|\n")
	var attributed, rest int64
	nrest := 0
	for i, c := range costs {
		attributed += c.bytes
		if i >= top {
			rest += c.bytes
			nrest++
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %.1f%% |\n", c.module, c.bytes, pct(c.bytes, fileSize))
	}
	if nrest > 0 {
		fmt.Fprintf(w, "| (%d other modules) | %d | %.1f%% |\n", nrest, rest, pct(rest, fileSize))
	}
	fmt.Fprintf(w, "| (.gopclntab: function names, line tables, stack maps of all the code) | %d | %.1f%% |\n", pclntab, pct(pclntab, fileSize))
	other := fileSize - attributed - pclntab
	fmt.Fprintf(w, "| (no symbol: type descriptors and strings in .rodata, headers, padding) | %d | %.1f%% |\n", other, pct(other, fileSize))
}

// packageOf returns the import path of the package a Go symbol belongs
// to, or a parenthesised class for symbols of no package.
func packageOf(sym string) string {
	name := sym
	switch {
	case strings.HasPrefix(name, "go:itab."):
		name = strings.TrimPrefix(name, "go:itab.") // the concrete type's package
	case strings.HasPrefix(name, "type:"):
		name = strings.TrimPrefix(name, "type:")
		name = strings.TrimPrefix(name, ".eq.")
		name = strings.TrimPrefix(name, ".namedata.")
		name = strings.TrimPrefix(name, ".importpath.")
	case strings.HasPrefix(name, "go:"):
		return "(runtime metadata)"
	}
	name = strings.TrimLeft(name, "*[]0123456789")
	if name == "" || strings.ContainsAny(name[:1], "({") ||
		strings.HasPrefix(name, "map[") || strings.HasPrefix(name, "func(") ||
		strings.HasPrefix(name, "struct {") || strings.HasPrefix(name, "interface {") ||
		strings.HasPrefix(name, "chan ") || strings.HasPrefix(name, "noalg.") {
		return "(composite types)"
	}
	// The package path ends at the first dot after its last slash; a
	// generic's brackets and a method's parentheses may hold other paths.
	head := name
	if i := strings.IndexAny(head, "[(,"); i >= 0 {
		head = head[:i]
	}
	slash := strings.LastIndex(head, "/")
	dot := strings.Index(head[slash+1:], ".")
	if dot < 0 {
		return "(no package)"
	}
	// The linker escapes dots in a path's last element (gopkg.in/yaml%2ev3).
	return strings.ReplaceAll(head[:slash+1+dot], "%2e", ".")
}

// moduleOf maps a package to the module in mods that holds it (the
// longest prefix), "std" for the standard library, or pkg itself for a
// class such as "(composite types)".
func moduleOf(pkg string, mods []string) string {
	if strings.HasPrefix(pkg, "(") {
		return pkg
	}
	best := ""
	for _, m := range mods {
		if (pkg == m || strings.HasPrefix(pkg, m+"/")) && len(m) > len(best) {
			best = m
		}
	}
	if best != "" {
		return best
	}
	first, _, _ := strings.Cut(pkg, "/")
	if !strings.Contains(first, ".") || first == "vendor" {
		return "std"
	}
	return "(module not in build info) " + pkg
}

func split(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func pct(n, total int64) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(n) / float64(total)
}
