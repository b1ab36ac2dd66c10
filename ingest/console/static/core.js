// What every page of the console shares: the API client (token, retry
// on a busy service), the live event stream, DOM building and the
// formats of times and numbers. Text from the API is only ever set as
// text, never as markup.

const tokenKey = "outpost-token";

// AuthError is thrown when the service wants a token it was not given.
export class AuthError extends Error {
  constructor() { super("a token is required"); }
}

function headers() {
  const token = sessionStorage.getItem(tokenKey);
  return token ? { Authorization: "Bearer " + token } : {};
}

export function setToken(t) { sessionStorage.setItem(tokenKey, t); }
export function clearToken() { sessionStorage.removeItem(tokenKey); }

export function sleep(ms, signal) {
  return new Promise(resolve => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

// Queries the API runs at once are few (ingest's --max-queries, 4 by
// default), and a page may want many (a sparkline per series): at most
// this many of one tab's requests are in flight, the rest wait here.
const maxInFlight = 3;
let inFlight = 0;
const waiting = [];

async function slot(signal) {
  while (inFlight >= maxInFlight) {
    await new Promise(resolve => waiting.push(resolve));
    if (signal?.aborted) throw new DOMException("aborted", "AbortError");
  }
  inFlight++;
}

function release() {
  inFlight--;
  waiting.shift()?.();
}

// api fetches an API path and returns its JSON. A 503 (every query slot
// taken) is retried after its Retry-After, a few times; a 401 throws
// AuthError; any other failure an Error with the service's words.
export async function api(path, signal) {
  for (let attempt = 0; ; attempt++) {
    await slot(signal);
    let resp, body;
    try {
      resp = await fetch(path, { headers: headers(), cache: "no-store", signal });
      body = resp.ok ? await resp.json() : await resp.json().catch(() => null);
    } finally {
      release();
    }
    if (resp.ok) return body;
    if (resp.status === 401) throw new AuthError();
    if (resp.status === 503 && attempt < 6) {
      const after = Number(resp.headers.get("Retry-After")) || 1;
      await sleep(after * 1000 * (1 + Math.random()), signal);
      if (signal?.aborted) throw new DOMException("aborted", "AbortError");
      continue;
    }
    const msg = body && typeof body.error === "string" ? ": " + body.error : "";
    throw new Error(path.split("?")[0] + " answered " + resp.status + msg);
  }
}

// query builds a query string from the set values of o.
export function query(o) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined || v === null || v === "") continue;
    for (const x of Array.isArray(v) ? v : [v]) q.append(k, String(x));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

// maxEventBytes bounds one event of the live stream as the client
// buffers it; the service's largest is far smaller.
const maxEventBytes = 4 << 20;

// live follows the service's event stream (/api/v1/events, Server-Sent
// Events read with fetch, since EventSource cannot send a token) until
// signal aborts. Each event goes to on[name] with its JSON; on.open runs
// at each (re)connect, once the service has said hello, so that a page
// fetches again what it may have missed while disconnected. A lost or
// dropped stream (the service drops a client that falls behind) is
// followed again after a growing wait. on.auth runs on a 401.
export function live(path, on, signal) {
  const state = s => { document.body.dataset.live = s; };
  signal.addEventListener("abort", () => state("off"), { once: true });
  (async () => {
    let wait = 1000;
    while (!signal.aborted) {
      state("connecting");
      try {
        const resp = await fetch(path, { headers: headers(), cache: "no-store", signal });
        if (resp.status === 401) { state("off"); on.auth?.(); return; }
        if (!resp.ok || !resp.body) throw new Error("events answered " + resp.status);
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        read: for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let end;
          while ((end = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            let name = "message", data = "";
            for (const line of block.split("\n")) {
              if (line === "" || line.startsWith(":")) continue; // a comment: the heartbeat
              const c = line.indexOf(":");
              const field = c < 0 ? line : line.slice(0, c);
              let v = c < 0 ? "" : line.slice(c + 1);
              if (v.startsWith(" ")) v = v.slice(1);
              if (field === "event") name = v;
              else if (field === "data") data = data ? data + "\n" + v : v;
            }
            if (name === "overflow") break read; // dropped for falling behind
            if (name === "hello") {
              wait = 1000;
              state("on");
              on.open?.();
              continue;
            }
            let obj;
            try { obj = JSON.parse(data); } catch { continue; }
            try { on[name]?.(obj); } catch (e) { console.error(e); }
          }
          if (buf.length > maxEventBytes) break; // no event is this long: the stream is broken
        }
        reader.cancel().catch(() => {});
      } catch (e) {
        if (signal.aborted) return;
      }
      if (signal.aborted) return;
      state("off");
      await sleep(wait * (0.5 + Math.random() / 2), signal);
      wait = Math.min(wait * 2, 30000);
    }
  })();
}

// h makes an element: props are attributes, except class, text (its
// text), dataset (data-*), on* (listeners) and the properties value and
// checked; children are nodes or strings, which become text.
export function h(tag, props, ...children) {
  const e = tag.includes(":")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(tag.indexOf(":") + 1))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.setAttribute("class", v);
    else if (k === "text") e.textContent = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "value" || k === "checked") e[k] = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

