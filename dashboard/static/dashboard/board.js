// Runboard's live board: one ES module, no build step.
//
// The page arrives rendered with an embedded snapshot; this module keeps it live over
// `ws/board/` (protocol in dashboard/consumers.py). Rules it keeps:
// - a delta applies only when its version is newer than the card shown (duplicates and
//   reordering are harmless); counts are the server's exact totals;
// - every frame says the change-log position it reaches; a reconnect sends the last one
//   (`?after=`) and receives exactly the changes it missed (or a snapshot, when too old);
// - DOM work is batched into one animation frame, whatever the rate of frames;
// - every string from the server goes through textContent, never innerHTML;
// - labels, colours, phases and which actions a state allows come from the server.

import { actionUrl, loginUrl, runUrl } from "./links.js";
import { clock, duration, hover } from "./times.js";

const page = document.getElementById("board-page");
const boardEl = document.getElementById("board");
const toastsEl = document.getElementById("toasts");
const connectionEl = document.getElementById("connection");
const lastUpdateEl = document.getElementById("last-update");
const totalEl = document.getElementById("board-total");
const filterForm = document.getElementById("board-filters");
const pauseButton = document.getElementById("pause-live");
const helpDialog = document.getElementById("help-dialog");
const confirmDialog = document.getElementById("confirm-dialog");
const PAGE_TITLE = document.title;

const MAX_BACKOFF_MS = 30000;
const OFFLINE_AFTER_ATTEMPTS = 6;
const MAX_REMEMBERED_VERSIONS = 20000;

const model = {
  columns: new Map(), // state -> {meta, count, cards: Map(id -> run)}
  where: new Map(), // run id -> state of the column showing it
  versions: new Map(), // run id -> newest version applied
  actions: {},
  permitted: new Set(),
  limit: 50,
  filter: { queue: "", name: "" },
  position: null, // the change-log position the board reflects (from the last frame)
  heartbeat: { per_lease: 3, stale_after_missed: 2 },
  paused: false,
  missedWhilePaused: 0,
};
const dirty = new Set();
const flashed = new Set();
let frameRequested = false;
let lastUpdate = null;

// -- small helpers ------------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

// Heartbeat and progress belong to the stint in the current state: after a retry the run
// keeps the previous attempt's values until its executor reports again.
function freshHeartbeat(run) {
  return Boolean(run.heartbeat_at) && Date.parse(run.heartbeat_at) >= Date.parse(run.state_changed_at);
}

function newestFirst(a, b) {
  if (a.state_changed_at === b.state_changed_at) return a.id < b.id ? 1 : -1;
  return a.state_changed_at < b.state_changed_at ? 1 : -1;
}

function remember(id, version) {
  model.versions.delete(id);
  model.versions.set(id, version);
  if (model.versions.size > MAX_REMEMBERED_VERSIONS) {
    model.versions.delete(model.versions.keys().next().value);
  }
}

function runListUrl(state) {
  const params = new URLSearchParams({ state });
  if (model.filter.queue) params.set("queue", model.filter.queue);
  if (model.filter.name) params.set("name", model.filter.name);
  return `${page.dataset.runList}?${params}`;
}

// -- the model ----------------------------------------------------------------------------

function applySnapshot(snapshot) {
  model.actions = snapshot.actions;
  model.permitted = new Set(snapshot.permitted_actions);
  model.limit = snapshot.limit;
  model.filter = snapshot.filter;
  model.position = snapshot.position || null;
  if (snapshot.heartbeat) model.heartbeat = snapshot.heartbeat;
  model.columns.clear();
  model.where.clear();
  model.versions.clear();
  for (const column of snapshot.columns) {
    const cards = new Map();
    for (const run of column.cards) {
      cards.set(run.id, run);
      model.where.set(run.id, column.state);
      remember(run.id, run.version);
    }
    model.columns.set(column.state, { meta: column, count: column.count, cards });
    dirty.add(column.state);
  }
  schedule();
}

