// The fleet page: every gateway from /api/v1/gateways with what its
// status document says (state, version, outbox, readings/s, alerts,
// failing sensors), kept current by the live stream: a status replaces
// its row, a committed batch moves its last-seen time.
import { AuthError, api, live, h, ago, duration, num, ms, sortable, compare, throttle } from "./core.js";

const columns = [
  { key: "gateway", label: "Gateway" },
  { key: "state", label: "State" },
  { key: "seen", label: "Last seen" },
  { key: "version", label: "Version" },
  { key: "outbox", label: "Outbox", num: true, title: "Batches stored on the gateway, not yet acknowledged; the age of the oldest" },
  { key: "rate", label: "Readings/s", num: true },
  { key: "alerts", label: "Alerts", num: true, title: "Alerts firing (and pending)" },
  { key: "failing", label: "Failing sensors", num: true },
  { key: "sensors", label: "Sensors", num: true },
];

// row is what the table shows of one gateway's status.
export function fleetRow(g) {
  const st = g.status && typeof g.status === "object" ? g.status : {};
  const hl = st.health && typeof st.health === "object" ? st.health : null;
  const count = v => (Number.isFinite(v) && v >= 0 ? v : null);
  const failing = hl && hl.sensors_failing && typeof hl.sensors_failing === "object" ? hl.sensors_failing : null;
  return {
    gateway: String(g.gateway),
    state: String(g.state),
    seen: ms(g.updated_at),
    version: typeof st.version === "string" ? st.version : null,
    outbox: hl ? count(hl.outbox_batches) : null,
    oldest: hl ? ms(hl.outbox_oldest) : 0,
    rate: hl ? count(hl.readings_per_s) : null,
    alerts: hl ? count(hl.alerts_firing) : null,
    pending: hl ? count(hl.alerts_pending) : null,
    failing: failing ? Object.keys(failing).length : null,
    failingNames: failing ? Object.entries(failing).map(([s, c]) => s + (Array.isArray(c) ? " (" + c.join(", ") + ")" : "")) : [],
    sensors: st.sensors && typeof st.sensors === "object" ? Object.keys(st.sensors).length : null,
  };
}

