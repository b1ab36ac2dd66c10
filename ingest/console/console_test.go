package console_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/internal/browser"
)

// page drives one browser tab at the fleet's console.
type page struct {
	t   *testing.T
	ctx context.Context
	f   *fleet
}

// do runs actions, failing the test with what it was doing.
func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// texts is the innerText of every element that selector matches.
func texts(p *page, selector string) []string {
	p.t.Helper()
	return eval[[]string](p, `Array.from(document.querySelectorAll(`+jsString(selector)+`)).map(e => e.innerText)`)
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// rowText is the text of a gateway's row on the fleet page, cells joined
// by " | ".
func rowText(p *page, gw string) string {
	p.t.Helper()
	return eval[string](p, `Array.from(document.querySelectorAll('#gateways tr[data-gateway="`+gw+`"] td')).map(c => c.innerText).join(" | ")`)
}

func mustContain(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s is %q: no %q", what, got, w)
		}
	}
}

// The console as a person sees it, each page in a real browser against
// an ingest that real gateways feed over the broker.
func TestConsole(t *testing.T) {
	ctx := browser.New(t)
	f := newFleet(t, "")
	p := &page{t: t, ctx: ctx, f: f}
	t.Run("fleet", func(t *testing.T) { p.t = t; testFleet(p) })
	t.Run("gateway", func(t *testing.T) { p.t = t; testGateway(p) })
	t.Run("chart", func(t *testing.T) { p.t = t; testChart(p) })
	t.Run("alerts", func(t *testing.T) { p.t = t; testAlerts(p) })
	t.Run("phone", func(t *testing.T) { p.t = t; testPhone(p) })
}

// The fleet page: every gateway with its state, when it was last heard
// of, its version, outbox, rate, alerts and failing sensors; the one
// offline for longer than the threshold stands out; filter and sort
// work; a gateway that comes up appears without a reload.
func testFleet(p *page) {
	t := p.t
	p.do("load the fleet page",
		chromedp.Navigate(p.f.url+"/"),
		chromedp.WaitVisible(`tr[data-gateway="gw-a"][data-state="online"]`),
		chromedp.WaitVisible(`tr[data-gateway="gw-c"]`))
	if got, want := eval[string](p, `document.getElementById("summary").innerText`), "4 gateways: 2 online, 2 offline, 1 for longer than the threshold"; !strings.HasPrefix(got, want) {
		t.Errorf("summary %q, want %q…", got, want)
	}
	// gw-a: its version; its outbox; its rate; too-warm and the stuck
	// sensor's health event firing; env failing; two sensors.
	mustContain(t, "row gw-a", rowText(p, "gw-a"), "gw-a | online | ", " s ago | outpost v9.9.9-test | ", " | 2 | 1 | 2")
	if title := eval[string](p, `document.querySelector('#gateways tr[data-gateway="gw-a"]').cells[7].title`); title != "env (stuck)" {
		t.Errorf("gw-a's failing sensors say %q, want env (stuck)", title)
	}
	mustContain(t, "row gw-b", rowText(p, "gw-b"), "gw-b | offline | ", " s ago", "| 1")
	mustContain(t, "row gw-c", rowText(p, "gw-c"), "gw-c | offline | 2 h ago | – |", "| 2")
	stale := eval[[]string](p, `Array.from(document.querySelectorAll("tr.stale")).map(r => r.dataset.gateway)`)
	if len(stale) != 1 || stale[0] != "gw-c" {
		t.Errorf("rows standing out: %v, want [gw-c]", stale)
	}
	browser.Screenshot(t, p.ctx, "fleet.png")

	p.do("sort by last seen", chromedp.Click(`th[data-key="seen"] button`), chromedp.WaitVisible(`th[data-key="seen"][aria-sort="ascending"]`))
	if order := eval[[]string](p, `Array.from(document.querySelectorAll("#gateways tbody tr")).map(r => r.dataset.gateway)`); len(order) != 4 || order[0] != "gw-c" {
		t.Errorf("rows by last seen: %v, want gw-c (two hours ago) first", order)
	}
	p.do("filter", chromedp.SendKeys("#filter", "gw-b"), chromedp.WaitNotPresent(`tr[data-gateway="gw-a"]`))
	if n := eval[int](p, `document.querySelectorAll("#gateways tbody tr").length`); n != 1 {
		t.Errorf("rows after filtering for gw-b: %d, want 1", n)
	}

	// Live: a gateway that starts now shows up, no reload. The page keeps
	// a mark that a reload would lose.
	p.do("clear the filter", chromedp.Evaluate[chromedp.Void](`(() => { const f = document.getElementById("filter"); f.value = ""; f.dispatchEvent(new Event("input")); window.keep = 1; })()`),
		chromedp.WaitVisible(`#gateways tr[data-gateway="gw-a"]`), chromedp.WaitVisible(`body[data-live="on"]`))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p.f.startGateway(ctx, "gw-new", nil)
	p.do("see gw-new appear", chromedp.WaitVisible(`tr[data-gateway="gw-new"][data-state="online"]`))
	if !eval[bool](p, `window.keep === 1`) {
		t.Error("the page reloaded to show gw-new")
	}

	// Leaving the page closes its live stream, also when the browser
	// keeps the page in its back-forward cache: the seventh visit would
	// otherwise wait for one of the browser's six connections to the host.
	for i := range 8 {
		p.do(fmt.Sprintf("visit %d", i+1), chromedp.Navigate("about:blank"), chromedp.Navigate(p.f.url+"/"),
			chromedp.WaitVisible(`body[data-live="on"]`), chromedp.WaitVisible(`tr[data-gateway="gw-a"]`))
	}
}