function applyEvent(event) {
  if (event.version <= (model.versions.get(event.id) || 0)) return; // stale or duplicate
  remember(event.id, event.version);
  const run = event.run;
  if (!run) {
    // The run was deleted (finished-run retention): its card goes.
    const shownIn = model.where.get(event.id);
    if (shownIn) {
      model.columns.get(shownIn).cards.delete(event.id);
      model.where.delete(event.id);
      dirty.add(shownIn);
    }
    return;
  }
  if (event.kind === "transition" && event.to === run.state) {
    run.moved_by = event.actor || "";
    run.moved_because = event.reason || "";
  } else {
    const previous = model.where.has(event.id)
      ? model.columns.get(model.where.get(event.id)).cards.get(event.id) : null;
    if (previous && previous.state === run.state) {
      run.moved_by = previous.moved_by;
      run.moved_because = previous.moved_because;
    }
  }
  const shownIn = model.where.get(event.id);
  if (shownIn) {
    model.columns.get(shownIn).cards.delete(event.id);
    model.where.delete(event.id);
    dirty.add(shownIn);
  }
  const column = model.columns.get(run.state);
  if (!column) return;
  column.cards.set(run.id, run);
  model.where.set(run.id, run.state);
  dirty.add(run.state);
  flashed.add(run.id);
  if (column.cards.size > model.limit) {
    const keep = [...column.cards.values()].sort(newestFirst).slice(0, model.limit);
    const kept = new Set(keep.map((r) => r.id));
    for (const id of column.cards.keys()) {
      if (!kept.has(id)) {
        column.cards.delete(id);
        model.where.delete(id);
      }
    }
  }
}

function applyDeltas(frame) {
  if (frame.position) model.position = frame.position;
  if (frame.permitted_actions) {
    // A resumed connection: permissions may have changed while we were away.
    model.permitted = new Set(frame.permitted_actions);
    for (const state of model.columns.keys()) dirty.add(state);
  }
  for (const event of frame.deltas) applyEvent(event);
  document.dispatchEvent(new CustomEvent("runboard:deltas", { detail: frame })); // strip.js
  for (const [state, count] of Object.entries(frame.counts || {})) {
    const column = model.columns.get(state);
    if (column && column.count !== count) {
      column.count = count;
      dirty.add(state);
    }
  }
  schedule();
}

// -- rendering (once per animation frame) ---------------------------------------------------

function schedule() {
  if (!frameRequested) {
    frameRequested = true;
    requestAnimationFrame(render);
  }
}

function render() {
  frameRequested = false;
  for (const state of [...dirty]) {
    if (renderColumn(state)) dirty.delete(state);
  }
  flashed.clear();
  let total = 0;
  for (const column of model.columns.values()) total += column.count;
  totalEl.textContent = `${total.toLocaleString()} total`;
  renderTitle();
  tick();
}

// "(3 failed) Board · Runboard": the tab says when something needs a look.
function renderTitle() {
  const alerts = [];
  for (const column of model.columns.values()) {
    if (column.meta.alerts && column.count > 0) {
      alerts.push(`${column.count.toLocaleString()} ${column.meta.label.toLowerCase()}`);
    }
  }
  document.title = alerts.length ? `(${alerts.join(", ")}) ${PAGE_TITLE}` : PAGE_TITLE;
}

// A card under the pointer or the keyboard focus stays where it is: its column is redrawn
// once the pointer or focus leaves it (so a button never moves under a click).
function heldColumn(list) {
  return list.querySelector(".card:hover, .card:focus-within") !== null;
}

