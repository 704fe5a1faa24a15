// The live dashboard: one WebSocket to /ws/live/, a snapshot, then sequenced deltas.
// Plain ES module, no build step. Everything shown is set with textContent.

const TOPICS = ["components", "events", "queues", "workers", "breakers", "healing"];
// On these topics only the latest delta per key is sent, so their seqs may skip.
const COALESCED = new Set(["queues", "metrics"]);
const FEED_MAX = 100;
const SILENCE_MS = 45000; // the server pings every 20 s
const SAMPLE_STALE_MS = 10000; // beat samples queues and workers every 2 s
const QUEUE_HISTORY = 150;
const TASKS_STALE_MIN = 2;
const BACKOFF_MS = [500, 30000];
const NO_RETRY = new Map([
  [4401, "You are signed out. Reload the page to sign in again."],
  [4403, "Your account may not view the console."],
]);

const root = document.getElementById("ops-dashboard");
const connection = document.getElementById("ops-connection");
const banner = document.getElementById("ops-stale");
const grid = document.getElementById("ops-components");
const feed = document.getElementById("ops-events");
const queueRows = document.querySelector("#ops-queues tbody");
const workerList = document.getElementById("ops-workers");
const sampleLine = document.getElementById("ops-sample");
const taskRows = document.querySelector("#ops-tasks tbody");
const taskMinute = document.getElementById("ops-tasks-minute");
const breakerRows = document.querySelector("#ops-breakers tbody");
const healingList = document.getElementById("ops-healing");

const state = {
  socket: null,
  attempt: 0,
  lastMessage: 0,
  seq: {},
  tiles: new Map(),
  feed: [],
  retryTimer: null,
  resyncing: false,
  queues: new Map(),
  workers: new Map(),
  sampledAt: null,
  tasks: null,
  breakers: new Map(),
  healing: new Map(),
};

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "";
}

