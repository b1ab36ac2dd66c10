package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outposthq/outpost/cmd/internal/cli"
	"github.com/outposthq/outpost/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseFlags(t *testing.T) {
	m := NewMain()
	m.Stderr = io.Discard
	if err := m.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if m.HTTP != "127.0.0.1:8080" || m.Broker != "tcp://127.0.0.1:1883" || m.DB != "sqlite:outpost-ingest.db" || m.Workers != 4 {
		t.Fatalf("defaults = %+v", m)
	}
	m = NewMain()
	m.Stderr = io.Discard
	if err := m.ParseFlags([]string{"--broker", "tcp://b:1", "--db", "x.db", "--http", "", "--group", "g", "--topic-prefix", "p/v1", "--workers", "2", "--log-level", "debug",
		"--retention", "90d", "--retention-1m", "36h"}); err != nil {
		t.Fatal(err)
	}
	if m.Broker != "tcp://b:1" || m.DB != "x.db" || m.HTTP != "" || m.Group != "g" || m.TopicPrefix != "p/v1" || m.Workers != 2 || m.Log.Level != "debug" ||
		m.Retention != 90*24*time.Hour || m.RetentionMinute != 36*time.Hour {
		t.Fatalf("parsed = %+v", m)
	}
	for _, args := range [][]string{{"--workers", "0"}, {"--log-level", "loud"}, {"--log-format", "xml"}, {"--nope"}, {"extra"}, {"--max-readings", "0"}, {"--max-readings", "2000000"}, {"--max-future-skew", "0s"}, {"--compact-every", "-1m"},
		{"--retention", "-1h"}, {"--retention", "90days"}, {"--retention", "d"}, {"--retention-1m", "1e9d"}} {
		m := NewMain()
		var out bytes.Buffer
		m.Stderr = &out
		err := m.ParseFlags(args)
		if cli.ExitCode(err) != cli.ExitUsage {
			t.Errorf("ParseFlags(%q) = %v, want a usage error", args, err)
		}
		if cli.Printed(err) != (out.Len() > 0) {
			t.Errorf("ParseFlags(%q): printed %q, but Printed says %v", args, out.String(), cli.Printed(err))
		}
	}
	m = NewMain()
	var help bytes.Buffer
	m.Stdout, m.Stderr = &help, io.Discard
	if err := m.ParseFlags([]string{"-h"}); !errors.Is(err, flag.ErrHelp) || !strings.Contains(help.String(), "usage: outpost-ingest") {
		t.Fatalf("-h: %v, printed %q", err, help.String())
	}
}

func TestRun(t *testing.T) {
	m := NewMain()
	m.Stderr = io.Discard
	if err := m.ParseFlags([]string{"--broker", testenv.MQTT(t), "--db", testenv.DB(t), "--http", "127.0.0.1:0", "--topic-prefix", "outpost-test/cmd/v1"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	}()
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://" + m.HTTPAddr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("healthz: %d %s %v", resp.StatusCode, body, err)
	}
}

func TestRunFails(t *testing.T) {
	for _, tc := range []struct{ name, broker, db, want string }{
		{"no broker", "tcp://127.0.0.1:1", "", "connect"},
		{"bad db", "tcp://127.0.0.1:1", "mysql://x", "open database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMain()
			m.Stderr = io.Discard
			db := tc.db
			if db == "" {
				db = testenv.DB(t)
			}
			if err := m.ParseFlags([]string{"--broker", tc.broker, "--db", db, "--http", "127.0.0.1:0"}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := m.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an error about %q", err, tc.want)
			}
			if err := m.Close(); err != nil {
				t.Fatalf("Close after a failed Run: %v", err)
			}
		})
	}
}

// --compact-every 0 turns the compactor off; the ingest option's own
// zero means its default.
func TestCompactEveryFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{nil, time.Minute},
		{[]string{"--compact-every", "5m"}, 5 * time.Minute},
		{[]string{"--compact-every", "0"}, -1},
	} {
		m := NewMain()
		if err := m.ParseFlags(tc.args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got := compactEvery(m.CompactEvery); got != tc.want {
			t.Errorf("%v: CompactEvery %v, want %v", tc.args, got, tc.want)
		}
	}
}