// The gateway page: its sensors and series with unit, latest value and
// quality and a sparkline; the failing sensor marked; its alert history;
// and, for gw-lossy, its loss records.
func testGateway(p *page) {
	t := p.t
	p.do("open gw-a from the fleet", chromedp.Navigate(p.f.url+"/"), chromedp.Click(`a[href="#/gateway/gw-a"]`),
		chromedp.WaitVisible(`#series tr[data-key="gw-a/env/temperature"][data-quality]`),
		chromedp.WaitVisible(`#series tr[data-key="gw-a/air/humidity"][data-quality]`),
		chromedp.WaitVisible(`#alert-history tr[data-rule="too-warm"][data-state="firing"]`),
		chromedp.WaitVisible(chromedp.CSS(`#gateway[data-sparklines="done"]`)))
	temp := eval[string](p, `Array.from(document.querySelectorAll('#series tr[data-key="gw-a/env/temperature"] td')).map(c => c.innerText).join(" | ")`)
	mustContain(t, "temperature row", temp, "env | temperature | Cel | 21 | ", " s ago")
	facts := strings.Join(texts(p, "#gateway .facts dd"), " | ")
	mustContain(t, "gw-a's facts", facts, "outpost v9.9.9-test | ", " batches, ", "2 firing, 0 pending | env")
	if !eval[bool](p, `document.querySelector('#series tr[data-key="gw-a/env/temperature"]').classList.contains("failing")`) {
		t.Error("env, stuck, is not marked failing")
	}
	// Each row's quality is shown as the reading has it.
	for _, r := range eval[[][]string](p, `Array.from(document.querySelectorAll("#series tbody tr")).map(r => [r.dataset.quality, r.cells[5].innerText])`) {
		if r[0] == "" || r[0] != r[1] {
			t.Errorf("a series row's quality %q shows %q", r[0], r[1])
		}
	}
	hum := eval[string](p, `Array.from(document.querySelectorAll('#series tr[data-key="gw-a/air/humidity"] td')).map(c => c.innerText).join(" | ")`)
	mustContain(t, "humidity row", hum, "air | humidity | %RH | ", "| good |")
	if n := eval[int](p, `document.querySelector('#series tr[data-key="gw-a/air/humidity"] svg.spark polyline').points.numberOfItems`); n < 2 {
		t.Errorf("the humidity sparkline has %d points", n)
	}
	hist := texts(p, `#alert-history tr[data-rule="too-warm"]`)
	mustContain(t, "alert history", strings.Join(hist, "\n"), "firing", "critical", "env at 21 Cel", "room=cold")
	browser.Screenshot(t, p.ctx, "gateway.png")

	p.do("open gw-lossy", chromedp.Navigate(p.f.url+"/#/gateway/gw-lossy"),
		chromedp.WaitVisible(`#gaps tbody tr[data-reason]`))
	gaps := texts(p, `#gaps tbody tr[data-reason]`)
	mustContain(t, "gap rows", strings.Join(gaps, "\n"), "env / temperature")
	reasons := eval[[]string](p, `Array.from(document.querySelectorAll("#gaps tbody tr")).map(r => r.dataset.reason)`)
	for _, r := range reasons {
		if r == "" {
			t.Errorf("a gap row without its reason: %v", gaps)
		}
	}
	browser.Screenshot(t, p.ctx, "gateway-gaps.png")
}