function ago(iso) {
  if (!iso) return "never checked";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 90) return `for ${seconds} s`;
  if (seconds < 5400) return `for ${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `for ${Math.round(seconds / 3600)} h`;
  return `for ${Math.round(seconds / 86400)} d`;
}

function setConnection(kind, text) {
  connection.dataset.state = kind;
  connection.textContent = text;
  root.dataset.connection = kind;
}

function showStale(text) {
  root.dataset.stale = "true";
  banner.textContent = text;
  banner.hidden = false;
}

function clearStale() {
  delete root.dataset.stale;
  banner.hidden = true;
  banner.textContent = "";
}

// --- components --------------------------------------------------------------
function sparkline(values) {
  const width = 120;
  const height = 28;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "ops-spark");
  svg.setAttribute("aria-hidden", "true");
  if (values.length < 2) return svg;
  const max = Math.max(...values) || 1;
  const step = width / (values.length - 1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  return svg;
}

function renderTile(tile) {
  const item = el("li", { "data-slug": tile.slug });
  const link = el("a", { class: "ops-tile", href: tile.url, "data-state": tile.state });
  link.append(el("span", { class: "ops-tile-name" }, tile.name));
  link.append(el("span", { class: "ops-tile-state" }, tile.state));
  link.append(el("span", { class: "ops-tile-since", "data-since": tile.since || "" }, ago(tile.since)));
  const latency = tile.latency_ms == null ? "–" : `${Math.round(tile.latency_ms)} ms`;
  link.append(el("span", { class: "ops-tile-latency" }, latency));
  link.append(sparkline(tile.latencies || []));
  link.setAttribute("aria-label", `${tile.name}: ${tile.state}, ${ago(tile.since)}, latency ${latency}`);
  item.append(link);
  return item;
}

function renderGrid() {
  const tiles = [...state.tiles.values()].sort((a, b) => (a.group + a.name).localeCompare(b.group + b.name));
  grid.replaceChildren(...tiles.map(renderTile));
  if (!tiles.length) grid.append(el("li", { class: "ops-empty" }, "No components registered yet."));
}

function componentsSnapshot(data) {
  state.tiles = new Map(data.tiles.map((tile) => [tile.slug, tile]));
  renderGrid();
  return data.changes.map(changeItem);
}

function changeItem(change) {
  const tile = state.tiles.get(change.slug);
  return {
    key: `change:${change.slug}:${change.at}`,
    at: change.at,
    text: `${tile ? tile.name : change.slug}: ${change.from_state} → ${change.to_state}`,
    detail: change.message || "",
    url: tile ? tile.url : "",
    trace: change.trace_id || "",
    kind: change.to_state,
  };
}

function componentsDelta(payload, traceId) {
  const tile = state.tiles.get(payload.slug);
  if (!tile) return false; // a new component: only a snapshot knows its name and link
  Object.assign(tile, {
    state: payload.state,
    since: payload.since,
    latency_ms: payload.latency_ms,
    message: payload.message || "",
  });
  if (payload.latency_ms != null) tile.latencies = [...(tile.latencies || []), payload.latency_ms].slice(-30);
  renderGrid();
  addFeed([changeItem({ ...payload, to_state: payload.state, at: payload.since, trace_id: traceId })]);
  return true;
}

// --- events feed ---------------------------------------------------------------
function auditItem(event) {
  const target = event.target ? ` ${event.target}` : "";
  return {
    key: `audit:${event.id}`,
    at: event.at,
    text: `${event.actor} · ${event.action}${target}`,
    detail: event.reason || "",
    url: event.url || "",
    trace: event.trace_id || "",
    kind: "audit",
  };
}

function addFeed(items) {
  const known = new Set(state.feed.map((item) => item.key));
  state.feed = [...items.filter((item) => !known.has(item.key)), ...state.feed]
    .sort((a, b) => Date.parse(b.at) - Date.parse(a.at))
    .slice(0, FEED_MAX);
  renderFeed();
}

function renderFeed() {
  feed.replaceChildren(
    ...state.feed.map((item) => {
      const row = el("li", { "data-kind": item.kind });
      row.append(el("time", { datetime: item.at }, clock(item.at)));
      row.append(item.url ? el("a", { href: item.url }, item.text) : el("span", {}, item.text));
      if (item.trace) {
        const href = `/admin/trace/${encodeURIComponent(item.trace)}/`;
        row.append(el("a", { class: "ops-trace", href, title: "Everything with this trace id" }, "trace"));
      }
      if (item.detail) row.append(el("span", { class: "ops-detail" }, item.detail));
      return row;
    }),
  );
}

// --- queues and workers --------------------------------------------------------
function seconds(value) {
  if (value == null) return "–";
  if (value < 90) return `${value.toFixed(1)} s`;
  return `${Math.round(value / 60)} min`;
}

function renderQueues() {
  const names = [...state.queues.keys()].sort();
  queueRows.replaceChildren(
    ...names.map((name) => {
      const queue = state.queues.get(name);
      const row = el("tr", { "data-queue": name, "data-busy": queue.depth > 0 ? "true" : "false" });
      row.append(el("th", { scope: "row" }, name));
      row.append(el("td", { class: "ops-depth" }, String(queue.depth)));
      row.append(el("td", {}, seconds(queue.oldest_age_s)));
      const trend = el("td");
      trend.append(sparkline(queue.history));
      row.append(trend);
      return row;
    }),
  );
}

function renderWorkers() {
  const names = [...state.workers.keys()].sort();
  workerList.replaceChildren(
    ...names.map((name) => {
      const worker = state.workers.get(name);
      const text = `${name}: ${worker.active}/${worker.concurrency} busy, ${worker.processed} done`;
      return el("li", { "data-worker": name }, text);
    }),
  );
  if (!names.length) workerList.append(el("li", { class: "ops-empty" }, "No worker answers."));
  renderSampleAge();
}

function renderSampleAge() {
  if (state.sampledAt == null) return;
  const age = Date.now() - state.sampledAt * 1000;
  const stale = age > SAMPLE_STALE_MS;
  sampleLine.dataset.stale = stale ? "true" : "false";
  workerList.dataset.stale = stale ? "true" : "false";
  sampleLine.textContent = stale
    ? `No sample for ${Math.round(age / 1000)} s: is any worker running? These figures may be out of date.`
    : `Sampled ${new Date(state.sampledAt * 1000).toLocaleTimeString()}.`;
}

function queuesSnapshot(data) {
  state.sampledAt = data.sampled_at;
  state.queues = new Map(data.queues.map((q) => [q.name, { ...q, history: [q.depth] }]));
  renderQueues();
  renderSampleAge();
  state.tasks = data.tasks;
  renderTasks();
}

// Task outcomes come per whole minute, from the metrics rollups (about a minute late).
function runtime(value) {
  if (value == null) return "–";
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${value.toFixed(1)} s`;
}

