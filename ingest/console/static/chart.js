// The chart page: one or more series over a time range, drawn with uPlot
// (vendor/uplot). A narrow range shows the stored readings, each
// uncertain or bad one marked apart; a wide one the service's buckets
// (from its rollups where it keeps them): the mean as a line, min to max
// as a band. Loss records are shaded bands with their reason, alert
// episodes marks along the top. Dragging across the plot zooms in (a new
// URL, so Back zooms out). A range that ends now follows the live stream.
//
// #/chart?s=GATEWAY/SENSOR/METRIC[&s=…][&range=1h | &from=MS&to=MS]
import { AuthError, api, live, h, num, ms, when, duration, query, badge, seriesKey, throttle } from "./core.js";

const minute = 60e3, hour = 60 * minute, day = 24 * hour;
const ranges = [["15 min", 15 * minute], ["1 h", hour], ["6 h", 6 * hour], ["24 h", day], ["7 d", 7 * day], ["30 d", 30 * day]];
// Up to rawSpan the readings themselves are asked for, at most rawLimit
// of them; past either, buckets, at most about maxBuckets across.
const rawSpan = 6 * hour, rawLimit = 20000, maxBuckets = 1000;
const steps = [1, 5, 10, 30, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400]; // seconds
const maxSeries = 8, maxLive = 2;
const colors = ["#2563eb", "#d9480f", "#2b8a3e", "#862e9c", "#0b7285", "#c2255c", "#5c940d", "#364fc7"];
const uncertainColor = "#f59f00", badColor = "#e03131";

// uPlot is loaded when a chart is first drawn, not with every page.
let uplotLoaded = null;
function loadUPlot() {
  uplotLoaded ||= new Promise((resolve, reject) => {
    document.head.append(
      h("link", { rel: "stylesheet", href: "/console/vendor/uplot/uPlot.min.css" }),
      h("script", { src: "/console/vendor/uplot/uPlot.iife.min.js", onload: resolve,
        onerror: () => { uplotLoaded = null; reject(new Error("the chart library did not load")); } }));
  });
  return uplotLoaded;
}

function pickStep(span) {
  for (const s of steps) if (span / (s * 1000) <= maxBuckets) return s;
  return steps[steps.length - 1];
}

// parseKey reads gateway/sensor/metric, or null.
function parseKey(k) {
  const parts = String(k).split("/");
  const ok = parts.length === 3 && parts.every(p => /^[A-Za-z0-9_.-]{1,64}$/.test(p) && p !== "." && p !== "..");
  return ok ? { gateway: parts[0], sensor: parts[1], metric: parts[2], key: k } : null;
}

// breakGaps puts a null between two points further apart than gapAfter
// seconds, so that the line does not bridge a stretch without data.
function breakGaps(xs, cols, gapAfter) {
  const ox = [], oc = cols.map(() => []);
  for (let i = 0; i < xs.length; i++) {
    if (i > 0 && xs[i] - xs[i - 1] > gapAfter) {
      ox.push((xs[i] + xs[i - 1]) / 2);
      oc.forEach(c => c.push(null));
    }
    ox.push(xs[i]);
    oc.forEach((c, j) => c.push(cols[j][i]));
  }
  return [ox, ...oc];
}

function median(a) {
  if (!a.length) return 0;
  const s = a.slice().sort((x, y) => x - y);
  return s[s.length >> 1];
}

// fetchSeries loads s over [from, to) (ms): readings when the range is
// narrow and they fit, else buckets.
async function fetchSeries(s, from, to, signal) {
  const base = { gateway: s.gateway, sensor: s.sensor, metric: s.metric, from: Math.floor(from), to: Math.ceil(to) };
  s.raw = null;
  s.buckets = null;
  if (to - from <= rawSpan) {
    const b = await api("/api/v1/readings" + query({ ...base, limit: rawLimit }), signal);
    if (!b.truncated) {
      s.raw = b.points || [];
      if (s.raw.length) s.unit = s.raw[0].unit;
      return;
    }
  }
  s.step = pickStep(to - from);
  const b = await api("/api/v1/readings" + query({ ...base, step: s.step + "s", limit: maxBuckets * 2 }), signal);
  s.buckets = b.buckets || [];
  if (s.buckets.length) s.unit = s.buckets[0].unit;
}

