package gateway

import (
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/rules"
)

// Check validates a config file and the rules files it names, reporting
// every problem it finds, each as file:line:col: message.
func Check(path string) error {
	cfg, err := config.LoadWith(path, &config.LoadOptions{Drivers: DefaultRegistry().Names()})
	if err != nil {
		return err
	}
	if len(cfg.Rules.Files) > 0 {
		if _, err := rules.LoadFiles(cfg.Rules.Files...); err != nil {
			return err
		}
	}
	return nil
}