export async function fleetPage(view, _arg, { signal, fail }) {
  document.title = "Outpost · fleet";
  const sort = { key: "gateway", dir: 1 };
  const rows = new Map(); // gateway → row
  const summary = h("p", { id: "summary", "aria-live": "polite" });
  const filter = h("input", { id: "filter", type: "search", placeholder: "gateway, state or version" });
  const stale = h("select", { id: "stale" },
    h("option", { value: "300", text: "5 min" }),
    h("option", { value: "3600", text: "1 h", selected: true }),
    h("option", { value: "86400", text: "1 day" }));
  const thead = h("thead", null, h("tr", null, columns.map(c =>
    h("th", { "data-key": c.key, class: c.num ? "num" : null, title: c.title }, h("button", { type: "button", text: c.label })))));
  const tbody = h("tbody");
  const empty = h("p", { id: "empty", hidden: true, text: "No gateway has reported yet." });
  view.append(h("section", { id: "fleet" },
    h("div", { class: "bar" }, summary,
      h("label", null, "Filter ", filter),
      h("label", null, "Offline for more than ", stale)),
    h("div", { class: "scroll" }, h("table", { id: "gateways" }, thead, tbody)),
    empty));

  // Rows are made once per gateway from a prototype, then only their
  // text changes: a fleet of thousands redraws in milliseconds.
  const proto = h("tr", null, h("td", null, h("a")), h("td", null, h("span")), h("td"), h("td"),
    ...[0, 1, 2, 3, 4].map(() => h("td", { class: "num" })));
  const els = new Map(); // gateway → tr
  const set = (el, text, title) => {
    if (el.textContent !== text) el.textContent = text;
    if (title !== undefined && el.title !== (title || "")) el.title = title || "";
  };
  function draw(g, now, isStale) {
    let tr = els.get(g.gateway);
    if (!tr) {
      tr = proto.cloneNode(true);
      tr.dataset.gateway = g.gateway;
      const a = tr.cells[0].firstChild;
      a.href = "#/gateway/" + g.gateway;
      a.textContent = g.gateway;
      els.set(g.gateway, tr);
    }
    const c = tr.cells;
    tr.dataset.state = g.state;
    tr.classList.toggle("stale", isStale);
    const b = c[1].firstChild;
    b.className = "badge " + (g.state === "online" ? "online" : "offline");
    set(b, g.state);
    set(c[2], g.seen ? ago(now - g.seen) : "never", g.seen ? new Date(g.seen).toISOString() : "");
    set(c[3], g.version ?? "–");
    set(c[4], g.outbox === null ? "–" : g.outbox + (g.oldest ? " · " + duration(now - g.oldest) : ""),
      g.oldest ? "oldest stored " + new Date(g.oldest).toISOString() : "");
    set(c[5], g.rate === null ? "–" : num(g.rate));
    set(c[6], g.alerts === null ? "–" : g.alerts + (g.pending ? " (+" + g.pending + ")" : ""));
    c[6].classList.toggle("bad", g.alerts > 0);
    set(c[7], g.failing === null ? "–" : String(g.failing), g.failingNames.join("; "));
    c[7].classList.toggle("bad", g.failing > 0);
    set(c[8], g.sensors === null ? "–" : String(g.sensors));
    return tr;
  }

  function render() {
    const now = Date.now();
    const staleAfter = Number(stale.value) * 1000;
    const f = filter.value.trim().toLowerCase();
    const all = [...rows.values()];
    const shown = all.filter(g => !f || g.gateway.toLowerCase().includes(f) || g.state.toLowerCase().includes(f) ||
      (g.version || "").toLowerCase().includes(f));
    shown.sort(compare(sort.key, sort.dir, "gateway"));
    tbody.replaceChildren(...shown.map(g => draw(g, now, g.state !== "online" && now - g.seen > staleAfter)));
    for (const gw of els.keys()) if (!rows.has(gw)) els.delete(gw);
    const online = all.filter(g => g.state === "online").length;
    const staleN = all.filter(g => g.state !== "online" && now - g.seen > staleAfter).length;
    const firing = all.reduce((n, g) => n + (g.alerts || 0), 0);
    const failing = all.reduce((n, g) => n + (g.failing || 0), 0);
    summary.textContent = all.length + " gateways: " + online + " online, " + (all.length - online) + " offline" +
      (staleN ? ", " + staleN + " for longer than the threshold" : "") +
      (firing ? "; " + firing + " alerts firing" : "") + (failing ? "; " + failing + " sensors failing" : "");
    empty.hidden = all.length > 0;
  }
  const soon = throttle(render, 500);

  async function load() {
    const body = await api("/api/v1/gateways", signal);
    rows.clear();
    for (const g of body.gateways || []) {
      const r = fleetRow(g);
      rows.set(r.gateway, r);
    }
    render();
  }

  filter.addEventListener("input", render);
  stale.addEventListener("change", render);
  sortable(thead, sort, render);
  await load();
  let opened = false;
  live("/api/v1/events", {
    // After a reconnect, what changed meanwhile is fetched again.
    open: () => { if (opened) load().catch(fail); opened = true; },
    auth: () => fail(new AuthError()),
    status: g => {
      const prev = rows.get(String(g.gateway));
      const r = fleetRow(g);
      if (prev && prev.seen > r.seen) r.seen = prev.seen;
      rows.set(r.gateway, r);
      soon();
    },
    batch: b => {
      const r = rows.get(String(b.gateway));
      if (!r) return; // a gateway's first status comes before its batches
      r.seen = Math.max(r.seen, Date.now());
      soon();
    },
  }, signal);
  // Relative times age while nothing happens.
  const tick = setInterval(render, 10000);
  signal.addEventListener("abort", () => clearInterval(tick));
}