// table is s as uPlot columns: x (s), then the series' columns, and
// their uPlot series options.
function table(s, color) {
  const label = s.key + (s.unit ? " (" + s.unit + ")" : "");
  const scale = s.unit || "value";
  const pointsOnly = (name, fill) => ({ label: s.key + " " + name, scale, stroke: fill, fill, width: 0,
    paths: () => null, points: { show: true, size: 7, stroke: fill, fill, width: 1 } });
  if (s.raw) {
    if (s.unsorted) { s.raw.sort((a, b) => a.ts_ns - b.ts_ns); s.unsorted = false; }
    const xs = [], main = [], unc = [], bad = [];
    s.counts = { uncertain: 0, bad: 0 };
    for (const p of s.raw) {
      xs.push(p.ts_ns / 1e9);
      const v = p.value === null ? null : Number(p.value);
      main.push(p.quality === "bad" ? null : v);
      unc.push(p.quality === "uncertain" ? v : null);
      bad.push(p.quality === "bad" ? v : null);
      if (p.quality === "uncertain") s.counts.uncertain++;
      if (p.quality === "bad") s.counts.bad++;
    }
    const dts = xs.slice(1).map((x, i) => x - xs[i]);
    const data = breakGaps(xs, [main, unc, bad], Math.max(5 * median(dts), 1));
    return { data, series: [
      { label, scale, stroke: color, width: 1.5, points: { show: xs.length < 200, size: 4 } },
      pointsOnly("uncertain", uncertainColor), pointsOnly("bad", badColor)] };
  }
  const xs = [], avg = [], lo = [], hi = [], bad = [];
  s.counts = { uncertain: 0, bad: 0 };
  for (const b of s.buckets || []) {
    xs.push(ms(b.ts) / 1000);
    avg.push(b.avg);
    lo.push(b.min);
    hi.push(b.max);
    bad.push(b.n > b.count ? b.avg : null); // a bucket holding bad readings
    s.counts.bad += b.n - b.count;
  }
  const data = breakGaps(xs, [avg, lo, hi, bad], s.step * 1.5);
  return { data, band: [1, 2], series: [
    { label: label + " mean", scale, stroke: color, width: 1.5, points: { show: false } },
    { label: s.key + " min", scale, stroke: color + "55", width: 0.5, points: { show: false } },
    { label: s.key + " max", scale, stroke: color + "55", width: 0.5, points: { show: false } },
    pointsOnly("with bad readings", badColor)] };
}

// episodes pairs alert transitions into episodes [start, end] (end 0: still
// on) by gateway and fingerprint.
function episodes(rows, active) {
  const byKey = new Map();
  const sorted = rows.slice().sort((a, b) => a.ts_ns - b.ts_ns);
  for (const a of sorted) {
    const k = a.gateway + "\u0000" + a.fingerprint;
    const cur = byKey.get(k);
    const on = a.state === "pending" || a.state === "firing" || a.state === "nodata";
    if (on) {
      if (cur && !cur.end) { cur.state = a.state; cur.last = a; continue; }
      const ep = { gateway: a.gateway, rule: a.rule, severity: a.severity, labels: a.labels || {}, message: a.message,
        state: a.state, start: a.started_at_ns / 1e6, end: 0, last: a };
      byKey.set(k, ep);
      (byKey.all ||= []).push(ep);
    } else if (cur && !cur.end) {
      cur.end = a.ts_ns / 1e6;
      cur.state = a.state;
      cur.last = a;
    } else {
      // Ended, its start before the window.
      (byKey.all ||= []).push({ gateway: a.gateway, rule: a.rule, severity: a.severity, labels: a.labels || {},
        message: a.message, state: a.state, start: a.started_at_ns / 1e6, end: a.ts_ns / 1e6, last: a });
    }
  }
  for (const a of active) {
    const k = a.gateway + "\u0000" + a.fingerprint;
    if (byKey.has(k)) continue;
    (byKey.all ||= []).push({ gateway: a.gateway, rule: a.rule, severity: a.severity, labels: a.labels || {},
      message: a.message, state: a.state, start: a.started_at_ns / 1e6, end: 0, last: a });
  }
  return byKey.all || [];
}

