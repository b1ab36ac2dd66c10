package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is stamped by release builds:
//
//	go build -ldflags "-X github.com/outposthq/outpost/cmd/internal/cli.version=1.2.3"
//
// Otherwise the module version from the build info is used.
var version string

// Info is what a binary knows about its own build.
type Info struct {
	Version   string `json:"version"`            // release version, module version or "(devel)"
	Revision  string `json:"revision,omitempty"` // VCS commit, when built from a checkout
	Time      string `json:"time,omitempty"`     // VCS commit time (RFC 3339)
	Modified  bool   `json:"modified,omitempty"` // the checkout had uncommitted changes
	GoVersion string `json:"go"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	// ArchLevel is GOARM or GOARM64 as built ("6", "v8.0"), if set.
	ArchLevel string `json:"arch_level,omitempty"`
}

// Version returns the running binary's build information.
func Version() Info {
	i := Info{Version: version, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if i.Version == "" {
			i.Version = "(unknown)"
		}
		return i
	}
	if i.Version == "" {
		i.Version = bi.Main.Version
	}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			i.Time = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		case "GOARM", "GOARM64": // GOAMD64 says little to an operator
			i.ArchLevel = s.Value
		}
	}
	return i
}

// String is one line: "v1.2.3 (rev 0123456789ab, 2026-12-06T10:00:00Z,
// modified) go1.26.8 linux/arm64".
func (i Info) String() string {
	var b strings.Builder
	b.WriteString(i.Version)
	var vcs []string
	rev := i.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	// A pseudo-version (v0.0.0-20261206051827-c570a5f7d6cc+dirty) already
	// says which commit, and whether the tree was modified.
	if rev != "" && !strings.Contains(i.Version, rev) {
		vcs = append(vcs, "rev "+rev)
		if i.Time != "" {
			vcs = append(vcs, i.Time)
		}
	}
	if i.Modified && !strings.HasSuffix(i.Version, "+dirty") {
		vcs = append(vcs, "modified")
	}
	if len(vcs) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(vcs, ", "))
	}
	fmt.Fprintf(&b, " %s %s/%s", i.GoVersion, i.OS, i.Arch)
	if i.ArchLevel != "" {
		fmt.Fprintf(&b, " (%s)", i.ArchLevel)
	}
	return b.String()
}
