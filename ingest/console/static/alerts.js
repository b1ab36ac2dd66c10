// The alerts page: what fires and is pending now (each alert instance's
// newest transition, from /api/v1/alerts/active), and the history of
// transitions with filters. The live stream moves an instance in or out
// of the list as its transitions are committed.
import { AuthError, api, live, h, ago, num, ms, when, query, badge, compare, sortable, throttle } from "./core.js";

const hour = 3600e3;
const ranges = [["1 h", hour], ["24 h", 24 * hour], ["7 days", 7 * 24 * hour], ["30 days", 30 * 24 * hour]];
const states = ["", "pending", "firing", "resolved", "inactive", "nodata"];
const severityRank = { critical: 0, error: 1, warning: 2, info: 3 };
const onStates = new Set(["pending", "firing", "nodata"]);

function labelText(m) {
  return Object.entries(m || {}).map(([k, v]) => k + "=" + v).join(" ");
}

export async function alertsPage(view, qs, { signal, fail }) {
  document.title = "Outpost · alerts";
  const params = new URLSearchParams(qs);
  const f = {
    gateway: params.get("gateway") || "",
    rule: params.get("rule") || "",
    state: states.includes(params.get("state")) ? params.get("state") : "",
    range: Number(params.get("range")) || 24 * hour,
  };
  const active = new Map(); // gateway + fingerprint → newest transition
  const sort = { key: "severity", dir: 1 };
  const activeHead = h("thead", null, h("tr", null, [["gateway", "Gateway"], ["rule", "Rule"], ["state", "State"],
    ["severity", "Severity"], ["since", "Since"], ["value", "Value"]].map(([k, l]) =>
    h("th", { "data-key": k, class: k === "value" ? "num" : null }, h("button", { type: "button", text: l }))),
  h("th", { text: "Message" }), h("th", { text: "Annotations" }), h("th", { text: "Labels" })));
  const activeBody = h("tbody");
  const activeNote = h("p", { class: "muted" });
  const histBody = h("tbody");
  const histNote = h("p", { class: "muted" });
  const field = (name, el) => h("label", null, name + " ", el);
  const gwIn = h("input", { name: "gateway", value: f.gateway, size: 16, pattern: "[A-Za-z0-9_.\\-]{1,64}" });
  const ruleIn = h("input", { name: "rule", value: f.rule, size: 16, pattern: "[A-Za-z0-9_.\\-]{1,64}" });
  const stateIn = h("select", { name: "state" }, states.map(s => h("option", { value: s, text: s || "any", selected: s === f.state })));
  const rangeIn = h("select", { name: "range" }, ranges.map(([l, v]) => h("option", { value: String(v), text: l, selected: v === f.range })));
  const form = h("form", { class: "bar", id: "filters", onsubmit: ev => {
    ev.preventDefault();
    location.hash = "#/alerts" + query({ gateway: gwIn.value.trim(), rule: ruleIn.value.trim(), state: stateIn.value, range: rangeIn.value });
  } }, field("Gateway", gwIn), field("Rule", ruleIn), field("State", stateIn), field("Of the last", rangeIn),
  h("button", { type: "submit", text: "Show" }));
  const sec = h("section", { id: "alerts" },
    h("h2", null, "Firing and pending now"),
    h("div", { class: "scroll" }, h("table", { id: "active" }, activeHead, activeBody)), activeNote,
    h("h2", null, "History"), form,
    h("div", { class: "scroll" }, h("table", { id: "history" },
      h("thead", null, h("tr", null, ["Time", "Gateway", "Rule", "State", "Severity", "Value", "Message"].map(t => h("th", { text: t })))),
      histBody)), histNote);
  view.append(sec);

  const matches = a => (!f.gateway || a.gateway === f.gateway) && (!f.rule || a.rule === f.rule);
  function renderActive() {
    const now = Date.now();
    const rows = [...active.values()].filter(matches).map(a => ({ a, gateway: a.gateway, rule: a.rule, state: a.state,
      severity: severityRank[a.severity] ?? 9, since: -a.started_at_ns, value: a.value }));
    rows.sort(compare(sort.key, sort.dir, "gateway"));
    activeBody.replaceChildren(...rows.map(({ a }) => h("tr", { class: "sev-" + a.severity,
      dataset: { gateway: a.gateway, rule: a.rule, state: a.state } },
    h("td", null, h("a", { href: "#/gateway/" + a.gateway, text: a.gateway })),
    h("td", { text: a.rule }),
    h("td", null, badge(a.state, "st-" + a.state)),
    h("td", null, badge(a.severity || "–", "sev-" + a.severity)),
    h("td", { title: a.started_at, text: ago(now - a.started_at_ns / 1e6) }),
    h("td", { class: "num", text: num(a.value) }),
    h("td", { class: "wrap", text: a.message || "" }),
    h("td", { class: "wrap" }, Object.entries(a.annotations || {}).map(([k, v]) => h("div", null, h("b", { text: k + ": " }), v))),
    h("td", { class: "wrap muted", text: labelText(a.labels) }))));
    activeNote.textContent = rows.length ? "" : "Nothing fires or is pending.";
  }
  const histRow = a => h("tr", { dataset: { gateway: a.gateway, rule: a.rule, state: a.state } },
    h("td", { title: a.ts, text: when(ms(a.ts)) }),
    h("td", null, h("a", { href: "#/gateway/" + a.gateway, text: a.gateway })),
    h("td", { text: a.rule }), h("td", null, badge(a.state, "st-" + a.state)),
    h("td", null, badge(a.severity || "–", "sev-" + a.severity)),
    h("td", { class: "num", text: num(a.value) }), h("td", { class: "wrap", text: a.message || "" }));

  async function loadActive() {
    const b = await api("/api/v1/alerts/active" + query({ gateway: f.gateway, limit: 5000 }), signal);
    active.clear();
    for (const a of b.alerts || []) active.set(a.gateway + "\u0000" + a.fingerprint, a);
    renderActive();
    if (b.truncated) activeNote.textContent = "More than 5000 alerts are on: the first 5000 by gateway are shown.";
  }
  async function loadHistory() {
    const to = Date.now();
    const b = await api("/api/v1/alerts" + query({ gateway: f.gateway, rule: f.rule, state: f.state,
      from: Math.floor(to - f.range), to: to + 1, limit: 2000 }), signal);
    histBody.replaceChildren(...(b.alerts || []).slice().reverse().map(histRow));
    histNote.textContent = (b.alerts || []).length ? (b.truncated ? "More than 2000 transitions: the oldest 2000 are shown; narrow the filters." : "")
      : "No transitions match.";
  }
  sortable(activeHead, sort, renderActive);
  await Promise.all([loadActive(), loadHistory()]);
  sec.dataset.ready = "true";
  const soon = throttle(renderActive, 300);
  let opened = false;
  live("/api/v1/events" + query({ gateway: f.gateway }), {
    open: () => { if (opened) Promise.all([loadActive(), loadHistory()]).catch(fail); opened = true; },
    auth: () => fail(new AuthError()),
    alert: a => {
      const k = a.gateway + "\u0000" + a.fingerprint;
      const cur = active.get(k);
      if (!cur || a.ts_ns > cur.ts_ns || (a.ts_ns === cur.ts_ns && BigInt(a.seq) >= BigInt(cur.seq))) {
        if (onStates.has(a.state)) active.set(k, a);
        else active.delete(k);
        soon();
      }
      if (matches(a) && (!f.state || a.state === f.state)) {
        histNote.textContent = "";
        histBody.prepend(histRow(a));
      }
    },
  }, signal);
  const tick = setInterval(renderActive, 10000);
  signal.addEventListener("abort", () => clearInterval(tick));
}
