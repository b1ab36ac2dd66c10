package gateway

import (
	"errors"
	"os"
	"slices"
	"strings"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/internal/yamlpos"
	"github.com/outposthq/outpost/rules"
	"github.com/outposthq/outpost/uplink"
)

// Check validates a config file and the rules files it names, reporting
// every problem it finds in all of them, each as file:line:col: message:
// a config with errors still has its rules files checked. o are the
// command line's overrides, nil for none: given the same ones as a run,
// Check checks the config that run would start with. It reads the files
// the config names (TLS, password, auth key, rules) but connects to
// nothing, and creates no key.
func Check(path string, o *config.Overrides) error {
	opts := &config.LoadOptions{Drivers: DefaultRegistry().Names(), CheckKeyFile: checkKeyFile}
	if o != nil {
		opts.Overrides = *o
	}
	cfg, err := config.LoadPartial(path, opts)
	if cfg == nil {
		return err
	}
	var errs yamlpos.ErrorList
	appendErr(&errs, err)
	var files []string
	for _, f := range cfg.Rules.Files {
		if fi, serr := os.Stat(f); serr == nil && !fi.IsDir() {
			files = append(files, f) // the config's errors name the others
		}
	}
	if len(files) > 0 {
		_, rerr := rules.LoadFiles(files...)
		appendErr(&errs, rerr)
	}
	return errs.Err()
}

// checkKeyFile reads a key file as the uplink will; its error does not
// repeat the file's name, which the config's error gives.
func checkKeyFile(name string) error {
	_, _, err := uplink.LoadKey(name)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "uplink: key file "+name+": "))
	}
	return nil
}

func appendErr(errs *yamlpos.ErrorList, err error) {
	if err == nil {
		return
	}
	var list yamlpos.ErrorList
	if errors.As(err, &list) {
		*errs = append(*errs, slices.Clone(list)...)
		return
	}
	*errs = append(*errs, &yamlpos.Error{Msg: err.Error()})
}
