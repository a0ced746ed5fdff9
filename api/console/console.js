// The execution console. Everything shown comes from the API with the operator's token
// (kept in this tab's sessionStorage, sent only as an Authorization header). Data goes into
// the page through textContent and createElement, never parsed as markup.
"use strict";

(function () {
  const TOKEN_KEY = "ee.console.token";
  const RANK = { viewer: 0, trader: 1, admin: 2 };
  const MAX_ROWS = 200;
  const HOUR_MS = 3600 * 1000;
  const SVG = "http://www.w3.org/2000/svg";
  // Each control, the weakest role that may use it, and what its dialog says.
  const ACTIONS = [
    { id: "halt", label: "Halt", role: "trader", path: "/halt", style: "stop",
      title: "Halt trading", confirm: "Halt trading",
      text: "Nothing is sent to the terminal after this; executions not yet sent are rejected." },
    { id: "reduce", label: "Reduce-only", role: "trader", path: "/reduce-only", style: "warn",
      title: "Reduce-only", confirm: "Go reduce-only",
      text: "Only orders that reduce an open position are sent; new exposure is refused." },
    { id: "flatten", label: "Flatten", role: "trader", path: "/flatten", style: "stop", symbol: true,
      title: "Flatten positions", confirm: "Flatten",
      text: "Closes the open positions (every symbol, or the one given) at market." },
    { id: "resume", label: "Resume", role: "admin", path: "/resume", style: "go",
      title: "Resume trading", confirm: "Resume trading",
      text: "Trading starts again only after a successful reconciliation with the terminal." },
  ];

  const $ = (id) => document.getElementById(id);
  let token = null;
  let role = null;
  let streamAbort = null;
  let streamGeneration = 0;
  let timers = [];
  let pendingAction = null;
  const executions = new Map(); // id -> row, what the live list shows
  const lastHour = new Map(); // id -> row, what the charts draw
  let chartsQueued = false;

  // --- small DOM helpers ------------------------------------------------------------
  function el(tag, props, children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null) continue;
        if (key === "text") node.textContent = String(value);
        else if (key === "class") node.className = value;
        else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, String(value));
      }
    }
    for (const child of children || []) node.append(child);
    return node;
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function show(node, visible) { node.hidden = !visible; }

  // --- formatting ---------------------------------------------------------------------
  const ms = (value) => (value === null || value === undefined ? null : Date.parse(value));
  function utc(value, withDate) {
    const t = typeof value === "number" ? value : ms(value);
    if (t === null || Number.isNaN(t)) return "—";
    const iso = new Date(t).toISOString();
    return withDate ? iso.replace("T", " ").slice(0, 23) : iso.slice(11, 23);
  }
  function num(value, digits) {
    if (value === null || value === undefined) return "—";
    return Number(value).toLocaleString("en-US", { minimumFractionDigits: digits || 0, maximumFractionDigits: digits === undefined ? 5 : digits });
  }
  function between(start, end) {
    const a = ms(start), b = ms(end);
    return a === null || b === null ? null : Math.max(0, b - a);
  }
  // "exec_" and 12 hex digits tell executions apart on a desk; the title holds the rest.
  const shortId = (id) => (id.length > 17 ? id.slice(0, 17) + "…" : id);
  const side = (direction) => (direction > 0 ? "BUY" : direction < 0 ? "SELL" : "—");

  // --- the API ------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  async function errorText(response) {
    try {
      const body = await response.json();
      return body.message || JSON.stringify(body);
    } catch (_) {
      return response.statusText || "HTTP " + response.status;
    }
  }
  async function api(path, options) {
    const opts = options || {};
    const headers = { Authorization: "Bearer " + token, Accept: opts.accept || "application/json" };
    let body;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    let response;
    try {
      response = await fetch(path, { method: opts.method || "GET", headers, body, cache: "no-store", signal: opts.signal });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "The engine does not answer (" + error.message + ").");
    }
    if (response.status === 401 && !opts.signingIn) {
      signOut("Your token is no longer accepted: sign in again.");
    }
    if (!response.ok && !(opts.okStatuses || []).includes(response.status)) {
      throw new ApiError(response.status, await errorText(response));
    }
    return response;
  }

  // --- sign-in ------------------------------------------------------------------------
  async function signIn(candidate) {
    token = candidate;
    const error = $("sign-in-error");
    show(error, false);
    let who;
    try {
      who = await (await api("/whoami", { signingIn: true })).json();
    } catch (e) {
      token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      error.textContent = e.status === 401
        ? "This token is not valid: the engine refused it (401). Check the token and try again."
        : "Could not sign in: " + e.message;
      show(error, true);
      $("token").focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, candidate);
    role = who.role;
    $("who-role").textContent = role;
    $("who-role").className = "role " + role;
    $("who-id").textContent = who.identity;
    show($("who"), true);
    show($("sign-in"), false);
    show($("console"), true);
    document.body.dataset.role = role;
    buildControls();
    start();
  }

  function signOut(message) {
    token = null;
    role = null;
    sessionStorage.removeItem(TOKEN_KEY);
    streamGeneration += 1;
    if (streamAbort) streamAbort.abort();
    timers.forEach(clearInterval);
    timers = [];
    executions.clear();
    lastHour.clear();
    clear($("execution-rows"));
    clear($("controls"));
    delete document.body.dataset.role;
    show($("console"), false);
    show($("who"), false);
    show($("state-badge"), false);
    show($("sign-in"), true);
    $("token").value = "";
    const error = $("sign-in-error");
    error.textContent = message || "";
    show(error, Boolean(message));
    for (const dialog of [$("action-dialog"), $("detail-dialog")]) if (dialog.open) dialog.close();
  }

  function start() {
    refreshState();
    refreshHealth();
    refreshLastHour();
    openStream();
    timers.push(setInterval(refreshState, 2000));
    timers.push(setInterval(refreshHealth, 5000));
    timers.push(setInterval(refreshLastHour, 60000));
  }

  // --- trading state and its controls -------------------------------------------------
  function buildControls() {
    const box = $("controls");
    clear(box);
    for (const action of ACTIONS) {
      if (RANK[role] < RANK[action.role]) continue; // absent, not merely disabled
      box.append(el("button", {
        id: "action-" + action.id, type: "button", class: "btn " + action.style,
        text: action.label, onclick: () => openAction(action),
      }));
    }
  }

  async function refreshState() {
    try {
      const state = await (await api("/trading-state")).json();
      renderState([{ scope: "Firm-wide", ...state }]);
      // With several accounts /health names them: one row each (a firm-wide halt, reduce-only
      // or resume sets every account's state, so each row tells the whole story).
      const health = await (await api("/health", { okStatuses: [503] })).json();
      const names = Object.keys(health.accounts || {});
      if (names.length) {
        const rows = [];
        for (const name of names) {
          const each = await (await api("/trading-state?account=" + encodeURIComponent(name))).json();
          rows.push({ scope: name, ...each });
        }
        renderState(rows);
      }
    } catch (_) { /* the health panel says why */ }
  }

  // One row per scope: the firm-wide switch with one account, else one row per account.
  function renderState(rows) {
    const body = $("state-rows");
    clear(body);
    for (const row of rows) {
      body.append(el("tr", { "data-scope": row.scope }, [
        el("td", { text: row.scope }),
        el("td", { class: "state-text-" + row.state, "data-field": "state", text: row.state }),
        el("td", { text: row.changed_at ? utc(row.changed_at, true) : "—" }),
        el("td", { class: "mono", text: row.changed_by || "—" }),
        el("td", { class: "wrap", "data-field": "reason", text: row.reason || "—" }),
      ]));
    }
    const firm = rows[0];
    const badge = $("state-badge");
    badge.textContent = firm.state;
    badge.className = "badge state-" + firm.state;
    show(badge, true);
  }

  function openAction(action) {
    pendingAction = action;
    $("action-title").textContent = action.title;
    $("action-text").textContent = action.text;
    $("action-confirm").textContent = action.confirm;
    $("action-confirm").className = "btn " + (action.id === "resume" ? "primary" : "danger");
    $("action-reason").value = "";
    $("action-symbol").value = "";
    show($("action-symbol-row"), Boolean(action.symbol));
    show($("action-error"), false);
    $("action-dialog").showModal();
    $("action-reason").focus();
  }

  async function confirmAction(event) {
    event.preventDefault();
    const action = pendingAction;
    if (!action) return;
    const reason = $("action-reason").value.trim();
    const errorBox = $("action-error");
    if (!reason) {
      errorBox.textContent = "A reason is required: it is journaled with your identity.";
      show(errorBox, true);
      return;
    }
    const body = { reason };
    const symbol = $("action-symbol").value.trim();
    if (action.symbol && symbol) body.symbol = symbol;
    const button = $("action-confirm");
    button.disabled = true;
    try {
      const answer = await (await api(action.path, { method: "POST", body })).json();
      $("action-dialog").close();
      const result = $("action-result");
      const done = action.label + " done by " + $("who-id").textContent + " at " + utc(Date.now()) + " UTC";
      // A flatten answers with its report; the others with the new state, shown above.
      result.textContent = answer && answer.state ? done : done + "\n" + JSON.stringify(answer, null, 2);
      show(result, true);
      if (answer && answer.state) renderState([{ scope: "Firm-wide", ...answer }]);
      refreshState();
      refreshHealth();
    } catch (e) {
      errorBox.textContent = action.label + " failed" + (e.status ? " (" + e.status + ")" : "") + ": " + e.message;
      show(errorBox, true);
    } finally {
      button.disabled = false;
    }
  }

  // --- health -------------------------------------------------------------------------
  async function refreshHealth() {
    let report;
    try {
      report = await (await api("/health", { okStatuses: [503] })).json();
    } catch (e) {
      report = { status: "degraded", error: e.message };
    }
    renderHealth(report);
  }

  function renderHealth(report) {
    const status = $("health-status");
    status.textContent = report.status || "unknown";
    status.className = "pill " + (report.status === "ok" ? "ok" : "degraded");
    const detail = report.detail || {};
    const broker = detail.broker || report.broker || {};
    const database = detail.database || report.database || {};
    const checkpoint = detail.journal_checkpoint || {};
    const list = $("health");
    clear(list);
    const item = (label, value, cls) => {
      list.append(el("dt", { text: label }), el("dd", { class: cls, text: value }));
    };
    if (report.error) item("Engine", report.error, "bad");
    const connected = broker.connected;
    item("Terminal", connected === true ? (broker.terminal_answering === false ? "connected, not answering" : "connected")
      : connected === false ? "disconnected" + (broker.disconnected_seconds ? " for " + num(broker.disconnected_seconds, 1) + " s" : "") : "not checked yet",
      connected === true && broker.terminal_answering !== false ? "good" : connected === false ? "bad" : "warn-text");
    item("Database", database.ok ? "ok" : "down", database.ok ? "good" : "bad");
    if (database.journal_error) item("Journal writes", String(database.journal_error), "bad");
    item("Journal head", checkpoint.sequence ? "#" + checkpoint.sequence + " checkpointed " + utc(checkpoint.at, true) : "no checkpoint yet");
    item("In flight", String(report.executions_in_flight ?? "—"));
    if (detail.restarts !== undefined) item("Restarts", detail.restarts + " (" + (detail.restarts_in_window ?? 0) + " in window, limit " + (detail.restart_intensity || "—") + ")", detail.escalated ? "bad" : "");
    item("Version", report.version || "—");
    const actors = $("actor-rows");
    clear(actors);
    const described = detail.actors || {};
    for (const [name, state] of Object.entries(report.actors || {})) {
      const info = described[name] || {};
      actors.append(el("tr", {}, [
        el("td", { text: name }),
        el("td", { class: state === "alive" ? "good" : "bad", text: state }),
        el("td", { class: "num", text: info.restarts ?? "—" }),
        el("td", { class: "wrap", text: info.last_failure || "" }),
      ]));
    }
  }

  // --- live executions ----------------------------------------------------------------
  async function openStream() {
    const generation = ++streamGeneration;
    while (token && generation === streamGeneration) {
      streamAbort = new AbortController();
      try {
        const response = await api("/executions/stream", { accept: "text/event-stream", signal: streamAbort.signal });
        setLive(true);
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            handleEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch (e) {
        if (e.name === "AbortError") return;
      }
      setLive(false);
      if (!token || generation !== streamGeneration) return;
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }

  function setLive(on) {
    const live = $("live");
    live.textContent = on ? "live" : "reconnecting";
    live.className = "live " + (on ? "on" : "off");
  }

  function handleEvent(text) {
    let name = "message";
    const data = [];
    for (const line of text.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (!data.length) return;
    const payload = JSON.parse(data.join("\n"));
    if (name === "snapshot") {
      executions.clear();
      for (const row of payload) executions.set(row.execution_id, row);
      renderExecutions(new Set());
    } else if (name === "executions") {
      const fresh = new Set();
      for (const row of payload) {
        executions.set(row.execution_id, row);
        lastHour.set(row.execution_id, row);
        fresh.add(row.execution_id);
      }
      renderExecutions(fresh);
      queueCharts();
    }
  }

  function renderExecutions(fresh) {
    const rows = [...executions.values()].sort((a, b) =>
      (ms(b.created_at) - ms(a.created_at)) || (b.execution_id < a.execution_id ? -1 : 1));
    for (const old of rows.slice(MAX_ROWS)) executions.delete(old.execution_id);
    const body = $("execution-rows");
    clear(body);
    for (const row of rows.slice(0, MAX_ROWS)) {
      const label = side(row.direction);
      const units = row.executed_units && row.executed_units !== row.intended_units
        ? num(row.executed_units, 0) + "/" + num(row.intended_units, 0) : num(row.intended_units, 0);
      body.append(el("tr", {
        "data-id": row.execution_id, class: fresh.has(row.execution_id) ? "fresh" : "",
        title: row.rejection_reason ? "Rejected: " + row.rejection_reason : "",
        onclick: () => openDetail(row.execution_id),
      }, [
        el("td", { text: utc(row.created_at) }),
        el("td", { class: "id", title: row.execution_id, text: shortId(row.execution_id) }),
        el("td", { text: row.symbol }),
        el("td", { class: "side-" + label, text: label }),
        el("td", { class: "num", text: units }),
        el("td", { class: "st st-" + row.status, "data-field": "status", text: row.status }),
        el("td", { class: "num", text: num(row.fill_price) }),
        el("td", { class: "num", text: num(row.slippage_pips, 1) }),
        el("td", { class: "num", text: num(between(row.created_at, row.submitted_at), 0) }),
        el("td", { class: "num", text: num(between(row.submitted_at, row.filled_at), 0) }),
      ]));
    }
    show($("executions-empty"), rows.length === 0);
  }

  async function openDetail(id) {
    const dialog = $("detail-dialog");
    $("detail-title").textContent = "Execution " + id;
    clear($("detail-fields"));
    clear($("event-rows"));
    dialog.showModal();
    try {
      const path = "/executions/" + encodeURIComponent(id);
      const [record, events] = await Promise.all([
        api(path).then((r) => r.json()), api(path + "/events").then((r) => r.json()),
      ]);
      const fields = $("detail-fields");
      const nested = [];
      for (const [key, value] of Object.entries(record)) {
        if (value !== null && typeof value === "object") nested.push([key, value]);
        else fields.append(el("dt", { text: key }), el("dd", { text: value === null ? "—" : String(value) }));
      }
      for (const [key, value] of nested) {
        fields.append(el("dt", { class: "full", text: key }),
          el("dd", { class: "full" }, [el("pre", { class: "result compact", text: JSON.stringify(value) })]));
      }
      const rows = $("event-rows");
      for (const event of events) {
        rows.append(el("tr", {}, [
          el("td", { class: "num", text: event.sequence }),
          el("td", { text: utc(event.engine_time_us / 1000, true) }),
          el("td", { text: event.event_type }),
          el("td", { class: "wrap" }, [el("div", { class: "payload", text: JSON.stringify(event.payload) })]),
        ]));
      }
    } catch (e) {
      $("detail-fields").append(el("dt", { text: "Error" }), el("dd", { class: "bad", text: e.message }));
    }
  }

  // --- charts of the last hour ----------------------------------------------------------
  async function refreshLastHour() {
    const end = new Date(Date.now() + 60000);
    const startAt = new Date(end.getTime() - HOUR_MS - 60000);
    const query = new URLSearchParams({ start_date: startAt.toISOString(), end_date: end.toISOString(), format: "json" });
    try {
      const rows = await (await api("/audit_trail?" + query)).json();
      lastHour.clear();
      for (const row of rows) lastHour.set(row.execution_id, row);
    } catch (e) {
      $("charts-note").textContent = "charts: " + e.message;
    }
    queueCharts();
  }

  function queueCharts() {
    if (chartsQueued) return;
    chartsQueued = true;
    setTimeout(() => { chartsQueued = false; drawCharts(); }, 500);
  }

  function frame(box) {
    clear(box);
    const width = Math.max(240, Math.round(box.clientWidth || 400));
    const height = 110;
    const root = svg("svg", { viewBox: "0 0 " + width + " " + height, preserveAspectRatio: "none", role: "img" });
    box.append(root);
    return { root, width, height, left: 34, right: width - 6, top: 8, bottom: height - 16 };
  }
  function empty(f, text) {
    f.root.append(svg("text", { x: f.width / 2, y: f.height / 2, "text-anchor": "middle" }, text));
  }
  function axes(f, maxLabel, minLabel) {
    f.root.append(svg("line", { class: "axis", x1: f.left, y1: f.bottom, x2: f.right, y2: f.bottom }));
    f.root.append(svg("line", { class: "axis", x1: f.left, y1: f.top, x2: f.left, y2: f.bottom }));
    f.root.append(svg("text", { x: f.left - 3, y: f.top + 8, "text-anchor": "end" }, maxLabel));
    f.root.append(svg("text", { x: f.left - 3, y: f.bottom, "text-anchor": "end" }, minLabel));
  }

  function drawCharts() {
    const now = Date.now();
    const rows = [...lastHour.values()].filter((r) => now - ms(r.created_at) <= HOUR_MS);
    $("charts-note").textContent = rows.length + " executions";
    drawSlippage(rows.map((r) => r.slippage_pips).filter((v) => v !== null && v !== undefined));
    drawLatency(rows, now);
    drawOutcomes(rows, now);
  }

  function drawSlippage(values) {
    const f = frame($("chart-slippage"));
    if (!values.length) return empty(f, "no fills in the last hour");
    let lo = Math.min(...values), hi = Math.max(...values);
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    const bins = 16, counts = new Array(bins).fill(0);
    for (const v of values) counts[Math.min(bins - 1, Math.floor((v - lo) / (hi - lo) * bins))] += 1;
    const peak = Math.max(...counts);
    axes(f, String(peak), "0");
    const w = (f.right - f.left) / bins;
    counts.forEach((count, i) => {
      const h = (f.bottom - f.top) * count / peak;
      f.root.append(svg("rect", { class: "bar", x: f.left + i * w + 1, y: f.bottom - h, width: Math.max(1, w - 2), height: h }));
    });
    f.root.append(svg("text", { x: f.left, y: f.height - 3 }, num(lo, 1)));
    f.root.append(svg("text", { x: f.right, y: f.height - 3, "text-anchor": "end" }, num(hi, 1)));
    const sorted = [...values].sort((a, b) => a - b);
    const p95 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))];
    f.root.append(svg("text", { x: (f.left + f.right) / 2, y: f.height - 3, "text-anchor": "middle" }, "n=" + values.length + " p95 " + num(p95, 2)));
  }

  function drawLatency(rows, now) {
    const f = frame($("chart-latency"));
    const points = [];
    for (const r of rows) {
      const send = between(r.created_at, r.submitted_at);
      const fill = between(r.submitted_at, r.filled_at);
      if (send !== null) points.push({ t: ms(r.created_at), v: send, cls: "send" });
      if (fill !== null) points.push({ t: ms(r.created_at), v: fill, cls: "fill" });
    }
    if (!points.length) return empty(f, "nothing sent in the last hour");
    const sorted = points.map((p) => p.v).sort((a, b) => a - b);
    const top = Math.max(1, sorted[Math.floor((sorted.length - 1) * 0.99)]);
    axes(f, num(top, 0) + "ms", "0");
    for (const p of points) {
      const x = f.left + (f.right - f.left) * (1 - (now - p.t) / HOUR_MS);
      const y = f.bottom - (f.bottom - f.top) * Math.min(1, p.v / top);
      f.root.append(svg("circle", { class: p.cls, cx: x.toFixed(1), cy: y.toFixed(1), r: 2 }));
    }
    f.root.append(svg("text", { x: f.left, y: f.height - 3 }, "-60 min"));
    f.root.append(svg("text", { x: f.right, y: f.height - 3, "text-anchor": "end" }, "now"));
  }

  function drawOutcomes(rows, now) {
    const f = frame($("chart-outcomes"));
    const minutes = Array.from({ length: 60 }, () => ({ ok: 0, bad: 0, other: 0 }));
    for (const r of rows) {
      const index = 59 - Math.floor((now - ms(r.created_at)) / 60000);
      if (index < 0 || index > 59) continue;
      const kind = r.status === "FILLED" || r.status === "PARTIALLY_FILLED" ? "ok"
        : r.status === "REJECTED" || r.status === "EXPIRED" ? "bad" : "other";
      minutes[index][kind] += 1;
    }
    const peak = Math.max(0, ...minutes.map((m) => m.ok + m.bad + m.other));
    if (!peak) return empty(f, "no executions in the last hour");
    axes(f, String(peak), "0");
    const w = (f.right - f.left) / 60;
    minutes.forEach((m, i) => {
      let y = f.bottom;
      for (const kind of ["ok", "bad", "other"]) {
        if (!m[kind]) continue;
        const h = (f.bottom - f.top) * m[kind] / peak;
        y -= h;
        f.root.append(svg("rect", { class: kind, x: f.left + i * w + 0.5, y, width: Math.max(1, w - 1), height: h }));
      }
    });
    f.root.append(svg("text", { x: f.left, y: f.height - 3 }, "-60 min"));
    f.root.append(svg("text", { x: f.right, y: f.height - 3, "text-anchor": "end" }, "now"));
  }

  // --- audit export -------------------------------------------------------------------
  async function exportAudit(event) {
    event.preventDefault();
    const message = $("audit-message");
    const from = $("audit-start").value, to = $("audit-end").value;
    if (!from || !to) { message.textContent = "Pick both dates."; return; }
    const end = new Date(Date.parse(to + "T00:00:00Z") + 86400000); // "to" is inclusive
    const format = $("audit-format").value;
    const query = new URLSearchParams({ start_date: from, end_date: end.toISOString().slice(0, 10), format });
    message.textContent = "Exporting…";
    try {
      const response = await api("/audit_trail?" + query, { accept: format === "csv" ? "text/csv" : "application/json" });
      const blob = await response.blob();
      const link = el("a", { href: URL.createObjectURL(blob), download: "audit_" + from + "_" + to + "." + format });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      message.textContent = "Downloaded " + Math.round(blob.size / 1024) + " KiB.";
    } catch (e) {
      message.textContent = "Export failed: " + e.message;
    }
  }

  // --- wiring -------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("sign-in-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token").value.trim();
      if (value) signIn(value);
    });
    $("sign-out").addEventListener("click", () => signOut(""));
    $("action-form").addEventListener("submit", confirmAction);
    $("action-cancel").addEventListener("click", () => $("action-dialog").close());
    $("detail-close").addEventListener("click", () => $("detail-dialog").close());
    $("audit-form").addEventListener("submit", exportAudit);
    const today = new Date().toISOString().slice(0, 10);
    $("audit-start").value = today;
    $("audit-end").value = today;
    const tick = () => { $("clock").textContent = new Date().toISOString().slice(11, 19) + " UTC"; };
    tick();
    setInterval(tick, 1000);
    window.addEventListener("resize", queueCharts);
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) signIn(saved);
    else $("token").focus();
  });
})();