function minuteOf(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function renderTasks() {
  const report = state.tasks;
  if (!report || !report.through) {
    taskMinute.textContent = "No task runs rolled up in the last minutes.";
    taskRows.replaceChildren();
    return;
  }
  // A minute rolls up 7-40 s after it ends; older than this, the rollups have stopped.
  const behind = Math.floor((Date.now() - Date.parse(report.through)) / 60000) - 1;
  const stale = behind > TASKS_STALE_MIN;
  taskMinute.dataset.stale = stale ? "true" : "false";
  taskMinute.textContent = stale
    ? `Runs in the minute from ${minuteOf(report.through)}, ${behind} min behind: are the metrics rollups running? Newer runs are not counted here.`
    : `Runs in the minute from ${minuteOf(report.through)}, the newest one rolled up.`;
  const tasks = [...report.tasks].sort((a, b) => a.task.localeCompare(b.task));
  taskRows.replaceChildren(
    ...tasks.map((task) => {
      const last = task.minutes[task.minutes.length - 1];
      const row = el("tr", { "data-task": task.task, "data-failing": last.failed > 0 ? "true" : "false" });
      row.append(el("th", { scope: "row" }, task.task));
      row.append(el("td", { class: "ops-succeeded" }, String(last.succeeded)));
      row.append(el("td", { class: "ops-failed" }, String(last.failed)));
      row.append(el("td", { class: "ops-retried" }, String(last.retried)));
      row.append(el("td", { class: "ops-p95" }, runtime(last.p95_s)));
      const trend = el("td");
      trend.append(sparkline(task.minutes.map((m) => m.succeeded + m.failed + m.retried)));
      row.append(trend);
      return row;
    }),
  );
}

function workersSnapshot(data) {
  state.sampledAt = data.sampled_at;
  state.workers = new Map(data.workers.map((w) => [w.name, w]));
  renderWorkers();
}

function queueDelta(payload) {
  const known = state.queues.get(payload.name);
  const history = [...(known ? known.history : []), payload.depth].slice(-QUEUE_HISTORY);
  state.queues.set(payload.name, { ...payload, history });
  state.sampledAt = payload.sampled_at;
  renderQueues();
  renderSampleAge();
}

function workerDelta(payload, at) {
  state.sampledAt = payload.sampled_at;
  if (payload.gone) {
    state.workers.delete(payload.name);
    addFeed([{ key: `gone:${payload.name}:${at}`, at: new Date(at * 1000).toISOString(), text: `Worker ${payload.name} stopped answering`, detail: "", url: "", trace: "", kind: "unhealthy" }]);
  } else {
    state.workers.set(payload.name, payload);
  }
  renderWorkers();
}

// --- breakers and healing ----------------------------------------------------------
function percent(value) {
  return value == null ? "–" : `${value}%`;
}

function renderBreakers() {
  const names = [...state.breakers.keys()].sort();
  breakerRows.replaceChildren(
    ...names.map((name) => {
      const breaker = state.breakers.get(name);
      const row = el("tr", { "data-breaker": name });
      const head = el("th", { scope: "row" });
      head.append(el("a", { href: breaker.url }, name));
      row.append(head);
      row.append(el("td", { class: "ops-breaker-state", "data-state": breaker.state }, breaker.state));
      row.append(el("td", {}, percent(breaker.failure_rate)));
      row.append(el("td", {}, percent(breaker.slow_rate)));
      row.append(el("td", {}, String(breaker.calls ?? "–")));
      row.append(el("td", {}, breaker.last_transition_at ? clock(breaker.last_transition_at) : "–"));
      return row;
    }),
  );
  if (!names.length) {
    const row = el("tr");
    row.append(el("td", { colspan: "6", class: "ops-empty" }, "No breaker has been used yet."));
    breakerRows.append(row);
  }
}

function breakerDelta(payload) {
  const breaker = state.breakers.get(payload.name);
  if (!breaker) return false; // a new breaker: its link and rates come with a snapshot
  Object.assign(breaker, { state: payload.state, last_transition_at: payload.at });
  renderBreakers();
  addFeed([{ key: `breaker:${payload.name}:${payload.at}`, at: payload.at, text: `breaker ${payload.name}: ${payload.from} → ${payload.state}`, detail: payload.reason || "", url: breaker.url, trace: "", kind: payload.state === "OPEN" || payload.state === "FORCED_OPEN" ? "unhealthy" : "breaker" }]);
  return true;
}

function renderHealing() {
  const slugs = [...state.healing.keys()].sort();
  healingList.replaceChildren(
    ...slugs.map((slug) => {
      const item = state.healing.get(slug);
      const of = item.max_attempts ? ` of ${item.max_attempts}` : "";
      const paused = item.paused ? ", paused" : "";
      const what = item.episode === "needs_human" ? "needs a human" : `healing, attempt ${item.attempts}${of}`;
      return el("li", { "data-slug": slug, "data-episode": item.episode }, `${slug}: ${what}${paused}`);
    }),
  );
  if (!slugs.length) healingList.append(el("li", { class: "ops-empty" }, "Nothing is being healed."));
}

function healingDelta(payload, at) {
  const known = state.healing.get(payload.slug) || {};
  if (payload.episode === "idle") state.healing.delete(payload.slug);
  else state.healing.set(payload.slug, { ...known, ...payload });
  renderHealing();
  const when = new Date(at * 1000).toISOString();
  addFeed([{ key: `heal:${payload.slug}:${payload.event}:${at}`, at: when, text: `healing ${payload.slug}: ${payload.event.replaceAll("_", " ")}`, detail: "", url: "", trace: "", kind: payload.event === "escalated" ? "unhealthy" : "healing" }]);
}

// --- protocol ----------------------------------------------------------------
function send(message) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(message));
}

