package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/outposthq/outpost/internal/yamlpos"
)

// Overrides are values given on the command line (outpost run and outpost
// check take them as flags) that replace the file's. An empty field
// overrides nothing.
//
// Load applies them after decoding and defaults and before validation, so
// a file may leave out what they give: a fleet ships one file without
// gateway.id and gives each gateway its id by flag. Errors about an
// overridden value name its flag ("--gateway-id: ...") instead of a place
// in the file.
type Overrides struct {
	// Broker replaces uplink.broker (--broker).
	Broker string
	// DataDir replaces data_dir (--data-dir). A relative path is relative
	// to the working directory, not to the file's directory: it came from
	// the command line. Load stores it made absolute.
	DataDir string
	// GatewayID replaces gateway.id (--gateway-id).
	GatewayID string
}

// apply sets in c the values o gives.
func (o *Overrides) apply(c *Config) yamlpos.ErrorList {
	var errs yamlpos.ErrorList
	if o.Broker != "" {
		c.Uplink.Broker = o.Broker
	}
	if o.DataDir != "" {
		c.DataDir = o.DataDir
		if dir, err := filepath.Abs(o.DataDir); err != nil {
			errs = append(errs, &yamlpos.Error{Msg: fmt.Sprintf("--data-dir: %v", err)})
		} else {
			c.DataDir = dir
		}
	}
	if o.GatewayID != "" {
		c.Gateway.ID = o.GatewayID
	}
	return errs
}

// overridden drops the decode errors about values o replaces: a value
// the file gets wrong, such as ${OUTPOST_GATEWAY_ID} unset, does not
// matter when its flag gives it (a packaged config names the variable,
// and outpost check --gateway-id must pass without it).
func (o *Overrides) overridden(errs yamlpos.ErrorList) yamlpos.ErrorList {
	var prefixes []string
	for _, f := range []struct{ value, field string }{
		{o.Broker, "uplink.broker: "}, {o.DataDir, "data_dir: "}, {o.GatewayID, "gateway.id: "},
	} {
		if f.value != "" {
			prefixes = append(prefixes, f.field)
		}
	}
	if len(prefixes) == 0 {
		return errs
	}
	return slices.DeleteFunc(errs, func(e *yamlpos.Error) bool {
		return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(e.Msg, p) })
	})
}

// flags maps the paths of the fields o overrides to the flags that give
// them; nil when o overrides nothing.
func (o *Overrides) flags() map[string]string {
	var m map[string]string
	for _, f := range []struct{ value, path, flag string }{
		{o.Broker, "$.uplink.broker", "--broker"},
		{o.DataDir, "$.data_dir", "--data-dir"},
		{o.GatewayID, "$.gateway.id", "--gateway-id"},
	} {
		if f.value == "" {
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[f.path] = f.flag
	}
	return m
}
