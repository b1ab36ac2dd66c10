// Package examples holds the example gateway configuration (gateway.yaml)
// and its alert rules (rules.yaml), embedded so that binaries can write
// them out: outpost-demo runs on them when given no config.
package examples

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// FS holds gateway.yaml and rules.yaml.
//
//go:embed gateway.yaml rules.yaml
var FS embed.FS

// WriteTo writes the example files into dir, creating it and replacing
// files of the same names. gateway.yaml refers to rules.yaml by a relative
// path, so the two work together wherever they land.
func WriteTo(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("examples: %w", err)
	}
	entries, err := fs.ReadDir(FS, ".")
	if err != nil {
		return fmt.Errorf("examples: %w", err)
	}
	for _, e := range entries {
		data, err := FS.ReadFile(e.Name())
		if err != nil {
			return fmt.Errorf("examples: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			return fmt.Errorf("examples: %w", err)
		}
	}
	return nil
}