function onSnapshot(message) {
  state.resyncing = false;
  let items = [];
  for (const [topic, entry] of Object.entries(message.topics)) {
    state.seq[topic] = entry.seq;
    if (entry.error || entry.data == null) continue;
    if (topic === "components") items = items.concat(componentsSnapshot(entry.data));
    if (topic === "events") items = items.concat(entry.data.map(auditItem));
    if (topic === "queues") queuesSnapshot(entry.data);
    if (topic === "workers") workersSnapshot(entry.data);
    if (topic === "breakers") {
      state.breakers = new Map(entry.data.breakers.map((b) => [b.name, b]));
      renderBreakers();
    }
    if (topic === "healing") {
      state.healing = new Map(entry.data.episodes.map((e) => [e.slug, e]));
      renderHealing();
    }
  }
  state.feed = [];
  addFeed(items);
  clearStale();
  setConnection("live", "Live");
}

function resync() {
  state.resyncing = true; // deltas wait for the snapshot that brings us level
  send({ type: "resync" });
}

function onDeltas(message) {
  for (const item of message.items) {
    if (state.resyncing) return;
    const last = state.seq[item.topic] ?? 0;
    if (item.seq <= last) continue; // covered by the snapshot
    if (item.seq !== last + 1 && !COALESCED.has(item.topic)) return resync();
    state.seq[item.topic] = item.seq;
    if (item.topic === "components" && !componentsDelta(item.payload, item.trace_id)) return resync();
    if (item.topic === "events") addFeed([auditItem(item.payload)]);
    if (item.topic === "queues" && item.payload.kind === "task_outcomes") {
      state.tasks = item.payload;
      renderTasks();
    } else if (item.topic === "queues") queueDelta(item.payload);
    if (item.topic === "workers") workerDelta(item.payload, item.at);
    if (item.topic === "breakers" && !breakerDelta(item.payload)) return resync();
    if (item.topic === "healing") healingDelta(item.payload, item.at);
  }
  return undefined;
}

function onMessage(message) {
  switch (message.type) {
    case "snapshot":
      return onSnapshot(message);
    case "deltas":
      return onDeltas(message);
    case "ping":
      return send({ type: "pong" });
    case "status":
      if (message.degraded) {
        setConnection("degraded", "Degraded");
        showStale("The server lost its live feed: what you see may be out of date until it recovers.");
      } else if (message.paused) {
        setConnection("paused", "Paused");
        showStale(`Live updates were switched off by an operator (opsconsole.live.enabled) at ${new Date().toLocaleTimeString()}: what you see is not updated.`);
      }
      return undefined;
    default:
      return undefined;
  }
}

function connect() {
  clearTimeout(state.retryTimer);
  setConnection("connecting", "Connecting…");
  const protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${protocol}//${location.host}${root.dataset.socket}`);
  state.socket = socket;
  socket.addEventListener("open", () => {
    state.attempt = 0;
    state.resyncing = false;
    state.lastMessage = Date.now();
    send({ type: "subscribe", topics: TOPICS });
  });
  socket.addEventListener("message", (event) => {
    state.lastMessage = Date.now();
    onMessage(JSON.parse(event.data));
  });
  socket.addEventListener("close", (event) => {
    if (state.socket === socket) lost(event.code);
  });
}

function lost(code) {
  state.socket = null;
  const at = new Date().toLocaleTimeString();
  if (NO_RETRY.has(code)) {
    setConnection("closed", "Disconnected");
    showStale(`Live updates stopped at ${at}. ${NO_RETRY.get(code)}`);
    return;
  }
  const [base, cap] = BACKOFF_MS;
  const delay = Math.min(cap, base * 2 ** state.attempt) * (0.5 + Math.random() / 2);
  state.attempt += 1;
  setConnection("stale", "Reconnecting…");
  showStale(`Live updates stopped at ${at}; reconnecting in ${Math.ceil(delay / 1000)} s. What you see may be out of date.`);
  state.retryTimer = setTimeout(connect, delay);
}

// A socket that went silent (no ping for 45 s) is dead even if it never closed.
setInterval(() => {
  const socket = state.socket;
  if (socket && socket.readyState === WebSocket.OPEN && Date.now() - state.lastMessage > SILENCE_MS) {
    state.socket = null;
    socket.close();
    lost(1006);
  }
  for (const since of grid.querySelectorAll("[data-since]")) since.textContent = ago(since.dataset.since);
  renderSampleAge();
}, 1000);

connect();
