package main

// The broker login and TLS: --username, --password-file and the --tls-*
// files, as the gateway's uplink section gives them. The password never
// comes from the command line (other users see it there) and is never
// logged; neither is a URL's user info.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"github.com/outposthq/outpost/cmd/internal/cli"
)

// maxPasswordFile bounds the password file: a password is one line.
const maxPasswordFile = 4 << 10

// checkBroker checks the broker flags together; its errors are usage
// errors and never quote the broker URL.
func (m *Main) checkBroker() error {
	flag, raw, example := "--broker", m.Broker, "tcp://127.0.0.1:1883"
	if m.NATS != "" {
		// A comma-separated list names nodes of one cluster; the first
		// stands for all in the checks below, and ingest checks each.
		flag, example = "--nats", "nats://127.0.0.1:4222"
		raw, _, _ = strings.Cut(m.NATS, ",")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		// Not err: it quotes the URL, and with it any password.
		return cli.Usagef("%s is not scheme://host:port (e.g. %s)", flag, example)
	}
	if u.User != nil && (m.Username != "" || m.PasswordFile != "") {
		return cli.Usagef("%s holds credentials: give them with --username and --password-file only", flag)
	}
	if m.NATS != "" {
		if u.Scheme != "nats" && u.Scheme != "tls" {
			return cli.Usagef("--nats is nats://host:port or tls://host:port, not %s://", u.Scheme)
		}
		if err := m.checkStream(); err != nil {
			return err
		}
	}
	if m.PasswordFile != "" && m.Username == "" {
		return cli.Usagef("--password-file needs --username")
	}
	if (m.TLSCert == "") != (m.TLSKey == "") {
		return cli.Usagef("--tls-cert and --tls-key go together: give both for mutual TLS, or neither")
	}
	if m.TLSCA != "" || m.TLSCert != "" {
		switch u.Scheme {
		case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps", "wss":
		case "nats":
			// A NATS server says in its INFO whether it wants TLS.
		default:
			return cli.Usagef("--tls-* files need a TLS broker URL (ssl://host:8883 or wss://…), not %s://", u.Scheme)
		}
	}
	return nil
}

// checkStream checks the --stream flags: as ingest does, and that none
// was given as zero, which there means its default.
func (m *Main) checkStream() error {
	st := &m.Stream
	switch {
	case st.Name == "":
		return cli.Usagef("--stream is empty")
	case st.Replicas == 0:
		return cli.Usagef("--stream-replicas 0: want 1 to 5")
	case st.MaxAge == 0:
		return cli.Usagef("--stream-max-age 0: give how long the stream keeps a batch, or a negative value for ever")
	}
	if err := st.Validate(); err != nil {
		return cli.Usagef("%v", err)
	}
	return nil
}

// brokerLogin reads the password file and the TLS files, once, at start.
func (m *Main) brokerLogin() (password string, tc *tls.Config, err error) {
	if m.PasswordFile != "" {
		if password, err = readPassword(m.PasswordFile); err != nil {
			return "", nil, err
		}
	}
	if m.TLSCA != "" || m.TLSCert != "" {
		if tc, err = tlsConfig(m.TLSCA, m.TLSCert, m.TLSKey); err != nil {
			return "", nil, err
		}
	}
	return password, tc, nil
}

// readPassword reads the broker password from the file name: its content
// with one trailing newline removed. Its errors name the file, never
// what it holds.
func readPassword(name string) (string, error) {
	fail := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("password file %s: "+format, append([]any{name}, args...)...)
	}
	// Stat first: opening a FIFO would wait for a writer.
	fi, err := os.Stat(name)
	switch {
	case err != nil:
		return fail("%w", pathCause(err))
	case !fi.Mode().IsRegular():
		return fail("not a regular file")
	case fi.Size() > maxPasswordFile:
		return fail("larger than %d bytes; it should hold one line, the password", maxPasswordFile)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return fail("%w", pathCause(err))
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if pw == "" {
		return fail("empty")
	}
	return pw, nil
}

// tlsConfig builds the broker connection's TLS from PEM files: ca, the
// CAs to trust ("" means the system's roots), and cert and key, the
// client certificate for mutual TLS (both or neither). It is the
// gateway's uplink.TLSConfig again: the cloud binary links no edge
// package for twenty lines.
func tlsConfig(ca, cert, key string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificates in it", ca)
		}
		c.RootCAs = pool
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert, --tls-key: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// redactBroker is a broker URL fit for a log line: without its user info.
func redactBroker(broker string) string {
	var out []string
	for one := range strings.SplitSeq(broker, ",") {
		u, err := url.Parse(one)
		if err != nil {
			return "(a broker URL that does not parse)"
		}
		u.User = nil
		out = append(out, u.String())
	}
	return strings.Join(out, ",")
}

// pathCause is err without its *fs.PathError, whose path the message
// says already.
func pathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
