// The trace view: a search page (/) and a waterfall of one trace (/trace/{id}), both built
// from Jaeger's query API (/api/...). Plain DOM, no framework, no external assets.
"use strict";

const PALETTE = [
  "#3b7ddd", "#1fa67a", "#8b5cf6", "#e08a00", "#0ea5b7",
  "#d9468f", "#6b8e23", "#5b6ee1", "#b7791f", "#2a9d8f",
];
const LOOKBACKS = [
  ["5m", "Last 5 minutes"], ["15m", "Last 15 minutes"], ["1h", "Last hour"],
  ["6h", "Last 6 hours"], ["24h", "Last 24 hours"], ["2d", "Last 2 days"],
];
const main = document.getElementById("main");
let serviceNames = [];

// -- small helpers -----------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "style") el.style.cssText = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

async function api(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" } });
  } catch (err) {
    throw new Error("the trace store does not answer (is `boutique up` running?)");
  }
  let body = null;
  try { body = await response.json(); } catch (err) { /* not JSON */ }
  if (!response.ok || (body && body.errors && body.data === null)) {
    const msg = body && body.errors && body.errors.length ? body.errors[0].msg : response.statusText;
    const error = new Error(msg);
    error.status = response.status;
    throw error;
  }
  return body;
}

function fmtDuration(us) {
  if (us === 0) return "0ms";
  if (us < 1000) return `${Math.round(us)}µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(us < 1e4 ? 2 : 1)}ms`;
  if (us < 6e7) return `${(us / 1e6).toFixed(2)}s`;
  return `${Math.floor(us / 6e7)}m ${((us % 6e7) / 1e6).toFixed(0)}s`;
}

