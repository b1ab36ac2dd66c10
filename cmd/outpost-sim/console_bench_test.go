package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/outposthq/outpost/internal/browser"
)

// BenchmarkConsoleFleet measures the web console's fleet page on the
// fleet simulator's fleet: 1000 gateways (OUTPOST_BENCH_GATEWAYS to
// change it) of one sim sensor each, their embedded ingest serving the
// console. Each iteration loads the page in headless Chromium and
// reports, as ms/load, the time from the navigation's start to the last
// gateway's row drawn, as the page's own clock (performance.now) says.
//
//	go test -run '^$' -bench ConsoleFleet -benchtime 10x ./cmd/outpost-sim/
func BenchmarkConsoleFleet(b *testing.B) {
	n := 1000
	if v := os.Getenv("OUTPOST_BENCH_GATEWAYS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("OUTPOST_BENCH_GATEWAYS=%q", v)
		}
	}
	tab := browser.New(b)
	checkFiles(n, io.Discard, b.Output())
	s := &Sim{out: io.Discard}
	args := []string{"--embedded", "--gateways", strconv.Itoa(n), "--sensors", "1", "--interval", "5s",
		"--ramp", "10s", "--http", "127.0.0.1:0", "--log-level", "error"}
	if err := s.ParseFlags(args, b.Output(), b.Output()); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Run(ctx)
		done <- err
	}()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	})

	// Until ingest knows every gateway online.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if online, err := onlineGateways(s.HTTPAddr()); err == nil && online == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d gateways not all online in ingest after 3 min", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	url := "http://" + s.HTTPAddr() + "/"
	var total float64
	b.ResetTimer()
	for b.Loop() {
		tctx, tcancel := context.WithTimeout(tab, time.Minute)
		err := chromedp.Do(tctx, chromedp.Navigate("about:blank"), chromedp.Navigate(url))
		var ms float64
		if err == nil {
			ms, err = chromedp.Run(tctx, chromedp.Poll[float64](
				fmt.Sprintf(`document.querySelectorAll("#gateways tbody tr").length === %d && performance.now()`, n),
				chromedp.WithPollingTimeout(time.Minute)))
		}
		tcancel()
		if err != nil {
			b.Fatal(err)
		}
		total += ms
	}
	b.ReportMetric(total/float64(b.N), "ms/load")
	b.ReportMetric(0, "ns/op")
	browser.Screenshot(b, tab, fmt.Sprintf("fleet-%d.png", n))
}

// onlineGateways counts the gateways that ingest at addr has online.
func onlineGateways(addr string) (int, error) {
	if addr == "" {
		return 0, fmt.Errorf("not listening yet")
	}
	resp, err := http.Get("http://" + addr + "/api/v1/gateways")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Gateways []struct{ State string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	n := 0
	for _, g := range body.Gateways {
		if g.State == "online" {
			n++
		}
	}
	return n, nil
}
