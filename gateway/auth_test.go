package gateway

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/internal/testenv"
	"github.com/outposthq/outpost/uplink"
)

// TestGatewaySignsWithItsKey: the first start creates the key file
// (0600), logs its fingerprint and never the key; every batch goes out
// signed with it and only signed acks delete. A second start reuses it.
func TestGatewaySignsWithItsKey(t *testing.T) {
	broker := testenv.MQTT(t)
	dir := t.TempDir()
	prefix := "gw-auth-test/" + filepath.Base(dir)
	src := strings.Replace(minimalConfig, `uplink: {broker: "tcp://127.0.0.1:1"}`,
		`uplink: {broker: "`+broker+`", topic_prefix: "`+prefix+`", auth_key_file: gw.key, ack_timeout: 1s}
batch: {interval: 50ms}`, 1)
	cfg, err := config.Parse(filepath.Join(dir, "gw.yaml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sensors[0].Interval = 10 * time.Millisecond
	var logs bytes.Buffer
	g, err := New(cfg, &Options{Logger: zerolog.New(zerolog.SyncWriter(&logs))})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "data", "gw.key"); cfg.AuthKeyPath() != want {
		t.Fatalf("key file %s, want %s: in the data dir", cfg.AuthKeyPath(), want)
	}
	key, perm, err := uplink.LoadKey(cfg.AuthKeyPath())
	if err != nil || perm != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, perm)
	}
	if !strings.Contains(logs.String(), key.Fingerprint()) || strings.Contains(logs.String(), key.Hex()[:16]) {
		t.Fatalf("start logs %s: want the fingerprint %s, not the key", logs.String(), key.Fingerprint())
	}

	// An ingest stand-in: it verifies each batch with the key, answers
	// the first delivery of each seq with an unsigned ack (refused), and
	// resends with a signed one.
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("gw-auth-test-" + filepath.Base(dir)))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	seen := map[uint64]bool{}
	errs := make(chan error, 100)
	tok := c.Subscribe(prefix+"/gw-new/batch", 1, func(c mqtt.Client, m mqtt.Message) {
		inner, _, err := outpost.VerifyBatch(m.Payload(), "gw-new", key)
		if err != nil {
			errs <- err
			return
		}
		b, err := outpost.DecodeBatch(inner)
		if err != nil {
			errs <- err
			return
		}
		a := outpost.Ack{Version: outpost.AckVersion, Epoch: b.Epoch, Seqs: []uint64{b.Seq}}
		p, _ := a.MarshalMsg(nil)
		if seen[b.Seq] {
			p = a.AppendSigned(nil, &key, "gw-new")
		}
		seen[b.Seq] = true
		c.Publish(prefix+"/gw-new/ack", 1, false, p)
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	g.StopSensors()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.WaitDrained(ctx); err != nil {
		t.Fatalf("%v: %+v", err, g.Stats().Uplink)
	}
	st := g.Stats().Uplink
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		t.Fatalf("a batch did not verify: %v", err)
	default:
	}
	if st.Acked == 0 || st.UnsignedAcks < st.Acked || st.Resent < st.Acked {
		t.Fatalf("uplink %+v: want every batch acked once signed, after an unsigned ack refused", st)
	}

	// The next start takes the same key.
	logs.Reset()
	g, err = New(cfg, &Options{Logger: zerolog.New(zerolog.SyncWriter(&logs))})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"fingerprint":"`+key.Fingerprint()+`"`) || strings.Contains(logs.String(), "auth key created") {
		t.Fatalf("second start: %s", logs.String())
	}
}

func TestKeyStartErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		file  func(dir string) string
		is    error
		inErr string
	}{
		{"no directory", func(dir string) string { return filepath.Join(dir, "nowhere", "gw.key") }, fs.ErrNotExist, "no such file"},
		{"world-readable", func(dir string) string {
			f := filepath.Join(dir, "gw.key")
			if err := os.WriteFile(f, []byte(outpost.NewKey().Hex()), 0o644); err != nil {
				t.Fatal(err)
			}
			return f
		}, nil, "other users may read or write it"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg, err := config.Parse(filepath.Join(dir, "gw.yaml"), []byte(minimalConfig))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Uplink.AuthKeyFile = c.file(dir)
			g, err := New(cfg, nil)
			var se *StartError
			if g != nil || !errors.As(err, &se) || se.Part != PartKey || c.is != nil && !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.inErr) {
				t.Fatalf("New = %v, want a StartError of the key saying %q", err, c.inErr)
			}
		})
	}
}

func TestCheckKeyFile(t *testing.T) {
	dir := writeCheckFiles(t, map[string]string{
		"gw.yaml":   strings.Replace(minimalConfig, `"tcp://127.0.0.1:1"}`, `"tcp://127.0.0.1:1", auth_key_file: ../bad.key}`, 1),
		"bad.key":   "0123456789abcdef\n",
		"good.yaml": strings.Replace(minimalConfig, `"tcp://127.0.0.1:1"}`, `"tcp://127.0.0.1:1", auth_key_file: new.key}`, 1),
	})
	if err := os.Chmod(filepath.Join(dir, "bad.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Check(filepath.Join(dir, "gw.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "gw.yaml:6:54: uplink.auth_key_file: outpost: key: 16 characters") ||
		strings.Contains(err.Error(), "0123456789") {
		t.Fatalf("Check = %v", err)
	}
	// A key file still to be created is fine, and Check creates none.
	if err := Check(filepath.Join(dir, "good.yaml"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Check created the key file: %v", err)
	}
}