function renderColumn(state) {
  const column = model.columns.get(state);
  const section = boardEl.querySelector(`.column[data-state="${CSS.escape(state)}"]`);
  if (!column || !section) return true;
  const count = section.querySelector("[data-count]");
  count.textContent = column.count.toLocaleString();
  count.setAttribute("aria-label", `${column.count.toLocaleString()} ${column.meta.label.toLowerCase()}`);
  const summary = document.querySelector(`[data-summary-count="${CSS.escape(state)}"]`);
  if (summary) summary.textContent = column.count.toLocaleString();
  const showAll = section.querySelector(".show-all");
  showAll.textContent = `Show all ${column.count.toLocaleString()}`;
  showAll.href = runListUrl(state);
  const list = section.querySelector("[data-cards]");
  if (heldColumn(list)) return false;
  const runs = [...column.cards.values()].sort(newestFirst);
  const existing = new Map();
  for (const node of [...list.children]) {
    if (node.dataset.id && column.cards.has(node.dataset.id)) existing.set(node.dataset.id, node);
    else node.remove();
  }
  runs.forEach((run, index) => {
    let node = existing.get(run.id);
    if (!node || node.dataset.version !== String(run.version) || node.dataset.state !== state) {
      const fresh = renderCard(run, column.meta);
      if (flashed.has(run.id)) fresh.classList.add("flash");
      if (node) node.replaceWith(fresh);
      node = fresh;
    }
    if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
  });
  if (runs.length === 0) list.append(el("li", "empty", "No runs"));
  return true;
}

boardEl.addEventListener("mouseout", (event) => {
  if (!event.relatedTarget || !event.currentTarget.contains(event.relatedTarget)
      || !event.relatedTarget.closest?.(".card")) schedule();
});
boardEl.addEventListener("focusout", () => setTimeout(schedule, 0));

function renderCard(run, column) {
  const card = el("li", "card");
  card.dataset.id = run.id;
  card.dataset.version = String(run.version);
  card.dataset.state = column.state;

  const top = el("div", "card-top");
  card.setAttribute("aria-label", `${run.name} ${run.short_id}, ${column.label}`);
  const name = el("a", "card-name", run.name);
  name.title = run.name;
  name.href = runUrl(run.id);
  top.append(name, el("span", "short-id", run.short_id));
  card.append(top);

  const meta = el("div", "card-meta");
  meta.append(el("span", "chip", run.queue));
  meta.append(el("span", "attempt", `attempt ${run.attempts}/${run.max_attempts}`));
  if (run.priority) meta.append(el("span", "chip priority", `p${run.priority}`));
  card.append(meta);

  // A finished run is not "Completed for 2s": it finished 2s ago.
  const since = el("div", "card-line muted");
  since.append(column.terminal ? `${column.label} ` : `${column.label} for `);
  const sinceTime = el("time", "tick");
  sinceTime.dataset.since = run.state_changed_at;
  if (column.terminal) sinceTime.dataset.suffix = " ago";
  sinceTime.dateTime = run.state_changed_at;
  sinceTime.title = hover(run.state_changed_at);
  since.append(sinceTime);
  card.append(since);
  if (run.moved_by && column.terminal) {
    const who = el("div", "card-line note", run.moved_because
      ? `by ${run.moved_by}: ${run.moved_because}` : `by ${run.moved_by}`);
    who.title = who.textContent;
    card.append(who);
  }

  if (run.scheduled_at && Date.parse(run.scheduled_at) > Date.now()) {
    card.append(countdown("starts in ", run.scheduled_at, "due now"));
  }
  const fresh = run.lease_owner && freshHeartbeat(run);
  if (run.progress !== null && run.progress !== undefined && fresh) {
    const bar = el("div", "progress");
    bar.title = `${run.progress}%`;
    const fill = el("span");
    fill.style.width = `${Math.max(0, Math.min(100, run.progress))}%`;
    bar.append(fill, el("em", "progress-label", `${run.progress}%`));
    card.append(bar);
  }
  if (run.lease_owner) card.append(leaseLine(run));
  if (run.next_attempt_at) card.append(countdown("retry in ", run.next_attempt_at, "retry due now"));
  if (run.suspend_reason) {
    const note = el("div", "card-line note", run.suspend_reason);
    if (run.suspended_by) note.title = `Suspended by ${run.suspended_by}`;
    card.append(note);
  }
  const meters = budgetMeters(run);
  if (meters) card.append(meters);
  if (column.shows_error && run.error_summary) {
    const error = el("div", "card-line error-line", run.error_summary);
    error.title = run.error_summary;
    error.tabIndex = 0; // the full text on focus too
    card.append(error);
  }
  const buttons = column.actions.filter((name) => model.permitted.has(name));
  if (buttons.length) card.append(actionForms(run, buttons));
  return card;
}

