package examples_test

import (
	"path/filepath"
	"testing"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/examples"
	"github.com/outposthq/outpost/rules"
)

func TestWriteTo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "conf")
	if err := examples.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	if err := examples.WriteTo(dir); err != nil {
		t.Fatalf("second write over the first: %v", err)
	}
	c, err := config.Load(filepath.Join(dir, "gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range c.Rules.Files {
		if _, err := rules.LoadFile(f); err != nil {
			t.Fatal(err)
		}
	}
	if c.DataDir != filepath.Join(dir, "data") {
		t.Errorf("data dir %q", c.DataDir)
	}
}
