package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/cmd/internal/cli"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/uplink"
)

const keyUsage = `usage: outpost key <create|show|fingerprint> --config FILE [flags]

The gateway's auth key (uplink.auth_key_file) signs every batch it sends;
the ingest service checks them with a copy of it and signs its acks with it
(outpost-ingest --auth-keys FILE, lines "GATEWAY-ID KEY"). The gateway
creates the key at its first start; these commands make it sooner and
read it, never into a log.

commands:
  create       create the key file now, as the first start would (mode 0600)
  show         print "GATEWAY-ID KEY": the gateway's line of the ingest
               service's key file; the key is a secret, copy it safely
  fingerprint  print "GATEWAY-ID FINGERPRINT", as the gateway logs it

The flags are those of outpost run (--config, --gateway-id, --data-dir,
--broker). Run 'outpost key <command> --help' for them.

example:
  outpost key show --config /etc/outpost/gateway.yaml
`

var keyCmds = map[string]cli.Command{
	"create": {
		Name:     "outpost key create",
		Args:     "--config FILE [flags]",
		Summary:  "Creates the gateway's key file (uplink.auth_key_file, mode 0600) as the first start would,\nand prints its fingerprint. It fails if the file exists.",
		Examples: []string{"outpost key create --config /etc/outpost/gateway.yaml"},
	},
	"show": {
		Name: "outpost key show",
		Args: "--config FILE [flags]",
		Summary: `Prints "GATEWAY-ID KEY", the line of the ingest service's --auth-keys file that
registers this gateway's key. The key is a secret: send it to the ingest
service's host over a channel you trust, and keep it out of logs and tickets.`,
		Examples: []string{"outpost key show --config /etc/outpost/gateway.yaml --gateway-id gw-17"},
	},
	"fingerprint": {
		Name:     "outpost key fingerprint",
		Args:     "--config FILE [flags]",
		Summary:  `Prints "GATEWAY-ID FINGERPRINT": the key's fingerprint, as the gateway logs it at start.`,
		Examples: []string{"outpost key fingerprint --config /etc/outpost/gateway.yaml"},
	},
}

func cmdKey(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keyUsage)
		return cli.ErrUsageShown
	}
	if cli.IsHelp(args[0]) {
		_, err := fmt.Fprint(stdout, keyUsage)
		return err
	}
	c, ok := keyCmds[args[0]]
	if !ok {
		return cli.Usagef("outpost key: unknown command %q\n\n%s", args[0], keyUsage)
	}
	m := &Main{}
	flags := c.FlagSet()
	m.flags(flags)
	if err := cli.Parse(flags, args[1:], 0, stdout, stderr); err != nil {
		return err
	}
	if m.ConfigPath == "" {
		return cli.Usagef("%s: --config is required (see %s --help)", c.Name, c.Name)
	}
	cfg, err := config.LoadWith(m.ConfigPath, &config.LoadOptions{Overrides: m.Overrides})
	if err != nil {
		return cli.UsageError{Err: err}
	}
	file := cfg.AuthKeyPath()
	if file == "" {
		return cli.Usagef("%s: %s has no uplink.auth_key_file", c.Name, m.ConfigPath)
	}
	var k outpost.Key
	switch args[0] {
	case "create":
		if filepath.Dir(file) == filepath.Clean(cfg.DataDir) {
			// As run would: the data dir is made at the first start.
			if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
				return fmt.Errorf("%s: %w", c.Name, err)
			}
		}
		if k, err = uplink.CreateKey(file); errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %s exists already: outpost key show prints its key", c.Name, file)
		}
	default:
		k, _, err = uplink.LoadKey(file)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: no key yet in %s: the gateway creates it at its first start, or outpost key create now", c.Name, file)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	if args[0] == "show" {
		_, err = fmt.Fprintf(stdout, "%s %s\n", cfg.Gateway.ID, k.Hex())
		return err
	}
	if args[0] == "create" {
		fmt.Fprintf(stderr, "created %s\n", file)
	}
	_, err = fmt.Fprintf(stdout, "%s %s\n", cfg.Gateway.ID, k.Fingerprint())
	return err
}