// "retry in 3s"; once due, the whole line says so ("retry due now", not "retry in retrying now").
function countdown(prefix, until, overdue) {
  const line = el("div", "card-line countdown");
  const lead = el("span", "countdown-prefix", prefix);
  lead.dataset.prefix = prefix;
  line.append(lead);
  const time = el("time", "tick");
  time.dataset.until = until;
  time.dataset.overdue = overdue;
  time.dateTime = until;
  time.title = hover(until);
  line.append(time);
  return line;
}

function leaseLine(run) {
  const line = el("div", "card-line lease");
  line.append(el("span", "owner", `on ${run.lease_owner}`));
  const beatFrom = freshHeartbeat(run) ? run.heartbeat_at : null;
  if (beatFrom) {
    const beat = el("time", "tick heartbeat");
    beat.dataset.ago = beatFrom;
    beat.dateTime = beatFrom;
    beat.title = `Last heartbeat ${hover(beatFrom)}`;
    line.append(beat);
  }
  if (run.lease_expires_at) {
    const left = el("time", "tick lease-left");
    left.dataset.lease = run.lease_expires_at;
    left.dateTime = run.lease_expires_at;
    left.title = `Lease until ${hover(run.lease_expires_at)}`;
    line.append(left);
    if (run.state_changed_at && run.heartbeat_at !== undefined) {
      // Staleness is judged by the heartbeat's age against the interval executors beat at
      // (lease span / beats per lease), from the later of the last beat and the lease start.
      const badge = el("span", "badge stale hidden", "stale");
      badge.tabIndex = 0;
      badge.dataset.beatFrom = beatFrom || run.state_changed_at;
      line.append(badge);
    }
  }
  return line;
}

function budgetMeters(run) {
  const budget = run.budget || {};
  const dimensions = Object.keys(budget);
  if (!dimensions.length) return null;
  const box = el("div", "budgets");
  for (const dimension of dimensions.sort()) {
    const limit = Number(budget[dimension]) || 0;
    const used = Number((run.consumed || {})[dimension]) || 0;
    const share = limit > 0 ? Math.min(1, used / limit) : 1;
    const meter = el("div", "budget");
    meter.title = `${dimension}: ${used.toLocaleString()} of ${limit.toLocaleString()}`;
    meter.append(el("span", "budget-name", dimension));
    const bar = el("span", share >= 1 ? "budget-bar over" : share >= 0.8 ? "budget-bar warn" : "budget-bar");
    const fill = el("span");
    fill.style.width = `${Math.round(share * 100)}%`;
    bar.append(fill);
    meter.append(bar, el("span", "budget-value", `${used.toLocaleString()}/${limit.toLocaleString()}`));
    box.append(meter);
  }
  return box;
}

function actionForms(run, names) {
  const box = el("div", "card-actions");
  for (const name of names) {
    const form = el("form", "card-action");
    form.method = "post";
    form.action = actionUrl(run.id, name);
    const token = el("input");
    token.type = "hidden";
    token.name = "csrfmiddlewaretoken";
    token.value = csrfToken();
    const next = el("input");
    next.type = "hidden";
    next.name = "next";
    next.value = location.pathname + location.search;
    const action = model.actions[name] || {};
    const button = el("button", `button small ${name}${action.destructive ? " danger" : ""}`,
      action.label || name);
    button.type = "submit";
    // Screen readers hear which run a button acts on, not six "Cancel" buttons in a row.
    button.setAttribute("aria-label", `${action.label || name} ${run.name} ${run.short_id}`);
    if (action.destructive) form.dataset.confirm = "true";
    form.dataset.runName = `${run.name} ${run.short_id}`;
    form.dataset.actionLabel = action.label || name;
    form.append(token, next, button);
    box.append(form);
  }
  return box;
}

// -- ticking clocks -------------------------------------------------------------------------

