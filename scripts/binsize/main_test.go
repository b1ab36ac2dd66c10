package main

import "testing"

func TestPackageOf(t *testing.T) {
	for _, c := range []struct{ sym, want string }{
		{"runtime.mallocgc", "runtime"},
		{"github.com/rs/zerolog.(*Event).Str", "github.com/rs/zerolog"},
		{"github.com/rs/zerolog.(*Event).Str.func1", "github.com/rs/zerolog"},
		{"type:*github.com/rs/zerolog.Event", "github.com/rs/zerolog"},
		{"type:.eq.go.etcd.io/bbolt.Options", "go.etcd.io/bbolt"},
		{"type:[]*go.etcd.io/bbolt.node", "go.etcd.io/bbolt"},
		{"type:map[string]github.com/x/y.T", "(composite types)"},
		{"type:func(int) error", "(composite types)"},
		{"go:itab.*github.com/a/b.T,io.Writer", "github.com/a/b"},
		{"slices.SortFunc[go.shape.*github.com/a/b.T]", "slices"},
		{"github.com/a/b.F[go.shape.string].func1", "github.com/a/b"},
		{"gopkg.in/yaml%2ev3.(*parser).parse", "gopkg.in/yaml.v3"},
		{"crypto/internal/fips140/aes.encryptBlock", "crypto/internal/fips140/aes"},
		{"go:buildid", "(runtime metadata)"},
		{"_rt0_arm_linux", "(no package)"},
	} {
		if got := packageOf(c.sym); got != c.want {
			t.Errorf("packageOf(%q) = %q, want %q", c.sym, got, c.want)
		}
	}
}

func TestModuleOf(t *testing.T) {
	mods := []string{"github.com/outposthq/outpost", "periph.io/x/conn/v3", "periph.io/x/host/v3", "golang.org/x/sys"}
	for _, c := range []struct{ pkg, want string }{
		{"github.com/outposthq/outpost/gateway", "github.com/outposthq/outpost"},
		{"github.com/outposthq/outpost", "github.com/outposthq/outpost"},
		{"periph.io/x/host/v3/bcm283x", "periph.io/x/host/v3"},
		{"golang.org/x/sys/unix", "golang.org/x/sys"},
		{"vendor/golang.org/x/net/http2/hpack", "std"},
		{"net/http", "std"},
		{"(composite types)", "(composite types)"},
		{"example.com/gone/pkg", "(module not in build info) example.com/gone/pkg"},
	} {
		if got := moduleOf(c.pkg, mods); got != c.want {
			t.Errorf("moduleOf(%q) = %q, want %q", c.pkg, got, c.want)
		}
	}
}
