// The console's shell: the pages by the URL's fragment (#/, #/gateway/G,
// #/chart?s=…, #/alerts?…), the token form, and errors. Each page gets
// an AbortSignal that ends its fetches and its live stream when another
// page opens.
import { AuthError, setToken, clearToken } from "./core.js";
import { fleetPage } from "./fleet.js";
import { gatewayPage } from "./gateway.js";
import { chartPage } from "./chart.js";
import { alertsPage } from "./alerts.js";

const routes = [
  { page: "fleet", re: /^#?\/?$/, mount: fleetPage },
  { page: "gateway", re: /^#\/gateway\/([A-Za-z0-9_.-]{1,64})$/, mount: gatewayPage },
  { page: "chart", re: /^#\/chart(?:\?(.*))?$/, mount: chartPage },
  { page: "alerts", re: /^#\/alerts(?:\?(.*))?$/, mount: alertsPage },
];

let current = null; // the open page's AbortController

function showError(e) {
  const el = document.getElementById("error");
  if (!e) { el.hidden = true; return; }
  el.textContent = e.message || String(e);
  el.hidden = false;
}

// fail is every page's error path: a missing token opens the form.
function fail(e) {
  if (e?.name === "AbortError") return;
  if (e instanceof AuthError) {
    clearToken();
    current?.abort();
    document.getElementById("view").replaceChildren();
    document.getElementById("login").hidden = false;
    document.getElementById("token").focus();
    return;
  }
  console.error(e);
  showError(e);
}

function route() {
  current?.abort();
  current = new AbortController();
  showError(null);
  document.getElementById("login").hidden = true;
  const hash = location.hash || "#/";
  const view = document.getElementById("view");
  view.replaceChildren();
  for (const a of document.querySelectorAll("nav a")) a.removeAttribute("aria-current");
  for (const r of routes) {
    const m = hash.match(r.re);
    if (!m) continue;
    document.querySelector(`nav a[data-page="${r.page}"]`)?.setAttribute("aria-current", "page");
    document.body.dataset.page = r.page;
    // m[1] is a gateway id of safe characters, or a query string for
    // URLSearchParams.
    Promise.resolve(r.mount(view, m[1] || "", { signal: current.signal, fail })).catch(fail);
    return;
  }
  document.body.dataset.page = "none";
  view.append(Object.assign(document.createElement("p"), { textContent: "No such page." }));
}

document.getElementById("login").addEventListener("submit", ev => {
  ev.preventDefault();
  setToken(document.getElementById("token").value);
  document.getElementById("token").value = "";
  route();
});
window.addEventListener("hashchange", route);
// A page left for another keeps no live stream open: a browser holds
// six connections to a host, and a page kept in its back-forward cache
// would hold one for nothing. Coming back from that cache opens the page
// anew.
window.addEventListener("pagehide", () => current?.abort());
window.addEventListener("pageshow", ev => { if (ev.persisted) route(); });
route();
