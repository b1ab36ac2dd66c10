package outpost_test

import (
	"strings"
	"testing"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/config"
)

// TestValidNameIsTheConfigRule: the ingest service refuses the names that
// a gateway's config refuses, and only those.
func TestValidNameIsTheConfigRule(t *testing.T) {
	if outpost.MaxNameLen != config.MaxIDLen {
		t.Fatalf("MaxNameLen %d, config.MaxIDLen %d", outpost.MaxNameLen, config.MaxIDLen)
	}
	names := []string{"", ".", "..", "...", "a", "gw-01", "a b", "a/b", "a+b", "a#", "é", "\x00", "\xff",
		strings.Repeat("x", 64), strings.Repeat("x", 65)}
	for c := 0; c < 256; c++ {
		names = append(names, string(rune(c)), "a"+string([]byte{byte(c)}))
	}
	for _, s := range names {
		if got, want := outpost.ValidName(s), config.ValidID(s); got != want {
			t.Errorf("ValidName(%q) = %v, config.ValidID says %v", s, got, want)
		}
	}
}

func FuzzValidName(f *testing.F) {
	f.Add("gw-01")
	f.Add("..")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := outpost.ValidName(s), config.ValidID(s); got != want {
			t.Fatalf("ValidName(%q) = %v, config.ValidID says %v", s, got, want)
		}
	})
}
