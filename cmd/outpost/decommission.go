package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/outposthq/outpost/cmd/internal/cli"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/uplink"
)

var decommissionCmd = cli.Command{
	Name: "outpost decommission",
	Args: "--gateway-id ID --broker URL [flags] | --config FILE [flags]",
	Summary: `Clears the retained topics a gateway leaves on the broker, so that dashboards
stop showing a gateway that is gone: its status, its live/… and alert/…
topics, and anything else retained under PREFIX/ID/. It finds them by
subscribing to PREFIX/ID/# for the settle window, refuses while the gateway
appears online (its status says online, or it publishes) unless --force,
publishes an empty retained message to each, checks that none is left, and
prints each topic it cleared.

With --config it takes the broker, the prefix, the login and the TLS files
from the gateway's config (uplink section), as run would; the flags given
override them. Under deploy/mosquitto's ACL, log in as the gateway itself.
The gateway's outbox and data dir are left alone.`,
	Examples: []string{
		"outpost decommission --config /etc/outpost/gateway.yaml",
		"outpost decommission --gateway-id gw-17 --broker ssl://broker.example.com:8883 --username gw-17 --password-file gw-17.password",
		"outpost decommission --gateway-id gw-17 --broker tcp://127.0.0.1:1883 --dry-run",
	},
}

// decommissionTimeout bounds the whole command.
const decommissionTimeout = 2 * time.Minute

func cmdDecommission(args []string, stdout, stderr io.Writer) error {
	var (
		configPath, passwordFile string
		tlsFiles                 uplink.TLSFiles
		o                        uplink.DecommissionOptions
	)
	fs := decommissionCmd.FlagSet()
	fs.StringVar(&configPath, "config", "", "the gateway's config `file`: broker, prefix, login and TLS from its uplink section")
	fs.StringVar(&o.Gateway, "gateway-id", "", "gateway `id` (required without --config; overrides gateway.id)")
	fs.StringVar(&o.Broker, "broker", "", "MQTT broker `URL` (required without --config; overrides uplink.broker)")
	fs.StringVar(&o.TopicPrefix, "prefix", "", "topic `prefix` (default outpost/v1, or uplink.topic_prefix)")
	fs.StringVar(&o.Username, "username", "", "broker `username`")
	fs.StringVar(&passwordFile, "password-file", "", "`file` holding the broker password (one trailing newline removed); never shown")
	fs.StringVar(&tlsFiles.CAFile, "tls-ca", "", "PEM `file` of the CAs to trust for an ssl:// broker")
	fs.StringVar(&tlsFiles.CertFile, "tls-cert", "", "PEM client certificate `file` for mutual TLS (with --tls-key)")
	fs.StringVar(&tlsFiles.KeyFile, "tls-key", "", "PEM client key `file` for mutual TLS (with --tls-cert)")
	fs.StringVar(&tlsFiles.ServerName, "tls-server-name", "", "`name` to check in the broker's certificate (default: the URL's host)")
	fs.DurationVar(&o.Settle, "settle", uplink.DefaultSettle, "how long to wait for more retained messages after the last one")
	fs.IntVar(&o.MaxTopics, "max-topics", uplink.DefaultMaxTopics, "most retained topics to clear; with more, nothing is cleared")
	fs.BoolVar(&o.Force, "force", false, "clear even when the gateway appears online")
	fs.BoolVar(&o.DryRun, "dry-run", false, "print what would be cleared and clear nothing")
	if err := cli.Parse(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := decommissionOptions(&o, configPath, passwordFile, tlsFiles, set); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, decommissionTimeout)
	defer cancel()
	res, err := uplink.Decommission(ctx, &o)
	base := o.TopicPrefix + "/" + o.Gateway + "/"
	if o.TopicPrefix == "" {
		base = "outpost/v1/" + o.Gateway + "/"
	}
	switch {
	case errors.Is(err, uplink.ErrOnline):
		why := "its status says online"
		if res.Status != "online" {
			why = fmt.Sprintf("it published %d messages while we listened", res.Publishing)
		}
		return fmt.Errorf("outpost decommission: gateway %s still appears online (%s): stop it first, or pass --force; nothing cleared", o.Gateway, why)
	case err != nil:
		return fmt.Errorf("outpost decommission: %w", err)
	}
	verb := "cleared"
	if o.DryRun {
		verb = "would clear"
	}
	for _, t := range res.Topics {
		fmt.Fprintf(stdout, "%s %s\n", verb, t)
	}
	status := res.Status
	if status == "" {
		status = "none"
	}
	_, err = fmt.Fprintf(stdout, "gateway %s: %d retained topics under %s %s (status was %s)\n", o.Gateway, len(res.Topics), base, verb, status)
	return err
}