// While the board is not live (offline, reconnecting, paused) its data may be old: the clocks
// stop rather than claim a lease lapsed or a heartbeat went stale from what they last heard.
function tick() {
  const now = Date.now();
  const trusted = status === "live" && !model.paused;
  // A past moment is what was asked for, not stale data: shown at full contrast (axe).
  page.classList.toggle("is-offline", status !== "live" && status !== "past");
  if (trusted) {
    for (const node of boardEl.querySelectorAll("time.tick")) tickOne(node, now);
  }
  if (lastUpdate) {
    const prefix = trusted ? "Updated" : "Last heard";
    lastUpdateEl.textContent = `${prefix} ${clock(lastUpdate)} · ${duration(now - lastUpdate)} ago`;
    lastUpdateEl.title = hover(lastUpdate);
  }
}

function tickOne(node, now) {
  const data = node.dataset;
  if (data.since) node.textContent = `${duration(now - Date.parse(data.since))}${data.suffix || ""}`;
  else if (data.until) {
    const left = Date.parse(data.until) - now;
    node.parentElement.classList.toggle("overdue", left <= 0);
    const lead = node.parentElement.querySelector(".countdown-prefix");
    if (lead) lead.textContent = left > 0 ? lead.dataset.prefix : "";
    node.textContent = left > 0 ? duration(left) : data.overdue;
  } else if (data.ago) node.textContent = `♥ ${duration(now - Date.parse(data.ago))} ago`;
  else if (data.lease) {
    const expires = Date.parse(data.lease);
    const left = expires - now;
    node.textContent = left > 0 ? `lease ${duration(left)}` : "lease lapsed";
    const badge = node.parentElement.querySelector(".badge.stale");
    let stale = left <= 0;
    if (badge) {
      const beatFrom = Date.parse(badge.dataset.beatFrom);
      const interval = Math.max(1000, (expires - beatFrom) / model.heartbeat.per_lease);
      const age = now - beatFrom;
      stale = left > 0 && age > interval * model.heartbeat.stale_after_missed;
      badge.classList.toggle("hidden", !stale); // a lapsed lease says so once, in its own words
      badge.title = `No heartbeat for ${duration(age)}; its executor beats about every `
        + `${duration(interval)}, so ${Math.floor(age / interval)} beats were missed. `
        + `The lease lapses in ${duration(Math.max(0, left))} unless one arrives.`;
      badge.setAttribute("aria-label", `stale: ${badge.title}`);
    }
    node.closest(".card")?.classList.toggle("is-stale", stale || left <= 0);
  }
}

// -- the socket -----------------------------------------------------------------------------

let socket = null;
let attempts = 0;
let everOpened = false;
let reconnectTimer = null;
let reconnectAt = 0;
let status = "connecting";

