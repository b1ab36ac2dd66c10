package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/internal/browser"
	"github.com/outposthq/outpost/internal/testenv"
)

// fleet is an ingest service fed by real gateways: gw-a running, gw-b
// started and stopped (offline now), and gw-c whose last status, offline,
// is two hours old.
type fleet struct {
	url   string
	token string
}

func newFleet(t *testing.T, token string) *fleet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	broker := testenv.MQTT(t)
	prefix := fmt.Sprintf("outpost-console/%d", time.Now().UnixNano())
	testenv.CleanupRetained(t, broker, prefix)
	store, err := stores.Open(ctx, testenv.DB(t), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	svc := ingest.New(store, &ingest.Options{Broker: broker, TopicPrefix: prefix, Group: "console-test", HTTPToken: token})
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := svc.Close(cctx); err != nil {
			t.Error(err)
		}
	})

	start := func(id string) *gateway.Gateway {
		cfg := &config.Config{
			Gateway: config.GatewayConfig{ID: id},
			DataDir: filepath.Join(t.TempDir(), "data"),
			Sensors: []config.Sensor{{ID: "dev1", Driver: config.SimDriver, Interval: time.Second, Metrics: []config.Metric{
				{Name: "temperature", Unit: "Cel", Signal: config.Signal{Kind: config.SignalConstant, Value: 21}}}}},
			Uplink: config.UplinkConfig{Broker: broker, TopicPrefix: prefix},
		}
		cfg.SetDefaults()
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		g, err := gateway.New(cfg, &gateway.Options{Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return g
	}
	a := start("gw-a")
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Close(cctx); err != nil {
			t.Error(err)
		}
	})
	b := start("gw-b")
	for !b.Stats().Uplink.Connected { // its online status sent, Close sends offline
		select {
		case <-ctx.Done():
			t.Fatal("gw-b did not connect")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// gw-c: an old gateway's retained status, as its broker kept it.
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("console-test-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	old := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339Nano)
	doc := `{"state":"offline","gateway":"gw-c","ts":"` + old + `","sensors":{"s1":{"labels":{}},"s2":{"labels":{}}}}`
	if tok := c.Publish(prefix+"/gw-c/status", 1, true, []byte(doc)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	c.Disconnect(250)

	// Until ingest has all three.
	for {
		states := map[string]string{}
		for gs, err := range store.Gateways(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			states[gs.Gateway] = gs.State
		}
		if states["gw-a"] == "online" && states["gw-b"] == "offline" && states["gw-c"] == "offline" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("gateway states in ingest: %v", states)
		case <-time.After(50 * time.Millisecond):
		}
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return &fleet{url: srv.URL, token: token}
}

// rowText is the text of a gateway's row, cells joined by " | ".
func rowText(t *testing.T, ctx context.Context, gw string) string {
	t.Helper()
	txt, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`Array.from(document.querySelectorAll('tr[data-gateway="`+gw+`"] td')).map(c => c.innerText).join(" | ")`))
	if err != nil {
		t.Fatal(err)
	}
	return txt
}

// The fleet page as a person sees it: every gateway with its state, when
// it was last heard of and its sensors; the one offline for longer than
// the threshold stands out; the filter and the sort work.
func TestFleetPage(t *testing.T) {
	ctx := browser.New(t)
	f := newFleet(t, "")
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	step("load the fleet page",
		chromedp.Navigate(f.url+"/"),
		chromedp.WaitVisible(`tr[data-gateway="gw-a"][data-state="online"]`),
		chromedp.WaitVisible(`tr[data-gateway="gw-c"]`))

	summary, err := chromedp.Run(ctx, chromedp.Text("#summary"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "3 gateways: 1 online, 2 offline, 1 for longer than the threshold"; summary != want {
		t.Errorf("summary %q, want %q", summary, want)
	}
	for gw, want := range map[string][]string{
		"gw-a": {"gw-a", "online", " s ago", "| 1"},
		"gw-b": {"gw-b", "offline", " s ago", "| 1"},
		"gw-c": {"gw-c", "offline", "2 h ago", "| 2"},
	} {
		row := rowText(t, ctx, gw)
		for _, w := range want {
			if !strings.Contains(row, w) {
				t.Errorf("row %s is %q: no %q", gw, row, w)
			}
		}
	}
	// Only gw-c, offline for two hours, is past the 1 h threshold.
	stale, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("tr.stale")).map(r => r.dataset.gateway)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) != 1 || stale[0] != "gw-c" {
		t.Errorf("rows standing out: %v, want [gw-c]", stale)
	}
	browser.Screenshot(t, ctx, "fleet.png")

	// Sorted by state, online first (ascending), then the filter.
	step("sort by last seen, newest last", chromedp.Click(`th[data-key="seen"] button`), chromedp.WaitVisible(`th[data-key="seen"][aria-sort="ascending"]`))
	order, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#gateways tbody tr")).map(r => r.dataset.gateway)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != 3 || order[0] != "gw-c" {
		t.Errorf("rows by last seen: %v, want gw-c (two hours ago) first", order)
	}
	step("filter", chromedp.SendKeys("#filter", "gw-b"), chromedp.WaitNotPresent(`tr[data-gateway="gw-a"]`))
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#gateways tbody tr").length`))
	if err != nil || rows != 1 {
		t.Errorf("rows after filtering for gw-b: %d (%v), want 1", rows, err)
	}

	// A phone's screen: the table scrolls inside its box, the page does
	// not grow wider than the screen.
	step("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(f.url+"/"),
		chromedp.WaitVisible(`tr[data-gateway="gw-a"]`))
	wide, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	if err != nil || wide {
		t.Errorf("the page is wider than a phone's screen (%v)", err)
	}
	browser.Screenshot(t, ctx, "fleet-phone.png")
}

// With an API token the page asks for it, then shows the fleet; the
// console's own files need none, and say where they may load from.
func TestFleetPageToken(t *testing.T) {
	ctx := browser.New(t)
	f := newFleet(t, "s3cret-token")
	resp, err := http.Get(f.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("GET /: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = chromedp.Do(sctx,
		chromedp.Navigate(f.url+"/"),
		chromedp.WaitVisible(`#login`),
		chromedp.SendKeys(`#token`, "s3cret-token"),
		chromedp.Click(`#login button[type="submit"]`),
		chromedp.WaitVisible(`tr[data-gateway="gw-a"][data-state="online"]`),
		chromedp.WaitNotVisible(`#login`))
	if err != nil {
		t.Fatal(err)
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