// decommissionOptions fills o from the config file, if any, then from
// the flags given (set), and checks what is required.
func decommissionOptions(o *uplink.DecommissionOptions, configPath, passwordFile string, tlsFiles uplink.TLSFiles, set map[string]bool) error {
	if configPath != "" {
		cfg, err := config.LoadWith(configPath, &config.LoadOptions{Overrides: config.Overrides{GatewayID: o.Gateway, Broker: o.Broker}})
		if err != nil {
			return cli.UsageError{Err: err}
		}
		u := &cfg.Uplink
		o.Gateway, o.Broker = cfg.Gateway.ID, u.Broker
		if !set["prefix"] {
			o.TopicPrefix = u.TopicPrefix
		}
		if !set["username"] {
			o.Username = u.Username
		}
		if !set["password-file"] {
			if o.Password, err = u.Password(); err != nil {
				return fmt.Errorf("outpost decommission: %w", err)
			}
		}
		if !set["tls-ca"] && !set["tls-cert"] && !set["tls-key"] && !set["tls-server-name"] {
			tlsFiles = uplink.TLSFiles{CAFile: u.TLS.CAFile, CertFile: u.TLS.CertFile, KeyFile: u.TLS.KeyFile,
				ServerName: u.TLS.ServerName, InsecureSkipVerify: u.TLS.InsecureSkipVerify}
		}
	}
	switch {
	case o.Gateway == "":
		return cli.Usagef("outpost decommission: --gateway-id (or --config) is required (see outpost decommission --help)")
	case o.Broker == "":
		return cli.Usagef("outpost decommission: --broker (or --config) is required (see outpost decommission --help)")
	case (tlsFiles.CertFile == "") != (tlsFiles.KeyFile == ""):
		return cli.Usagef("outpost decommission: --tls-cert and --tls-key go together")
	case o.Settle <= 0 || o.Settle > time.Minute:
		return cli.Usagef("outpost decommission: --settle must be within (0, 1m], got %v", o.Settle)
	case o.MaxTopics < 1 || o.MaxTopics > 1000000:
		return cli.Usagef("outpost decommission: --max-topics must be within [1, 1000000], got %d", o.MaxTopics)
	case passwordFile != "" && o.Username == "":
		return cli.Usagef("outpost decommission: --password-file needs --username")
	}
	if u, err := url.Parse(o.Broker); err != nil || u.Scheme == "" || u.Host == "" {
		// Not err: it quotes the URL, and with it any password.
		return cli.Usagef("outpost decommission: --broker is not scheme://host:port (e.g. tcp://127.0.0.1:1883)")
	}
	if passwordFile != "" {
		var err error
		if o.Password, err = (&config.UplinkConfig{PasswordFile: passwordFile}).Password(); err != nil {
			return fmt.Errorf("outpost decommission: %w", err)
		}
	}
	if tlsFiles != (uplink.TLSFiles{}) {
		tc, err := uplink.TLSConfig(tlsFiles)
		if err != nil {
			return fmt.Errorf("outpost decommission: %w", err)
		}
		o.TLS = tc
	}
	return nil
}
