package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/outposthq/outpost/internal/yamlpos"
)

// MaxConfigBytes bounds the config file: a larger one is an error at its
// line 1, found before it is read, and so is a file that is not a regular
// file (a named pipe, a device). Configs are a few KiB; go-yaml takes some
// 600 bytes of memory per byte it parses, so a bound well above any real
// config still keeps a bad file from exhausting a gateway's memory.
const MaxConfigBytes = 1 << 20

// Load reads the config file at path, expands the environment variables
// its values name, applies defaults, resolves relative paths against the
// file's directory and validates everything. A file with problems yields
// a yamlpos.ErrorList holding all of them, each formatted
// file:line:col: message, sorted by position.
//
// Any value may name environment variables: ${NAME}, or ${NAME:-default}
// for a default used when NAME is unset or empty; $$ is a literal $. A
// variable that is not set and has no default is an error at its ${.
// Keys and comments are never expanded, and a value cannot change the
// file's shape; yamlpos.Options has the details.
//
// The file must be a regular file of at most MaxConfigBytes, and within
// the shape yamlpos.Parse accepts (yamlpos.MaxDepth levels of nesting,
// yamlpos.MaxKeys keys in a mapping); else the error is positioned at the
// file, or at the first byte past the limit, and the file is not parsed.
func Load(path string) (*Config, error) {
	return LoadWith(path, nil)
}

// LoadOptions adds what Load needs from outside the file.
type LoadOptions struct {
	// Drivers, when not nil, lists the sensor drivers the caller has; a
	// sensor naming another is a positioned error.
	Drivers []string
	// LookupEnv returns the value of an environment variable the file
	// names and whether it is set; nil means os.LookupEnv.
	LookupEnv func(name string) (value string, ok bool)
	// Overrides replace values of the file, as command-line flags do;
	// the zero value overrides nothing.
	Overrides Overrides
	// CheckKeyFile, when not nil, checks uplink.auth_key_file when the
	// file exists (gateway.Check passes the uplink's reader); its error
	// is reported at the field. It must not show the file's content.
	CheckKeyFile func(name string) error
}

// LoadWith is Load with options; nil opts means none.
func LoadWith(path string, opts *LoadOptions) (*Config, error) {
	data, err := read(path)
	if err != nil {
		return nil, err
	}
	return parse(path, data, opts)
}

// LoadPartial is LoadWith for checkers: on errors it also returns the
// config as far as it could be decoded (defaults applied, paths
// resolved, overrides applied), so that a caller can go on checking what
// the file names, such as its rules files. Use the config only to report
// more problems. It is nil when the file could not be read or parsed as
// YAML at all.
func LoadPartial(path string, opts *LoadOptions) (*Config, error) {
	data, err := read(path)
	if err != nil {
		return nil, err
	}
	return parsePartial(path, data, opts)
}

// read reads the config file: a file too large or not regular is a
// positioned error (a yamlpos.ErrorList), others are prefixed "config: ".
func read(path string) ([]byte, error) {
	data, err := yamlpos.ReadFile(path, MaxConfigBytes)
	var list yamlpos.ErrorList
	if err != nil && !errors.As(err, &list) {
		err = fmt.Errorf("config: %w", err)
	}
	return data, err
}

// Parse is Load on bytes already read; name is the file name used in
// errors, and its directory is the base for relative paths. It checks that
// the rules files exist, like Load.
func Parse(name string, data []byte) (*Config, error) {
	return parse(name, data, nil)
}

func parse(name string, data []byte, opts *LoadOptions) (*Config, error) {
	c, err := parsePartial(name, data, opts)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func parsePartial(name string, data []byte, opts *LoadOptions) (*Config, error) {
	if opts == nil {
		opts = &LoadOptions{}
	}
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	doc, err := yamlpos.ParseWith(name, data, &yamlpos.Options{LookupEnv: lookup})
	if err != nil {
		return nil, err
	}
	c := &Config{}
	c.SetDefaults()
	errs := opts.Overrides.overridden(doc.Decode(c))
	c.Path = name
	c.markBounds(doc)
	c.resolve(filepath.Dir(name))
	errs = append(errs, opts.Overrides.apply(c)...)
	errs = append(errs, c.validate(doc, opts)...)
	return c, errs.Err()
}

// markBounds sets the Has flags of signal bounds the file gives.
func (c *Config) markBounds(doc *yamlpos.Doc) {
	c.signals(func(p string, sig *Signal) {
		sig.HasMin, sig.HasMax = doc.Has(p+".min"), doc.Has(p+".max")
	})
}

// signals calls f with every signal of c and its path: the sim driver's
// metric signals and the simulated chips' signals.
func (c *Config) signals(f func(path string, sig *Signal)) {
	for i := range c.Sensors {
		s := &c.Sensors[i]
		for j := range s.Metrics {
			f(fmt.Sprintf("$.sensors[%d].metrics[%d].signal", i, j), &s.Metrics[j].Signal)
		}
		if s.Sim == nil {
			continue
		}
		for name, sig := range s.Sim.Signals {
			f(fmt.Sprintf("$.sensors[%d].sim.signals.%s", i, name), &sig)
			s.Sim.Signals[name] = sig
		}
	}
}

// resolve makes relative paths in c relative to dir.
func (c *Config) resolve(dir string) {
	if c.DataDir != "" && !filepath.IsAbs(c.DataDir) {
		c.DataDir = filepath.Join(dir, c.DataDir)
	}
	for _, p := range []*string{&c.Uplink.PasswordFile, &c.Uplink.TLS.CAFile, &c.Uplink.TLS.CertFile, &c.Uplink.TLS.KeyFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	c.signals(func(_ string, sig *Signal) {
		if sig.File != "" && !filepath.IsAbs(sig.File) {
			sig.File = filepath.Join(dir, sig.File)
		}
	})
	for i, f := range c.Rules.Files {
		if f != "" && !filepath.IsAbs(f) {
			c.Rules.Files[i] = filepath.Join(dir, f)
		}
	}
}