// The chart: gw-lossy's temperature with its gaps as shaded bands where
// the loss records say; gw-a's two series on one chart with their units,
// the uncertain readings counted apart and too-warm's episode marked;
// a drag zooms in; a wide range is served as buckets; a range that ends
// now grows as readings are committed.
func testChart(p *page) {
	t := p.t
	p.do("chart gw-lossy", chromedp.Navigate(p.f.url+"/#/chart?s=gw-lossy/env/temperature&range=900000"),
		chromedp.WaitVisible(chromedp.CSS(`#chart-page[data-ready]`)), chromedp.WaitVisible(`#chart .gap`))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var gaps []ingest.Gap
	for g, err := range p.f.store.Gaps(ctx, ingest.GapQuery{Gateway: "gw-lossy", To: time.Now().Add(time.Hour).UnixNano(), Limit: 1000}) {
		if err != nil {
			t.Fatal(err)
		}
		if g.From != 0 && g.To != 0 {
			gaps = append(gaps, g)
		}
	}
	if len(gaps) == 0 {
		t.Fatal("no dated gap in the store")
	}
	checkBands(p, gaps, time.Time{}, time.Time{})
	// Around the first gap, where its band is wide.
	from, to := time.Unix(0, gaps[0].From).Add(-5*time.Second), time.Unix(0, gaps[0].To).Add(5*time.Second)
	p.do("chart around the gap", chromedp.Navigate(fmt.Sprintf("%s/#/chart?s=gw-lossy/env/temperature&from=%d&to=%d", p.f.url, from.UnixMilli(), to.UnixMilli())),
		chromedp.WaitVisible(chromedp.CSS(`#chart-page[data-ready]`)), chromedp.WaitVisible(`#chart .gap`))
	if w := eval[float64](p, `document.querySelector("#chart .gap").offsetWidth`); w < 20 {
		t.Errorf("the gap's band is %.0f px wide around it", w)
	}
	checkBands(p, gaps, from, to)
	browser.Screenshot(t, p.ctx, "chart-gaps.png")

	p.do("chart gw-a's two series", chromedp.Navigate(p.f.url+"/#/chart?s=gw-a/env/temperature&s=gw-a/air/humidity&range=900000"),
		chromedp.WaitVisible(chromedp.CSS(`#chart-page[data-ready]`)),
		chromedp.WaitVisible(`#chart .episode[data-rule="too-warm"]`))
	shown := strings.Join(texts(p, "#shown li"), "\n")
	mustContain(t, "series shown", shown, "gw-a/env/temperature: ", " readings", " uncertain", "gw-a/air/humidity: ")
	axes := eval[[]string](p, `document.getElementById("chart").uplot.axes.filter(a => a.scale !== "x").map(a => a.scale)`)
	if strings.Join(axes, ",") != "Cel,%RH" {
		t.Errorf("axes %v, want Cel and %%RH", axes)
	}
	if n := eval[int](p, `document.getElementById("chart").uplot.data[0].length`); n < 10 {
		t.Errorf("%d points on the chart", n)
	}
	mustContain(t, "episodes", strings.Join(texts(p, "#episode-list li"), "\n"), "critical", "gw-a too-warm", "now")
	browser.Screenshot(t, p.ctx, "chart.png")

	// Live: the window ends now, and readings committed after the page
	// loaded are drawn without a reload.
	p.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.keep = document.getElementById("chart").uplot.data[0][document.getElementById("chart").uplot.data[0].length - 1]`))
	p.do("see new readings", chromedp.Poll[chromedp.Void](`(() => { const d = document.getElementById("chart").uplot.data[0]; return d[d.length - 1] > window.keep; })()`, chromedp.WithPollingTimeout(30*time.Second)))

	// A drag across the plot's last twentieth, where gw-a's readings are,
	// with the mouse, zooms to them.
	r := eval[[]float64](p, `(() => { const r = document.querySelector("#chart .u-over").getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()`)
	x0, x1, y := r[0]+r[2]*0.95, r[0]+r[2]*0.999, r[1]+r[3]/2
	drag := []chromedp.Action[chromedp.Void]{chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x0, y),
		chromedp.MouseEvent(input.DispatchMouseEventTypeMousePressed, x0, y, chromedp.ButtonLeft, chromedp.ClickCount(1))}
	for i := 1; i <= 10; i++ {
		drag = append(drag, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x0+(x1-x0)*float64(i)/10, y, chromedp.ButtonLeft))
	}
	drag = append(drag, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseReleased, x1, y, chromedp.ButtonLeft, chromedp.ClickCount(1)))
	p.do("zoom", drag...)
	hash := eval[string](p, `location.hash`)
	mustContain(t, "zoomed URL", hash, "from=", "to=")
	p.do("zoomed", chromedp.Poll[chromedp.Void](`(() => {
		const u = document.getElementById("chart")?.uplot, q = new URLSearchParams(location.hash.split("?")[1]);
		return u && document.querySelector("#chart-page[data-ready]") && Math.abs(u.scales.x.min * 1000 - Number(q.get("from"))) < 1000;
	})()`), chromedp.WaitVisible(`#shown li[data-mode="raw"]`))
	mustContain(t, "zoomed series", strings.Join(texts(p, "#shown li"), "\n"), "gw-a/env/temperature: ", " uncertain")
	if n := eval[int](p, `document.getElementById("chart").uplot.data[0].length`); n < 10 {
		t.Errorf("%d points on the zoomed chart", n)
	}
	browser.Screenshot(t, p.ctx, "chart-zoomed.png")

	p.do("a month", chromedp.Navigate(p.f.url+"/#/chart?s=gw-a/air/humidity&range=2592000000"),
		chromedp.WaitVisible(`#shown li[data-mode="buckets"]`))
	mustContain(t, "a month's series", strings.Join(texts(p, "#shown li"), ""), "buckets of 1 h")
}

// checkBands checks the chart's gap bands against the dated loss records
// of all that overlap [from, to) (all of them without from), in order:
// one band each, with its record's time and reason,
// spanning the plot where the record's times fall on the x axis.
func checkBands(p *page, all []ingest.Gap, from, to time.Time) {
	t := p.t
	t.Helper()
	var gaps []ingest.Gap // those that overlap the chart's window, if given
	for _, g := range all {
		if from.IsZero() || g.From < to.UnixNano() && g.To >= from.UnixNano() {
			gaps = append(gaps, g)
		}
	}
	// Each band spans the plot where its loss record's times fall.
	type band struct {
		From, To, Reason    string
		Left, Width, X0, X1 float64
		Hidden              bool
	}
	bands := eval[[]band](p, `(() => {
		const u = document.getElementById("chart").uplot;
		return Array.from(document.querySelectorAll("#chart .gap")).map(e => ({
			From: e.dataset.from, To: e.dataset.to, Reason: e.dataset.reason, Hidden: e.hidden,
			Left: e.offsetLeft, Width: e.offsetWidth,
			X0: u.valToPos(Date.parse(e.dataset.from) / 1000, "x"), X1: u.valToPos(Date.parse(e.dataset.to) / 1000, "x") }));
	})()`)
	if len(bands) != len(gaps) {
		t.Errorf("%d gap bands, the store has %d dated gaps", len(bands), len(gaps))
	}
	for i, b := range bands {
		if i < len(gaps) {
			if want := time.Unix(0, gaps[i].From).UTC().Format(time.RFC3339Nano); b.From != want || b.Reason != gaps[i].Reason {
				t.Errorf("band %d from %s (%s), the loss record from %s (%s)", i, b.From, b.Reason, want, gaps[i].Reason)
			}
		}
		if b.Hidden || math.Abs(b.Left-b.X0) > 1.5 || b.Width < math.Max(2, b.X1-b.X0)-1.5 {
			t.Errorf("band %+v is not where its times are", b)
		}
	}
	if got := texts(p, "#gap-list li"); len(got) != len(gaps) {
		t.Errorf("gap list %q, want %d", got, len(gaps))
	}
}

// The alerts page: too-warm firing, with its severity, since, value and
// annotation; the history with a filter; an alert raised while the page
// is open appears without a reload.
func testAlerts(p *page) {
	t := p.t
	p.do("alerts page", chromedp.Navigate(p.f.url+"/#/alerts"),
		chromedp.WaitVisible(chromedp.CSS(`#alerts[data-ready]`)),
		chromedp.WaitVisible(`#active tr[data-gateway="gw-a"][data-rule="too-warm"]`))
	row := strings.Join(texts(p, `#active tr[data-gateway="gw-a"][data-rule="too-warm"] td`), " | ")
	mustContain(t, "too-warm", row, "gw-a | too-warm | firing | critical | ", " ago | 21 | env at 21 Cel", "summary: cold room above 20 Cel", "room=cold")
	// The stuck sensor's health event is on too.
	if n := eval[int](p, `document.querySelectorAll('#active tr[data-gateway="gw-a"]').length`); n < 2 {
		t.Errorf("%d active alerts of gw-a, want too-warm and env's health event", n)
	}
	if n := eval[int](p, `document.querySelectorAll('#history tr[data-rule="too-warm"][data-state="firing"]').length`); n < 1 {
		t.Error("too-warm's firing is not in the history")
	}
	browser.Screenshot(t, p.ctx, "alerts.png")

	p.do("filter the history", chromedp.SetValue(`#filters input[name="rule"]`, "too-warm"), chromedp.Click(`#filters button`),
		chromedp.WaitVisible(chromedp.CSS(`#alerts[data-ready]`)))
	if rules := eval[[]string](p, `Array.from(document.querySelectorAll("#history tbody tr")).map(r => r.dataset.rule)`); len(rules) == 0 {
		t.Error("no history for too-warm")
	} else {
		for _, r := range rules {
			if r != "too-warm" {
				t.Errorf("history filtered for too-warm shows %s", r)
			}
		}
	}

	// Live: another gateway's rule fires while the page is open.
	p.do("back to all", chromedp.Navigate(p.f.url+"/#/alerts"), chromedp.WaitVisible(chromedp.CSS(`#alerts[data-ready]`)),
		chromedp.WaitVisible(`body[data-live="on"]`), chromedp.Evaluate[chromedp.Void](`window.keep = 2`))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p.f.startGateway(ctx, "gw-hot", func(c *config.Config) {
		c.Sensors[0].Metrics[0].Signal = config.Signal{Kind: config.SignalConstant, Value: 30}
		c.Rules = config.RulesConfig{Files: []string{p.f.rules}}
	})
	p.do("see gw-hot's alert", chromedp.WaitVisible(`#active tr[data-gateway="gw-hot"][data-rule="too-warm"]`),
		chromedp.WaitVisible(`#history tr[data-gateway="gw-hot"]`))
	if !eval[bool](p, `window.keep === 2`) {
		t.Error("the page reloaded to show gw-hot's alert")
	}
}

// Each page on a phone's screen: tables scroll inside their box, the
// page is no wider than the screen.
func testPhone(p *page) {
	p.do("phone", chromedp.EmulateViewport(390, 844))
	for _, pg := range []struct{ name, hash, ready string }{
		{"fleet", "#/", `tr[data-gateway="gw-a"]`},
		{"gateway", "#/gateway/gw-a", `#series tr[data-key="gw-a/air/humidity"][data-quality]`},
		{"chart", "#/chart?s=gw-a/air/humidity&range=900000", `#chart-page[data-ready]`},
		{"alerts", "#/alerts", `#alerts[data-ready]`},
	} {
		p.do(pg.name, chromedp.Navigate(p.f.url+"/"+pg.hash), chromedp.WaitVisible(chromedp.CSS(pg.ready)))
		if eval[bool](p, `document.documentElement.scrollWidth > window.innerWidth`) {
			p.t.Errorf("the %s page is wider than a phone's screen", pg.name)
		}
		browser.Screenshot(p.t, p.ctx, pg.name+"-phone.png")
	}
}

// With an API token the console asks for it, then shows the fleet; its
// own files need none, and say where they may load from.
func TestConsoleToken(t *testing.T) {
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
	p := &page{t: t, ctx: ctx, f: f}
	p.do("log in",
		chromedp.Navigate(f.url+"/#/alerts"),
		chromedp.WaitVisible(`#login`),
		chromedp.SendKeys(`#token`, "s3cret-token"),
		chromedp.Click(`#login button[type="submit"]`),
		chromedp.WaitVisible(`#active tr[data-rule="too-warm"]`),
		chromedp.WaitNotVisible(`#login`),
		chromedp.WaitVisible(`body[data-live="on"]`))
	p.do("the fleet, token kept", chromedp.Navigate(f.url+"/"), chromedp.WaitVisible(`tr[data-gateway="gw-a"][data-state="online"]`))
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