function fmtTime(us, withDate) {
  const d = new Date(us / 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}` +
    `.${pad(d.getMilliseconds(), 3)}`;
  if (!withDate) return time;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

function fmtAgo(us) {
  const s = (Date.now() - us / 1000) / 1000;
  if (s < 5) return "just now";
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

function colorOf(service) {
  let i = serviceNames.indexOf(service);
  if (i < 0) {
    i = 0;
    for (const c of service) i = (i * 31 + c.charCodeAt(0)) >>> 0;
  }
  return PALETTE[i % PALETTE.length];
}

function tagValue(span, key) {
  const tag = span.tags.find((t) => t.key === key);
  return tag ? tag.value : undefined;
}
const isError = (span) => {
  const v = tagValue(span, "error");
  return v === true || v === "true";
};
const isNetwork = (span) => tagValue(span, "component") === "proxy";
const statusCode = (span) => tagValue(span, "http.status_code") ?? tagValue(span, "http.response.status_code");

function request(span) {
  // "PUT /api/cart/items/speckled-mug" from Envoy's or the SDK's HTTP tags, if any
  const method = tagValue(span, "http.method") ?? tagValue(span, "http.request.method");
  let target = tagValue(span, "http.url") ?? tagValue(span, "url.full") ?? tagValue(span, "url.path") ??
    tagValue(span, "http.target") ?? tagValue(span, "http.route");
  if (!method && !target) return null;
  try { target = target && /^[a-z]+:\/\//.test(target) ? new URL(target).pathname + new URL(target).search : target; }
  catch (err) { /* keep it as it is */ }
  return [method, target].filter(Boolean).join(" ");
}

function requestLine(span) {
  const req = request(span);
  if (!req) return null;
  const code = statusCode(span);
  const bad = Number(code) >= 500 || isError(span);
  return h("span", { class: "req" }, req,
    code !== undefined ? h("span", { class: `code${bad ? " bad" : Number(code) >= 400 ? " warn" : ""}` }, String(code)) : null);
}

function svcLabel(service) {
  return h("span", { class: "svc" },
    h("span", { class: "dot", style: `background:${colorOf(service)};display:inline-block;margin-right:6px` }),
    service);
}

// -- trace model -------------------------------------------------------------------------

function model(trace) {
  const byId = new Map(trace.spans.map((s) => [s.spanID, s]));
  const children = new Map();
  const roots = [];
  for (const span of trace.spans) {
    span.service = trace.processes[span.processID].serviceName;
    const parentRef = span.references.find((r) => r.refType === "CHILD_OF" && byId.has(r.spanID));
    span.parent = parentRef ? byId.get(parentRef.spanID) : null;
    if (span.parent) {
      if (!children.has(span.parent.spanID)) children.set(span.parent.spanID, []);
      children.get(span.parent.spanID).push(span);
    } else {
      roots.push(span);
    }
  }
  const byStart = (a, b) => a.startTime - b.startTime;
  roots.sort(byStart);
  const ordered = [];
  const walk = (span, depth) => {
    span.depth = depth;
    span.children = (children.get(span.spanID) || []).sort(byStart);
    ordered.push(span);
    span.children.forEach((c) => walk(c, depth + 1));
  };
  roots.forEach((r) => walk(r, 0));
  const start = Math.min(...trace.spans.map((s) => s.startTime));
  const end = Math.max(...trace.spans.map((s) => s.startTime + s.duration));
  const counts = new Map();
  for (const s of trace.spans) counts.set(s.service, (counts.get(s.service) || 0) + 1);
  return {
    id: trace.traceID, trace, spans: ordered, root: roots[0], start, duration: Math.max(end - start, 1),
    services: [...counts.entries()].sort((a, b) => b[1] - a[1]),
    errors: trace.spans.filter(isError).length,
    depth: Math.max(...ordered.map((s) => s.depth)) + 1,
  };
}

// -- search page -------------------------------------------------------------------------

function parseTags(text) {
  // logfmt, as in Jaeger's UI: key=value key2="a value"
  const tags = {};
  const re = /([^\s=]+)=("([^"]*)"|\S*)/g;
  let m;
  while ((m = re.exec(text)) !== null) tags[m[1]] = m[3] !== undefined ? m[3] : m[2];
  return tags;
}

async function searchPage() {
  const params = new URLSearchParams(location.search);
  const form = h("form", { class: "panel search-form", autocomplete: "off" });
  const serviceSel = h("select", { name: "service" }, h("option", { value: "" }, "All services"));
  const opSel = h("select", { name: "operation" }, h("option", { value: "" }, "All operations"));
  const lookSel = h("select", { name: "lookback" },
    LOOKBACKS.map(([v, label]) => h("option", { value: v }, label)));
  const field = (label, control, hint) =>
    h("label", { class: "field" }, h("span", {}, label), control, hint ? h("small", { class: "hint" }, hint) : null);
  form.append(
    h("h2", {}, "Find traces"),
    field("Service", serviceSel),
    field("Operation", opSel),
    field("Tags", h("input", { name: "tags", placeholder: "error=true http.status_code=503" }),
      "key=value, separated by spaces"),
    field("Lookback", lookSel),
    h("div", { class: "field-row" },
      field("Min duration", h("input", { name: "minDuration", placeholder: "e.g. 10ms" })),
      field("Max duration", h("input", { name: "maxDuration", placeholder: "e.g. 1.5s" }))),
    field("Limit", h("input", { name: "limit", type: "number", min: "1", max: "1500", value: "20" })),
    h("button", { class: "button", type: "submit" }, "Find traces"),
  );
  const results = h("section", { class: "results" });
  main.replaceChildren(h("div", { class: "search-layout" }, form, results));

  try {
    serviceNames = (await api("/api/services")).data || [];
  } catch (err) {
    results.replaceChildren(notice("error", "Cannot list services", err.message));
    return;
  }
  serviceNames.forEach((s) => serviceSel.append(h("option", { value: s }, s)));

  const loadOperations = async () => {
    opSel.replaceChildren(h("option", { value: "" }, "All operations"));
    if (!serviceSel.value) return;
    const ops = (await api(`/api/services/${encodeURIComponent(serviceSel.value)}/operations`)).data;
    ops.forEach((op) => opSel.append(h("option", { value: op }, op)));
  };
  serviceSel.addEventListener("change", () => loadOperations().catch(() => {}));

  // the URL is the query: fill the form from it
  serviceSel.value = serviceNames.includes(params.get("service")) ? params.get("service") : "";
  await loadOperations().catch(() => {});
  if (params.get("operation")) opSel.value = params.get("operation");
  lookSel.value = LOOKBACKS.some(([v]) => v === params.get("lookback")) ? params.get("lookback") : "1h";
  for (const name of ["tags", "minDuration", "maxDuration", "limit"]) {
    if (params.get(name)) form.elements[name].value = params.get(name);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    for (const name of ["service", "operation", "tags", "lookback", "minDuration", "maxDuration", "limit"]) {
      const v = form.elements[name].value.trim();
      if (v) q.set(name, v);
    }
    history.pushState(null, "", `/?${q}`);
    runSearch(q, results);
  });
  runSearch(params, results, lookSel.value);
}

async function runSearch(params, results, lookback) {
  const q = new URLSearchParams();
  for (const name of ["service", "operation", "minDuration", "maxDuration", "limit"]) {
    if (params.get(name)) q.set(name, params.get(name));
  }
  q.set("lookback", params.get("lookback") || lookback || "1h");
  if (!q.has("limit")) q.set("limit", "20");
  const tags = parseTags(params.get("tags") || "");
  if (Object.keys(tags).length) q.set("tags", JSON.stringify(tags));
  results.replaceChildren(h("div", { class: "results-head" }, h("h1", {}, "Searching…")));
  let traces;
  try {
    traces = (await api(`/api/traces?${q}`)).data.map(model);
  } catch (err) {
    results.replaceChildren(notice("error", "The search failed", err.message));
    return;
  }
  traces.sort((a, b) => b.start - a.start);
  const longest = Math.max(1, ...traces.map((t) => t.duration));
  const errors = traces.filter((t) => t.errors).length;
  results.replaceChildren(
    h("div", { class: "results-head" },
      h("h1", {}, `${traces.length} trace${traces.length === 1 ? "" : "s"}`),
      h("span", { class: "muted" }, "newest first" + (errors ? ` · ${errors} with errors` : ""))),
    traces.length
      ? h("div", { class: "trace-list" }, traces.map((t) => traceCard(t, longest)))
      : notice("", "No traces found",
        h("span", {}, "Send a request through the shop, e.g. ",
          h("code", {}, "curl http://127.0.0.1:8080/api/products"),
          ", then search again. Sidecars send their spans every second.")),
  );
}

function traceCard(t, longest) {
  const root = t.root;
  return h("a", { class: `panel trace-card${t.errors ? " has-error" : ""}`, href: `/trace/${t.id}` },
    h("div", { class: "card-top" },
      h("div", { class: "card-title" }, svcLabel(root.service), h("span", { class: "op-name" }, root.operationName)),
      requestLine(root),
      t.errors ? h("span", { class: "badge badge-error" }, h("span", { class: "err-icon" }, "!"),
        `${t.errors} error${t.errors === 1 ? "" : "s"}`) : null,
      h("span", { class: "card-duration" }, fmtDuration(t.duration))),
    h("div", { class: "card-bar" }, h("span", { style: `width:${(100 * t.duration) / longest}%` })),
    h("div", { class: "card-meta" },
      h("span", {}, `${t.trace.spans.length} spans`),
      h("div", { class: "chips" }, t.services.map(([name, n]) =>
        h("span", { class: "chip" }, h("span", { class: "dot", style: `background:${colorOf(name)}` }),
          name, h("b", {}, n)))),
      h("span", { class: "right" }, fmtTime(t.start, true), " · ", fmtAgo(t.start)),
      h("span", { class: "tid" }, t.id.slice(0, 12))));
}

function notice(kind, title, body) {
  return h("div", { class: `panel notice ${kind}` }, h("h2", {}, title), h("div", {}, body));
}

// -- trace page --------------------------------------------------------------------------

async function tracePage(id) {
  main.replaceChildren(h("p", { class: "back" }, "Loading trace…"));
  let trace;
  try {
    const [services, found] = await Promise.all([api("/api/services"), api(`/api/traces/${encodeURIComponent(id)}`)]);
    serviceNames = services.data || [];
    trace = found.data[0];
  } catch (err) {
    const title = err.status === 404 ? `Trace ${id} not found` : "Cannot load the trace";
    const body = err.status === 404
      ? "Its spans may not have arrived yet (sidecars send every second), or it was evicted."
      : err.message;
    main.replaceChildren(h("a", { class: "back", href: "/" }, "← Search"), notice("error", title, body));
    return;
  }
  const t = model(trace);
  document.title = `${t.root.service}: ${t.root.operationName} · Traces`;
  main.replaceChildren(
    h("a", { class: "back", href: document.referrer.includes("/?") ? document.referrer : "/" }, "← Search"),
    traceHeader(t),
    waterfall(t),
  );
}

function traceHeader(t) {
  const fact = (label, value, cls) => h("div", {}, h("dt", {}, label), h("dd", { class: cls || null }, value));
  const swatch = (style) => h("span", { class: "swatch", style });
  return h("section", { class: "panel trace-head" },
    h("h1", { class: "trace-title" }, svcLabel(t.root.service), t.root.operationName, requestLine(t.root),
      t.errors ? h("span", { class: "badge badge-error" }, h("span", { class: "err-icon" }, "!"),
        `${t.errors} error${t.errors === 1 ? "" : "s"}`) : null),
    h("dl", { class: "facts" },
      fact("Trace ID", t.id, "mono"),
      fact("Started", fmtTime(t.start, true)),
      fact("Duration", fmtDuration(t.duration)),
      fact("Spans", t.trace.spans.length),
      fact("Depth", t.depth),
      fact("Services", t.services.length),
      fact("Errors", t.errors, t.errors ? "bad" : null)),
    h("div", { class: "legend" },
      h("span", { class: "item" }, swatch(`background:${PALETTE[0]}`), "app span (service colour)"),
      h("span", { class: "item" }, h("span", { class: "swatch bar net", style: "position:static" }),
        "network span (Envoy sidecar)", h("span", { class: "badge badge-net" }, "net")),
      h("span", { class: "item" }, h("span", { class: "err-icon" }, "!"), "error"),
      h("span", { class: "chips" }, t.services.map(([name, n]) =>
        h("span", { class: "chip" }, h("span", { class: "dot", style: `background:${colorOf(name)}` }),
          name, h("b", {}, n))))));
}

function waterfall(t) {
  const pct = (us) => (100 * us) / t.duration;
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const box = h("section", { class: "panel waterfall" });
  box.append(h("div", { class: "wf-head" },
    h("div", { class: "label-cell" }, "Service & operation"),
    h("div", { class: "ticks" }, ticks.map((f, i) =>
      h("div", { class: `tick${i === ticks.length - 1 ? " last" : ""}`, style: `left:${f * 100}%` },
        h("span", {}, fmtDuration(f * t.duration)))))));
  const rows = new Map();
  const collapsed = new Set();

  const hidden = (span) => {
    for (let p = span.parent; p; p = p.parent) if (collapsed.has(p.spanID)) return true;
    return false;
  };
  const refresh = () => {
    for (const span of t.spans) {
      const r = rows.get(span.spanID);
      const hide = hidden(span);
      r.row.style.display = hide ? "none" : "";
      if (r.detail) r.detail.style.display = hide ? "none" : "";
      r.caret.textContent = span.children.length ? (collapsed.has(span.spanID) ? "▶" : "▼") : "";
    }
  };

  for (const span of t.spans) {
    const net = isNetwork(span);
    const err = isError(span);
    const color = colorOf(span.service);
    const left = pct(span.startTime - t.start);
    const width = pct(span.duration);
    const code = statusCode(span);
    const caret = h("button", {
      class: `caret${span.children.length ? "" : " empty"}`, type: "button", title: "collapse / expand",
      onclick: (event) => {
        event.stopPropagation();
        if (collapsed.has(span.spanID)) collapsed.delete(span.spanID); else collapsed.add(span.spanID);
        refresh();
      },
    });
    const labelText = fmtDuration(span.duration) + (code !== undefined ? `  ${code}` : "");
    // the label goes right of the bar; near the end, inside a wide bar or left of a narrow one
    let label;
    if (left + width <= 82) {
      label = h("span", { class: "bar-label", style: `left:${left + width + 0.5}%` }, labelText);
    } else if (width > 14) {
      label = h("span", { class: "bar-label inside", style: `right:calc(${100 - left - width}% + 3px)` }, labelText);
    } else {
      label = h("span", { class: "bar-label", style: `right:${100 - left + 0.5}%` }, labelText);
    }
    const row = h("div", {
      class: `wf-row${net ? " net" : ""}${err ? " error" : ""}`,
      title: `${span.service}: ${span.operationName} (${fmtDuration(span.duration)})`,
    },
      h("div", { class: "label-cell" },
        h("span", { class: "indent", style: `width:${span.depth * 16 + 6}px` }),
        caret,
        h("span", { class: `svc-strip${net ? " net" : ""}`, style: `background-color:${color}` }),
        h("span", { class: "svc-name" }, span.service),
        h("span", { class: "op" }, span.operationName),
        net ? h("span", { class: "badge badge-net" }, "net") : null,
        err ? h("span", { class: "err-icon", title: "error" }, "!") : null),
      h("div", { class: "bar-cell" },
        ticks.slice(1, -1).map((f) => h("span", { class: "grid-line", style: `left:${f * 100}%` })),
        h("span", {
          class: `bar ${net ? "net" : "app"}${err ? " error" : ""}`,
          style: `left:${left}%;width:${width}%;${net ? "" : `background:${color}`}`,
        }),
        label));
    const entry = { row, caret, detail: null };
    row.addEventListener("click", () => {
      const url = new URL(location.href);
      if (entry.detail) {
        entry.detail.remove();
        entry.detail = null;
        row.classList.remove("open");
        url.searchParams.delete("span");
      } else {
        entry.detail = detailPanel(span, t);
        row.after(entry.detail);
        row.classList.add("open");
        url.searchParams.set("span", span.spanID);
      }
      history.replaceState(null, "", url);
    });
    rows.set(span.spanID, entry);
    box.append(row);
  }
  refresh();
  const wanted = new URLSearchParams(location.search).get("span");
  if (wanted && rows.has(wanted)) {
    rows.get(wanted).row.click();
    requestAnimationFrame(() => rows.get(wanted).row.scrollIntoView({ block: "nearest" }));
  }
  return box;
}

function kvTable(items, highlight) {
  if (!items || !items.length) return h("p", { class: "muted" }, "none");
  return h("table", { class: "kv" }, h("tbody", {}, items.map((kv) =>
    h("tr", { class: highlight && highlight(kv) ? "hl" : null },
      h("td", {}, kv.key),
      h("td", {}, typeof kv.value === "string" ? kv.value : JSON.stringify(kv.value),
        kv.type !== "string" ? h("span", { class: "t" }, kv.type) : null)))));
}

function detailPanel(span, t) {
  const process = t.trace.processes[span.processID];
  const errTag = (kv) => ["error", "otel.status_code", "otel.status_description"].includes(kv.key) &&
    (kv.value === true || kv.value === "true" || kv.value === "ERROR" || kv.key === "otel.status_description");
  const logs = span.logs.length
    ? span.logs.map((log) => h("div", { class: "log" },
      h("div", { class: "log-time" }, `+${fmtDuration(log.timestamp - t.start)}`),
      kvTable(log.fields)))
    : h("p", { class: "muted" }, "none");
  const links = span.references.filter((r) => r.refType !== "CHILD_OF");
  return h("div", { class: "detail", onclick: (e) => e.stopPropagation() },
    h("div", { class: "detail-title" }, svcLabel(span.service), h("span", { class: "op" }, span.operationName),
      isNetwork(span) ? h("span", { class: "badge badge-net" }, "network · envoy") : null,
      isError(span) ? h("span", { class: "badge badge-error" }, h("span", { class: "err-icon" }, "!"), "error") : null,
      h("span", { class: "muted" }, `starts at +${fmtDuration(span.startTime - t.start)}, takes ${fmtDuration(span.duration)}`)),
    h("div", { class: "detail-grid" },
      h("div", {}, h("h4", {}, `Tags (${span.tags.length})`), kvTable(span.tags, errTag)),
      h("div", {},
        h("h4", {}, "Process ", h("span", { class: "name" }, process.serviceName)), kvTable(process.tags),
        h("h4", { style: "margin-top:12px" }, `Logs (${span.logs.length})`), logs)),
    h("div", { class: "ids" }, `span ${span.spanID}`,
      span.parent ? ` · parent ${span.parent.spanID}` : (span.references.some((r) => r.refType === "CHILD_OF") ? " · parent not in the store" : " · root"),
      links.map((r) => ` · follows ${r.traceID}/${r.spanID}`)));
}

// -- routing -----------------------------------------------------------------------------

function route() {
  const m = location.pathname.match(/^\/trace\/([0-9a-fA-F]+)\/?$/);
  if (m) tracePage(m[1].toLowerCase());
  else searchPage();
}

document.getElementById("goto").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("goto-id");
  const id = input.value.trim().toLowerCase();
  if (!/^[0-9a-f]{1,32}$/.test(id)) {
    input.setCustomValidity("a trace id is up to 32 hex digits");
    input.reportValidity();
    return;
  }
  input.setCustomValidity("");
  history.pushState(null, "", `/trace/${id}`);
  route();
});
window.addEventListener("popstate", route);
route();