function setStatus(next) {
  status = next;
  connectionEl.dataset.status = next;
  const label = connectionEl.querySelector(".connection-label");
  if (next === "live") label.textContent = "Live";
  else if (next === "connecting") label.textContent = "Connecting…";
  else if (next === "past") label.textContent = "Paused · viewing the past";
  else {
    const wait = Math.max(0, reconnectAt - Date.now());
    const prefix = next === "offline" ? "Offline · retrying" : "Reconnecting";
    label.textContent = wait > 900 ? `${prefix} in ${duration(wait)}` : `${prefix}…`;
  }
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const params = new URLSearchParams();
  if (model.filter.queue) params.set("queue", model.filter.queue);
  if (model.filter.name) params.set("name", model.filter.name);
  // A reconnect resumes from where this board is: the server sends only what it missed.
  if (model.position) params.set("after", model.position);
  const query = params.toString();
  return `${scheme}//${location.host}${page.dataset.socketPath}${query ? `?${query}` : ""}`;
}

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  setStatus(everOpened ? "reconnecting" : "connecting");
  const current = new WebSocket(socketUrl());
  socket = current;
  current.addEventListener("open", () => {
    if (socket !== current) return;
    everOpened = true;
    attempts = 0;
    setStatus("live");
    // Nothing to ask for: the server opens with a snapshot, or with what we missed since
    // `after` when we are reconnecting.
  });
  current.addEventListener("message", (message) => {
    if (socket !== current) return;
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      return;
    }
    lastUpdate = new Date();
    if (model.paused && frame.type !== "error") {
      model.missedWhilePaused += 1; // dropped, not buffered: resuming resumes from position
      renderPaused();
      return;
    }
    if (frame.type === "snapshot" && frame.view === "board") applySnapshot(frame);
    else if (frame.type === "deltas") applyDeltas(frame);
    else if (frame.type === "error") console.warn("board socket:", frame.code, frame.message);
    schedule();
  });
  current.addEventListener("close", (event) => {
    if (socket !== current) return; // replaced on purpose (filter change)
    socket = null;
    if (event.code === 4401) {
      location.assign(loginUrl(location.pathname + location.search));
      return;
    }
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  attempts += 1;
  const ceiling = Math.min(MAX_BACKOFF_MS, 500 * 2 ** (attempts - 1));
  const delay = ceiling / 2 + Math.random() * (ceiling / 2); // exponential, with jitter
  reconnectAt = Date.now() + delay;
  reconnectTimer = setTimeout(connect, delay);
  setStatus(!navigator.onLine || attempts >= OFFLINE_AFTER_ATTEMPTS ? "offline" : "reconnecting");
}

function reconnectNow() {
  if (socket) {
    const old = socket;
    socket = null; // its close event is ours, not a failure
    old.close(1000, "filter changed");
  }
  connect();
}

window.addEventListener("online", () => {
  if (!socket) reconnectNow();
});
window.addEventListener("offline", () => {
  if (!socket) setStatus("offline");
});

// -- filter bar -----------------------------------------------------------------------------

let filterTimer = null;

function applyFilterFromForm() {
  const data = new FormData(filterForm);
  const queue = String(data.get("queue") || "").trim();
  const name = String(data.get("name") || "").trim();
  if (queue === model.filter.queue && name === model.filter.name) return;
  model.filter = { queue, name };
  model.position = null; // another filter: start from its snapshot
  const params = new URLSearchParams();
  if (queue) params.set("queue", queue);
  if (name) params.set("name", name);
  const query = params.toString();
  history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}`);
  filterForm.querySelector(".clear-filter").classList.toggle("hidden", !query);
  reconnectNow(); // the new socket's snapshot redraws the board for this filter
}

filterForm.addEventListener("submit", (event) => {
  event.preventDefault();
  applyFilterFromForm();
});
filterForm.addEventListener("input", () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(applyFilterFromForm, 350);
});
filterForm.querySelector(".clear-filter").addEventListener("click", (event) => {
  event.preventDefault();
  filterForm.reset();
  for (const input of filterForm.querySelectorAll("input[type=text], input[type=search]")) {
    input.value = "";
  }
  applyFilterFromForm();
});

// -- actions --------------------------------------------------------------------------------

function toast(kind, text, link) {
  const node = el("div", `toast ${kind}`, text);
  node.setAttribute("role", kind === "error" ? "alert" : "status");
  if (link) {
    const anchor = el("a", "toast-link", link.text);
    anchor.href = link.href;
    node.append(" ", anchor);
  }
  toastsEl.append(node);
  const linger = link ? 9500 : 4500;
  setTimeout(() => node.classList.add("leaving"), linger);
  setTimeout(() => node.remove(), linger + 500);
}

// Destructive actions ask first, with an optional reason; the answer is a promise of the
// reason (or null when the operator keeps the run as it is).
function confirmAction(form) {
  return new Promise((resolve) => {
    const label = form.dataset.actionLabel;
    confirmDialog.querySelector("#confirm-title").textContent = `${label} ${form.dataset.runName}?`;
    confirmDialog.querySelector("#confirm-text").textContent =
      `This ${label.toLowerCase()}s the run now. The reason goes into its audit trail.`;
    confirmDialog.querySelector("#confirm-go").textContent = label;
    const reason = confirmDialog.querySelector("input[name=reason]");
    reason.value = "";
    confirmDialog.returnValue = "";
    confirmDialog.addEventListener("close", () => {
      resolve(confirmDialog.returnValue === "confirm" ? reason.value.trim() : null);
    }, { once: true });
    confirmDialog.showModal();
    reason.focus();
  });
}

boardEl.addEventListener("submit", async (event) => {
  const form = event.target.closest("form.card-action");
  if (!form) return;
  event.preventDefault();
  const body = new FormData(form);
  if (form.dataset.confirm) {
    const reason = await confirmAction(form);
    if (reason === null) return;
    if (reason) body.set("reason", reason);
  }
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const response = await fetch(form.action, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-Requested-With": "fetch", "X-CSRFToken": csrfToken() },
    });
    const answer = await response.json().catch(() => ({ ok: false, message: response.statusText }));
    if (answer.ok && answer.action === "rerun" && answer.run) {
      toast("success", answer.message,
        { text: `Open ${answer.run.short_id}`, href: runUrl(answer.run.id) });
    } else if (answer.ok) toast("success", answer.message);
    else {
      const now = answer.current_state ? ` (it is ${answer.current_state.replace("_", " ")})` : "";
      toast("error", `${answer.message || "That did not work"}${now}`);
    }
  } catch {
    toast("error", "Network error: the action may not have reached the server");
  } finally {
    button.disabled = false;
  }
});

// -- pausing the live stream ---------------------------------------------------------------
// Paused, frames are dropped (nothing is buffered) and the board's log position stays where
// it was; resuming reconnects from that position, so the server sends exactly the changes
// missed meanwhile (or a snapshot, if the log no longer holds them) and the board catches up
// in one step.

function renderPaused() {
  page.classList.toggle("is-paused", model.paused);
  pauseButton.setAttribute("aria-pressed", String(model.paused));
  pauseButton.textContent = model.paused
    ? `Resume${model.missedWhilePaused ? ` (${model.missedWhilePaused} updates waiting)` : ""}`
    : "Pause";
}

function togglePause() {
  model.paused = !model.paused;
  if (!model.paused) {
    model.missedWhilePaused = 0;
    reconnectNow(); // with ?after=<position>: what we missed, nothing more
  }
  renderPaused();
  tick();
}

pauseButton.addEventListener("click", togglePause);

// -- keyboard -------------------------------------------------------------------------------

function moveBetweenCards(step) {
  const cards = [...boardEl.querySelectorAll(".card")].filter((card) => card.offsetParent !== null);
  if (!cards.length) return;
  const current = document.activeElement?.closest?.(".card");
  const index = cards.indexOf(current);
  const next = cards[Math.max(0, Math.min(cards.length - 1, index < 0 ? 0 : index + step))];
  next.querySelector("a.card-name").focus();
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const typing = event.target.closest?.("input, textarea, select, [contenteditable]");
  if (typing || document.querySelector("dialog[open]")) return;
  if (event.key === "/") {
    event.preventDefault();
    filterForm.querySelector("input[name=name]").focus();
  } else if (event.key === "?") {
    helpDialog.showModal();
  } else if (event.key === "j" || event.key === "k") {
    event.preventDefault();
    moveBetweenCards(event.key === "j" ? 1 : -1);
  } else if (event.key === "p") {
    togglePause();
  }
});
document.getElementById("show-help").addEventListener("click", () => helpDialog.showModal());

// -- past moments (scrubber.js) ----------------------------------------------------------------
// A snapshot of the past replaces the board and pauses the stream: no frame is applied until
// "back to live" reloads the live board (a fresh snapshot).

document.addEventListener("runboard:past", (event) => {
  if (socket) {
    const paused = socket;
    socket = null; // its close handler sees it was replaced on purpose: no reconnect
    paused.close();
  }
  clearTimeout(reconnectTimer);
  setStatus("past");
  applySnapshot(event.detail);
});

// -- start ----------------------------------------------------------------------------------

const firstSnapshot = JSON.parse(document.getElementById("board-snapshot").textContent);
applySnapshot(firstSnapshot);
setInterval(tick, 1000);
setInterval(() => {
  if (status !== "live") setStatus(status);
}, 1000);
if (firstSnapshot.past) setStatus("past");
else connect();