export function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

export function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.round(s / 60) + " min";
  if (s < 86400) return num(s / 3600, s < 36000 ? 1 : 0) + " h";
  return num(s / 86400, s < 864000 ? 1 : 0) + " d";
}

// when is a time as a person reads it: local, to the second.
export function when(ms) {
  if (!ms) return "–";
  const d = new Date(ms);
  const pad = n => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
    pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}

// timeCell is a cell with a relative time, the exact one as its title.
export function timeCell(ms, now) {
  return h("td", { title: ms ? new Date(ms).toISOString() : null, text: ms ? ago(now - ms) : "never" });
}

// Number formats by their most fraction digits, made once: a format
// made per number costs more than the rest of a table row.
const formats = [];
export function num(v, digits) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (digits === undefined) digits = a >= 100 ? 1 : a >= 1 ? 2 : 3;
  formats[digits] ||= new Intl.NumberFormat("en", { maximumFractionDigits: digits });
  return formats[digits].format(v);
}

export function bytes(n) {
  if (!Number.isFinite(n)) return "–";
  if (n < 1024) return n + " B";
  if (n < 1 << 20) return (n / 1024).toFixed(1) + " KiB";
  if (n < 1 << 30) return (n / (1 << 20)).toFixed(1) + " MiB";
  return (n / (1 << 30)).toFixed(1) + " GiB";
}

// badge is a small coloured label: states, severities, qualities.
export function badge(text, kind) {
  return h("span", { class: "badge " + kind, text });
}

// ms reads an RFC 3339 time; 0 when absent or not one.
export function ms(s) {
  return typeof s === "string" ? Date.parse(s) || 0 : 0;
}

// sortTable makes a table's headers (th with data-key and a button)
// sort it: state is {key, dir}; render redraws.
export function sortable(thead, state, render) {
  for (const th of thead.querySelectorAll("th[data-key]")) {
    if (th.dataset.key === state.key) th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
    th.querySelector("button").addEventListener("click", () => {
      const key = th.dataset.key;
      state.dir = key === state.key ? -state.dir : 1;
      state.key = key;
      for (const o of thead.querySelectorAll("th")) o.removeAttribute("aria-sort");
      th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
      render();
    });
  }
}

// compare orders by a key, missing values (null) last, then by name.
export function compare(key, dir, name) {
  return (a, b) => {
    const x = a[key], y = b[key];
    if (x === y || (x === null && y === null)) return a[name] < b[name] ? -1 : a[name] > b[name] ? 1 : 0;
    if (x === null) return 1;
    if (y === null) return -1;
    return (x < y ? -1 : 1) * dir;
  };
}

// throttle runs f at most once per wait ms, at the end of it.
export function throttle(f, wait) {
  let timer = null;
  return () => {
    if (timer !== null) return;
    timer = setTimeout(() => { timer = null; f(); }, wait);
  };
}

// seriesKey names a series in the console's URLs: gateway/sensor/metric
// (names hold no slash).
export function seriesKey(p) { return p.gateway + "/" + p.sensor + "/" + p.metric; }

export function chartLink(keys) {
  return "#/chart" + query({ s: keys });
}