export async function chartPage(view, qs, { signal, fail }) {
  const params = new URLSearchParams(qs);
  const series = [];
  for (const k of params.getAll("s")) {
    const s = parseKey(k);
    if (s && !series.some(x => x.key === s.key) && series.length < maxSeries) series.push(s);
  }
  let from = Number(params.get("from")), to = Number(params.get("to"));
  let span = Number(params.get("range")) || hour;
  const fixed = Number.isFinite(from) && Number.isFinite(to) && from > 0 && to > from;
  if (!fixed) { to = Date.now(); from = to - span; } else span = to - from;
  document.title = "Outpost · " + (series.length ? series.map(s => s.key).join(", ") : "chart");

  const link = (o) => "#/chart" + query({ s: series.map(s => s.key), ...o });
  const rangeBar = h("div", { class: "bar ranges" }, ranges.map(([l, v]) =>
    h("a", { class: "button", href: link({ range: v }), "aria-current": !fixed && v === span ? "true" : null, text: l })),
  fixed ? h("span", { class: "muted", text: when(from) + " – " + when(to) + " (drag across the chart to zoom; Back to zoom out)" })
    : h("span", { class: "muted", text: "ending now, live" + (new Set(series.map(s => s.gateway)).size > maxLive ? " (the first " + maxLive + " gateways)" : "") }));
  const picker = h("input", { id: "add-series", list: "series-list", placeholder: "gateway/sensor/metric", size: 40 });
  const datalist = h("datalist", { id: "series-list" });
  const chosen = h("ul", { class: "chosen" }, series.map(s => h("li", null, s.key, " ",
    h("a", { href: "#/chart" + query({ s: series.filter(x => x !== s).map(x => x.key), ...(fixed ? { from, to } : { range: span }) }),
      "aria-label": "remove " + s.key, text: "✕" }))));
  const add = h("form", { class: "bar", onsubmit: ev => {
    ev.preventDefault();
    const s = parseKey(picker.value.trim());
    if (!s) { picker.setCustomValidity("gateway/sensor/metric"); picker.reportValidity(); return; }
    location.hash = "#/chart" + query({ s: [...series.map(x => x.key), s.key], ...(fixed ? { from, to } : { range: span }) });
  } }, h("label", null, "Add a series ", picker), datalist, h("button", { type: "submit", text: "Add" }));
  const plot = h("div", { id: "chart" });
  const notes = h("div", { id: "chart-notes" });
  const sec = h("section", { id: "chart-page" }, h("h2", null, "Chart"), chosen, add, rangeBar, plot, notes);
  view.append(sec);

  api("/api/v1/series" + query({ gateway: series[0]?.gateway, limit: 1000 }), signal).then(b => {
    datalist.replaceChildren(...(b.series || []).map(s => h("option", { value: seriesKey(s) })));
  }).catch(fail);
  if (!series.length) {
    plot.append(h("p", { class: "muted", text: "Pick a series above, or open one from a gateway's page." }));
    sec.dataset.ready = "true";
    return;
  }

  await Promise.all([loadUPlot(), ...series.map(s => fetchSeries(s, from, to, signal))]);
  const gateways = [...new Set(series.map(s => s.gateway))];
  let gaps = [], eps = [];
  async function loadMarks() {
    const gapLists = await Promise.all(series.map(s =>
      api("/api/v1/gaps" + query({ gateway: s.gateway, sensor: s.sensor, metric: s.metric, from: Math.floor(from), to: Math.ceil(to), limit: 1000 }), signal)));
    const seen = new Set();
    gaps = [];
    for (const g of gapLists.flatMap(b => b.gaps || [])) {
      const k = g.gateway + "/" + g.epoch + "/" + g.seq + "/" + g.idx;
      if (!seen.has(k)) { seen.add(k); gaps.push(g); }
    }
    const sensors = new Set(series.map(s => s.gateway + "/" + s.sensor));
    const alertLists = await Promise.all(gateways.map(async gw => {
      const [hist, act] = await Promise.all([
        api("/api/v1/alerts" + query({ gateway: gw, from: Math.floor(from), to: Math.ceil(to), limit: 5000 }), signal),
        api("/api/v1/alerts/active" + query({ gateway: gw, limit: 1000 }), signal).catch(e => {
          if (e instanceof AuthError) throw e;
          return { alerts: [] };
        }),
      ]);
      return episodes(hist.alerts || [], (act.alerts || []).filter(a => a.started_at_ns / 1e6 < to));
    }));
    eps = alertLists.flat().filter(e => !e.labels.sensor || sensors.has(e.gateway + "/" + e.labels.sensor));
  }
  await loadMarks();

  // Overlays: gap bands and alert marks, under the plot's canvas, placed
  // again at each draw.
  const under = { gaps: [], eps: [] };
  function place(u) {
    const w = u.over.clientWidth;
    const x = t => u.valToPos(t / 1000, "x");
    const put = (el, a, b) => {
      const l = Math.max(0, Math.min(w, x(a))), r = Math.max(0, Math.min(w, x(b)));
      el.hidden = r <= 0 || l >= w || !(r >= l);
      el.style.left = l + "px";
      el.style.width = Math.max(2, r - l) + "px";
    };
    under.gaps.forEach(({ el, g }) => put(el, ms(g.from_ts), ms(g.to_ts)));
    under.eps.forEach(({ el, e }) => put(el, e.start, e.end || Date.now()));
  }
  function overlays(u) {
    for (const o of [...under.gaps, ...under.eps]) o.el.remove();
    under.gaps = gaps.filter(g => g.from_ts && g.to_ts).map(g => {
      const el = h("div", { class: "gap", dataset: { from: g.from_ts, to: g.to_ts, reason: g.reason },
        title: g.reason + ": " + (g.count || "unknown") + " lost" }, h("span", { text: g.reason }));
      u.under.append(el);
      return { el, g };
    });
    under.eps = eps.map((e, i) => {
      // Each episode in its own lane along the top, four lanes deep.
      const el = h("div", { class: "episode sev-" + e.severity, dataset: { rule: e.rule, state: e.state },
        title: e.rule + " (" + e.severity + ")" });
      el.style.top = (i % 4) * 8 + "px";
      u.under.append(el);
      return { el, e };
    });
    place(u);
  }

  function build() {
    const tables = [], opts = [], bands = [];
    let col = 1;
    series.forEach((s, i) => {
      const t = table(s, colors[i % colors.length]);
      tables.push(t.data);
      if (t.band) bands.push({ series: [col + t.band[1], col + t.band[0]], fill: colors[i % colors.length] + "22" });
      opts.push(...t.series);
      col += t.series.length;
    });
    return { data: uPlot.join(tables), opts, bands };
  }

  const units = [...new Set(series.map(s => s.unit || "value"))];
  const { data, opts, bands } = build();
  const size = () => ({ width: Math.max(280, plot.clientWidth), height: Math.max(220, Math.min(420, window.innerHeight * 0.55)) });
  const u = new uPlot({
    ...size(),
    scales: { x: { time: true, min: from / 1000, max: to / 1000 }, ...Object.fromEntries(units.map(k => [k, { auto: true }])) },
    axes: [{}, ...units.map((k, i) => ({ scale: k, side: i % 2 ? 1 : 3, label: k === "value" ? "" : k, grid: { show: i === 0 } }))],
    series: [{ label: "time", value: (u, v) => v == null ? "–" : when(v * 1000) }, ...opts],
    bands,
    cursor: { drag: { x: true, y: false, setScale: false } },
    hooks: {
      draw: [place],
      setSelect: [u => {
        if (u.select.width < 5) return;
        const a = u.posToVal(u.select.left, "x") * 1000, b = u.posToVal(u.select.left + u.select.width, "x") * 1000;
        location.hash = link({ from: Math.floor(a), to: Math.ceil(b) });
      }],
    },
  }, data, plot);
  plot.uplot = u; // for the console's tests
  overlays(u);

  function renderNotes() {
    const now = Date.now();
    const q = series.map(s => {
      const mode = s.raw ? s.raw.length + " readings" : (s.buckets || []).length + " buckets of " + duration(s.step * 1000);
      return h("li", { dataset: { key: s.key, mode: s.raw ? "raw" : "buckets" } }, s.key + ": " + mode +
        (s.counts.uncertain ? ", " + s.counts.uncertain + " uncertain" : "") + (s.counts.bad ? ", " + s.counts.bad + " bad" : ""));
    });
    notes.replaceChildren(h("ul", { id: "shown" }, q),
      h("h3", null, "Data lost in view"),
      gaps.length ? h("ul", { id: "gap-list" }, gaps.map(g => h("li", { dataset: { reason: g.reason } },
        badge(g.reason, "gap"), " ", [g.sensor, g.metric].filter(Boolean).join("/") + ": " +
        (g.from_ts ? when(ms(g.from_ts)) + " – " + when(ms(g.to_ts)) : "time unknown") + ", " + (g.count || "unknown") + " readings")))
        : h("p", { class: "muted", text: "None." }),
      h("h3", null, "Alerts in view"),
      eps.length ? h("ul", { id: "episode-list" }, eps.map(e => h("li", { dataset: { rule: e.rule } },
        badge(e.severity || "–", "sev-" + e.severity), " ", e.gateway + " " + e.rule + ": " + when(e.start) + " – " +
        (e.end ? when(e.end) : "now (" + duration(now - e.start) + ")") + (e.message ? " · " + e.message : ""))))
        : h("p", { class: "muted", text: "None." }));
  }
  renderNotes();
  const onResize = throttle(() => u.setSize(size()), 200);
  window.addEventListener("resize", onResize);
  signal.addEventListener("abort", () => { window.removeEventListener("resize", onResize); u.destroy(); });
  sec.dataset.ready = "true";
  if (fixed) return;

  // Live: new readings are appended and the window slides; new gaps and
  // alert transitions fetch the marks again.
  const byKey = new Map(series.map(s => [s.key, s]));
  const redraw = throttle(() => {
    to = Date.now();
    from = to - span;
    for (const s of series) {
      if (s.raw) s.raw = s.raw.filter(p => p.ts_ns / 1e6 >= from);
      else if (s.buckets) s.buckets = s.buckets.filter(b => ms(b.ts) + s.step * 1000 >= from);
    }
    const b = build();
    u.batch(() => {
      u.setData(b.data, false);
      u.setScale("x", { min: from / 1000, max: to / 1000 });
    });
    renderNotes();
  }, 1000);
  const marks = throttle(() => loadMarks().then(() => { overlays(u); renderNotes(); }).catch(fail), 2000);
  // A stream per gateway, at most two: a browser keeps six connections
  // to a host, and the page's queries need the rest.
  for (const gw of gateways.slice(0, maxLive)) {
    let opened = false;
    live("/api/v1/events" + query({ gateway: gw }), {
      open: () => { if (opened) marks(); opened = true; },
      auth: () => fail(new AuthError()),
      points: ev => {
        let hit = false;
        for (const p of ev.points || []) {
          const s = byKey.get(seriesKey(p));
          if (!s) continue;
          hit = true;
          if (s.raw) {
            if (s.raw.length && p.ts_ns < s.raw[s.raw.length - 1].ts_ns) s.unsorted = true;
            s.raw.push(p);
            if (s.raw.length > 2 * rawLimit) s.raw.splice(0, s.raw.length - 2 * rawLimit); // bounded, newest kept
          }
          else {
            s.buckets.push({ ts: p.ts, n: 1, count: p.quality === "bad" ? 0 : 1, avg: p.value, min: p.value, max: p.value });
            if (s.buckets.length > 4 * maxBuckets) s.buckets.splice(0, s.buckets.length - 4 * maxBuckets);
          }
        }
        if (hit) redraw();
      },
      gap: marks,
      alert: marks,
    }, signal);
  }
}
