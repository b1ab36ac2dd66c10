// The console's fleet page: every gateway from /api/v1/gateways, its
// state, when it was last heard of and its sensors. Text from the API is
// only ever set as text, never as markup.
"use strict";

const tokenKey = "outpost-token";
let gateways = [];
let sortKey = "gateway", sortDir = 1;

function api(path) {
  const headers = {};
  const token = sessionStorage.getItem(tokenKey);
  if (token) headers.Authorization = "Bearer " + token;
  return fetch(path, { headers, cache: "no-store" });
}

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

function sensorCount(g) {
  const st = g.status;
  return st && st.sensors && typeof st.sensors === "object" ? Object.keys(st.sensors).length : null;
}

async function load() {
  const errEl = document.getElementById("error");
  let resp;
  try {
    resp = await api("/api/v1/gateways");
  } catch (e) {
    errEl.textContent = "The ingest service does not answer: " + e.message;
    errEl.hidden = false;
    return;
  }
  if (resp.status === 401) {
    sessionStorage.removeItem(tokenKey);
    document.getElementById("fleet").hidden = true;
    document.getElementById("login").hidden = false;
    return;
  }
  if (!resp.ok) {
    errEl.textContent = "The ingest service answered " + resp.status + ".";
    errEl.hidden = false;
    return;
  }
  const body = await resp.json();
  errEl.hidden = true;
  gateways = (body.gateways || []).map(g => ({
    gateway: String(g.gateway),
    state: String(g.state),
    seen: Date.parse(g.updated_at) || 0,
    sensors: sensorCount(g),
  }));
  document.getElementById("login").hidden = true;
  document.getElementById("fleet").hidden = false;
  render();
}

function render() {
  const now = Date.now();
  const staleAfter = Number(document.getElementById("stale").value) * 1000;
  const filter = document.getElementById("filter").value.trim().toLowerCase();
  const rows = gateways.filter(g => !filter || g.gateway.toLowerCase().includes(filter) || g.state.toLowerCase().includes(filter));
  rows.sort((a, b) => {
    const x = a[sortKey], y = b[sortKey];
    if (x === y) return a.gateway < b.gateway ? -1 : 1;
    if (x === null) return 1;
    if (y === null) return -1;
    return (x < y ? -1 : 1) * sortDir;
  });
  const tbody = document.querySelector("#gateways tbody");
  tbody.replaceChildren(...rows.map(g => {
    const tr = document.createElement("tr");
    tr.dataset.gateway = g.gateway;
    tr.dataset.state = g.state;
    const stale = g.state !== "online" && now - g.seen > staleAfter;
    if (stale) tr.classList.add("stale");
    const td = (text, cls) => {
      const c = document.createElement("td");
      if (cls) c.className = cls;
      c.textContent = text;
      return c;
    };
    const state = document.createElement("span");
    state.className = "state " + (g.state === "online" ? "online" : "offline");
    state.textContent = g.state;
    const stateCell = td("");
    stateCell.append(state);
    const seen = td(g.seen ? ago(now - g.seen) : "never");
    if (g.seen) seen.title = new Date(g.seen).toISOString();
    tr.append(td(g.gateway), stateCell, seen, td(g.sensors === null ? "–" : String(g.sensors), "num"));
    return tr;
  }));
  const online = gateways.filter(g => g.state === "online").length;
  const stale = gateways.filter(g => g.state !== "online" && now - g.seen > staleAfter).length;
  document.getElementById("summary").textContent =
    gateways.length + " gateways: " + online + " online, " + (gateways.length - online) + " offline" +
    (stale ? ", " + stale + " for longer than the threshold" : "");
  document.getElementById("empty").hidden = gateways.length > 0;
}

function setup() {
  document.getElementById("filter").addEventListener("input", render);
  document.getElementById("stale").addEventListener("change", render);
  for (const th of document.querySelectorAll("#gateways th")) {
    th.querySelector("button").addEventListener("click", () => {
      const key = th.dataset.key;
      sortDir = key === sortKey ? -sortDir : 1;
      sortKey = key;
      for (const o of document.querySelectorAll("#gateways th")) o.removeAttribute("aria-sort");
      th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
      render();
    });
  }
  document.getElementById("login").addEventListener("submit", ev => {
    ev.preventDefault();
    sessionStorage.setItem(tokenKey, document.getElementById("token").value);
    load();
  });
  load();
  // Statuses change rarely; the relative times are redrawn each 10 s and
  // the list fetched again each 30 s.
  setInterval(render, 10000);
  setInterval(load, 30000);
}

document.addEventListener("DOMContentLoaded", setup);
