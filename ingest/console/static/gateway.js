// The gateway page: what its status says, its sensors and series (unit,
// latest value and quality, the last hour as a sparkline), its alert
// history and its loss records, kept current by the live stream of that
// gateway.
import { AuthError, api, live, h, ago, duration, num, bytes, ms, when, query, badge, seriesKey, chartLink, throttle } from "./core.js";

// Sparklines are drawn for this many series at most: each costs a query.
const maxSparklines = 100;
// A sparkline's bucket sizes, ms.
const sparkSteps = [1e3, 5e3, 10e3, 30e3, 60e3];
const hour = 3600e3;

const ranges = [["24 h", 24 * hour], ["7 days", 7 * 24 * hour], ["30 days", 30 * 24 * hour]];

export function sparkline(values) {
  const w = 120, hgt = 28;
  const svg = h("svg:svg", { class: "spark", width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}`, role: "img" });
  const ys = values.filter(v => Number.isFinite(v));
  if (ys.length < 2) return svg;
  const lo = Math.min(...ys), hi = Math.max(...ys);
  const span = hi - lo || 1;
  const pts = [];
  values.forEach((v, i) => {
    if (!Number.isFinite(v)) return;
    const x = (i / (values.length - 1)) * (w - 2) + 1;
    const y = hgt - 2 - ((v - lo) / span) * (hgt - 4);
    pts.push(x.toFixed(1) + "," + y.toFixed(1));
  });
  svg.append(h("svg:polyline", { points: pts.join(" ") }));
  svg.setAttribute("aria-label", "last hour: " + num(lo) + " to " + num(hi));
  return svg;
}

function alertRow(a) {
  const labels = Object.entries(a.labels || {}).map(([k, v]) => k + "=" + v).join(" ");
  return h("tr", { dataset: { rule: String(a.rule), state: String(a.state) } },
    h("td", { title: String(a.ts), text: when(ms(a.ts)) }),
    h("td", { text: String(a.rule) }),
    h("td", null, badge(String(a.state), "st-" + a.state)),
    h("td", null, badge(String(a.severity || "–"), "sev-" + a.severity)),
    h("td", { class: "num", text: num(a.value) }),
    h("td", { class: "wrap", text: String(a.message || "") }),
    h("td", { class: "wrap muted", text: labels }));
}

function gapRow(g) {
  const from = ms(g.from_ts), to = ms(g.to_ts);
  const what = g.kind === "alert" ? "alerts" + (g.rule ? " of " + g.rule : "") : [g.sensor, g.metric].filter(Boolean).join(" / ") || "readings";
  return h("tr", { dataset: { reason: String(g.reason), from: String(g.from_ts ?? ""), to: String(g.to_ts ?? "") } },
    h("td", { text: when(from) }),
    h("td", { text: from && to ? duration(to - from) : "unknown" }),
    h("td", null, badge(String(g.reason), "gap")),
    h("td", { text: what }),
    h("td", { class: "num", text: g.count ? String(g.count) : "unknown" }),
    h("td", { text: when(ms(g.dropped_at)) }));
}

export async function gatewayPage(view, gw, { signal, fail }) {
  document.title = "Outpost · " + gw;
  const head = h("div", { class: "facts" });
  const seriesBody = h("tbody");
  const chartSel = h("a", { class: "button", href: "#/chart", text: "Chart selected", "aria-disabled": "true" });
  const alertsBody = h("tbody");
  const gapsBody = h("tbody");
  const alertsNote = h("p", { class: "muted" });
  const gapsNote = h("p", { class: "muted" });
  const range = h("select", { id: "history-range" }, ranges.map(([l, v], i) => h("option", { value: String(v), text: l, selected: i === 1 })));
  const sec = h("section", { id: "gateway", dataset: { gateway: gw } },
    h("h2", null, gw),
    head,
    h("h3", null, "Sensors and series"),
    h("div", { class: "bar" }, h("span", { class: "muted", text: "Tick series to chart them together:" }), chartSel),
    h("div", { class: "scroll" }, h("table", { id: "series" },
      h("thead", null, h("tr", null, ["", "Sensor", "Metric", "Unit", "Latest", "Quality", "When", "Last hour", ""].map(
        (t, i) => h("th", { class: i === 4 ? "num" : null, text: t })))),
      seriesBody)),
    h("h3", null, "Alerts"),
    h("div", { class: "bar" }, h("label", null, "History of the last ", range)),
    h("div", { class: "scroll" }, h("table", { id: "alert-history" },
      h("thead", null, h("tr", null, ["Time", "Rule", "State", "Severity", "Value", "Message", "Labels"].map(t => h("th", { text: t })))),
      alertsBody)),
    alertsNote,
    h("h3", null, "Data lost (gaps)"),
    h("div", { class: "scroll" }, h("table", { id: "gaps" },
      h("thead", null, h("tr", null, ["From", "Lasting", "Reason", "What", "Lost", "Dropped at"].map(t => h("th", { text: t })))),
      gapsBody)),
    gapsNote);
  view.append(sec);

  let status = null;
  let lastBatch = 0;
  function renderHead() {
    const now = Date.now();
    const st = status?.status && typeof status.status === "object" ? status.status : {};
    const hl = st.health && typeof st.health === "object" ? st.health : null;
    const seen = Math.max(ms(status?.updated_at), lastBatch);
    const fact = (k, v, id) => [h("dt", { text: k }), h("dd", { id, text: v })];
    const stateBadge = status ? badge(String(status.state), status.state === "online" ? "online" : "offline") : badge("unknown", "offline");
    const failing = hl?.sensors_failing && typeof hl.sensors_failing === "object" ? Object.keys(hl.sensors_failing) : [];
    head.replaceChildren(h("p", null, stateBadge, " ", seen ? "last seen " + ago(now - seen) : "never seen"),
      h("dl", null,
        fact("Version", typeof st.version === "string" ? st.version : "–", "f-version"),
        fact("Running since", st.started_at ? when(ms(st.started_at)) : "–", "f-started"),
        fact("Outbox", hl ? hl.outbox_batches + " batches, " + bytes(hl.outbox_bytes) +
          (hl.outbox_oldest ? ", oldest " + ago(now - ms(hl.outbox_oldest)) : "") : "–", "f-outbox"),
        fact("Readings/s", hl ? num(hl.readings_per_s) : "–", "f-rate"),
        fact("Alerts", hl ? hl.alerts_firing + " firing, " + hl.alerts_pending + " pending" : "–", "f-alerts"),
        fact("Failing sensors", hl ? (failing.length ? failing.join(", ") : "none") : "–", "f-failing")));
    for (const tr of seriesBody.querySelectorAll("tr")) {
      const f = hl?.sensors_failing?.[tr.dataset.sensor];
      tr.classList.toggle("failing", Array.isArray(f));
      const cell = tr.querySelector(".sensor");
      if (cell) cell.title = Array.isArray(f) ? "failing: " + f.join(", ") : "";
    }
  }

  // Series rows by key; each keeps the cells the live stream updates.
  const rows = new Map();
  const selected = new Set();
  function updateChartLink() {
    chartSel.href = chartLink([...selected]);
    chartSel.setAttribute("aria-disabled", String(selected.size === 0));
  }
  function setLatest(r, p) {
    r.value.textContent = num(p.value);
    r.quality.replaceChildren(badge(String(p.quality), "q-" + p.quality));
    r.ts = ms(p.ts);
    r.when.textContent = ago(Date.now() - r.ts);
    r.when.title = String(p.ts);
    r.tr.dataset.quality = String(p.quality);
  }

  async function loadStatus() {
    const body = await api("/api/v1/gateways", signal);
    status = (body.gateways || []).find(g => g.gateway === gw) || null;
    renderHead();
  }

  async function loadSeries() {
    const [series, latest] = await Promise.all([
      api("/api/v1/series" + query({ gateway: gw, limit: 1000 }), signal),
      api("/api/v1/latest" + query({ gateway: gw, limit: 1000 }), signal),
    ]);
    rows.clear();
    const list = series.series || [];
    seriesBody.replaceChildren(...list.map(s => {
      const key = seriesKey(s);
      const box = h("input", { type: "checkbox", "aria-label": "select " + key, checked: selected.has(key),
        onchange: ev => { ev.target.checked ? selected.add(key) : selected.delete(key); updateChartLink(); } });
      const r = { value: h("td", { class: "num value", text: "–" }), quality: h("td"), when: h("td"), spark: h("td") };
      r.tr = h("tr", { dataset: { sensor: s.sensor, metric: s.metric, key } },
        h("td", null, box), h("td", { class: "sensor", text: s.sensor }), h("td", { text: s.metric }),
        h("td", { text: s.unit || "" }), r.value, r.quality, r.when, r.spark,
        h("td", null, h("a", { href: chartLink([key]), text: "chart" })));
      rows.set(key, r);
      return r.tr;
    }));
    if (!list.length) seriesBody.append(h("tr", null, h("td", { colspan: 9, class: "muted", text: "No readings stored." })));
    for (const p of latest.points || []) {
      const r = rows.get(seriesKey(p));
      if (r) setLatest(r, p);
    }
    renderHead();
    const to = Date.now();
    await Promise.all(list.slice(0, maxSparklines).map(async s => {
      // The last hour in at most 60 buckets, or less of it for a series
      // younger than that, in buckets small enough to draw it.
      const from = Math.max(to - hour, ms(s.first_ts) || 0);
      const step = sparkSteps.find(st => (to - from) / st <= 60) || 60e3;
      const b = await api("/api/v1/readings" + query({ gateway: gw, sensor: s.sensor, metric: s.metric,
        from: Math.floor(from), to: Math.ceil(to), step: step / 1000 + "s", limit: 61 }), signal);
      const start = Math.floor(from / step);
      const vals = new Array(Math.floor(to / step) - start + 1).fill(NaN);
      for (const k of b.buckets || []) {
        const i = Math.floor(ms(k.ts) / step) - start;
        if (i >= 0 && i < vals.length && k.avg !== null) vals[i] = k.avg;
      }
      rows.get(seriesKey(s))?.spark.replaceChildren(sparkline(vals));
    }));
    sec.dataset.sparklines = "done";
  }

  async function loadHistory() {
    const to = Date.now(), from = to - Number(range.value);
    const [al, gp] = await Promise.all([
      api("/api/v1/alerts" + query({ gateway: gw, from, to: to + 1, limit: 1000 }), signal),
      api("/api/v1/gaps" + query({ gateway: gw, from, to: to + 1, limit: 1000 }), signal),
    ]);
    alertsBody.replaceChildren(...(al.alerts || []).slice().reverse().map(alertRow));
    alertsNote.textContent = (al.alerts || []).length ? (al.truncated ? "The window holds more than 1000 transitions: the oldest 1000 are shown; narrow it." : "") :
      "No alert transitions in this window.";
    gapsBody.replaceChildren(...(gp.gaps || []).slice().reverse().map(gapRow));
    gapsNote.textContent = (gp.gaps || []).length ? (gp.truncated ? "More than 1000 loss records: the oldest 1000 are shown." : "") :
      "No data lost in this window.";
  }

  range.addEventListener("change", () => loadHistory().catch(fail));
  const headSoon = throttle(renderHead, 1000);
  await Promise.all([loadStatus(), loadHistory()]);
  await loadSeries();
  let opened = false, reloading = false;
  live("/api/v1/events" + query({ gateway: gw }), {
    open: () => {
      if (opened) Promise.all([loadStatus(), loadSeries(), loadHistory()]).catch(fail);
      opened = true;
    },
    auth: () => fail(new AuthError()),
    status: g => { if (g.gateway === gw) { status = g; renderHead(); } },
    batch: () => { lastBatch = Date.now(); headSoon(); },
    points: ev => {
      // The newest reading of each series in the event.
      const newest = new Map();
      for (const p of ev.points || []) {
        const k = seriesKey(p);
        const q = newest.get(k);
        if (!q || p.ts_ns >= q.ts_ns) newest.set(k, p);
      }
      let unknown = false;
      for (const [k, p] of newest) {
        const r = rows.get(k);
        if (r) setLatest(r, p);
        else unknown = true;
      }
      if (unknown && !reloading) { // a new series
        reloading = true;
        loadSeries().catch(fail).finally(() => { reloading = false; });
      }
    },
    alert: a => {
      if (a.gateway !== gw) return;
      alertsNote.textContent = "";
      alertsBody.prepend(alertRow(a));
    },
    gap: g => {
      if (g.gateway !== gw) return;
      gapsNote.textContent = "";
      gapsBody.prepend(gapRow(g));
    },
  }, signal);
  const tick = setInterval(() => {
    renderHead();
    for (const r of rows.values()) if (r.ts) r.when.textContent = ago(Date.now() - r.ts);
  }, 10000);
  signal.addEventListener("abort", () => clearInterval(tick));
}
