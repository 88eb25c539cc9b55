// The run page, live. The board's websocket (`ws/board/?run=<id>`) says when this run changed;
// the page then asks the server for the derived view (its `run-live` URL with `?after=<last move>`): the
// "why isn't it moving" answer, fields, meters, new timeline moves and the actions allowed now.
// So no lifecycle knowledge lives here, and every server string goes in with textContent.

import { runUrl } from "./links.js";
import { duration, hover, relative, titleTimes } from "./times.js";

const config = JSON.parse(document.getElementById("run-config").textContent);
const $ = (selector) => document.querySelector(selector);

let lastTransitionId = config.lastTransitionId;
let shownVersion = config.version;
let refreshing = false;
let refreshAgain = false;

function setStatus(status, text) {
  const element = $("#live-status");
  element.dataset.status = status;
  element.textContent = text;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderAnswer(answer) {
  const node = $("#run-answer");
  node.textContent = answer.text;
  node.dataset.code = answer.code;
  node.className = `answer answer-${answer.code}`;
}

function renderState(data) {
  const badge = $("#run-state");
  badge.textContent = data.state_label;
  badge.dataset.state = data.state;
  badge.className = `rp-state state-${data.state}`;
}

function renderFields(fields) {
  for (const field of fields) {
    const cell = document.querySelector(`tr[data-field="${CSS.escape(field.name)}"] td`);
    if (cell) cell.textContent = field.value;
  }
}

function renderMeters(meters) {
  const section = $("#meters");
  section.hidden = meters.length === 0;
  section.querySelectorAll(".meter-row").forEach((row) => row.remove());
  for (const meter of meters) {
    const row = element("div", "meter-row");
    row.dataset.dimension = meter.dimension;
    row.append(element("span", "meter-label", meter.dimension));
    const bar = element("span", `meter-bar ${meter.level}`);
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", `${meter.dimension}: ${meter.percent}% of the budget used`);
    const fill = element("span");
    fill.style.width = `${meter.bar_width}%`;
    bar.append(fill);
    row.append(bar);
    row.append(element("span", `meter-text${meter.exhausted ? " exhausted" : ""}`,
      `${meter.used}/${meter.limit} (${meter.percent}%)`));
    const form = $("#replenish-form");
    if (form) section.insertBefore(row, form);
    else section.append(row);
  }
}

function attemptSection(attempt, label) {
  const timeline = $("#timeline");
  const last = timeline.lastElementChild;
  if (last && Number(last.dataset.attempt) === attempt) return last.querySelector("ol");
  const section = element("section", "attempt");
  section.dataset.attempt = String(attempt);
  const heading = element("h3", "", `${label} `);
  heading.append(element("span", "attempt-duration muted"));
  section.append(heading);
  const list = element("ol");
  section.append(list);
  timeline.append(section);
  return list;
}

function renderTimeline(entries) {
  for (const entry of entries) {
    if (entry.id <= lastTransitionId) continue;
    const item = element("li", "move");
    item.dataset.transitionId = String(entry.id);
    item.append(element("span", "move-states", `${entry.from || "∅"} → ${entry.to}`));
    const whenBox = element("span", "move-when");
    const when = element("time", "", entry.at_display);
    when.dateTime = entry.at;
    when.title = hover(entry.at);
    whenBox.append(when, " ", element("span", "move-ago muted"));
    item.append(whenBox);
    const lasted = element("span", "move-duration");
    lasted.title = `Time in ${entry.to} until the next move`;
    item.append(lasted);
    item.append(element("span", "move-actor", entry.actor || "—"));
    item.append(element("span", "move-reason", entry.reason));
    attemptSection(entry.group, entry.group_label).append(item);
    lastTransitionId = entry.id;
  }
}

// Durations: each move lasted until the next one; the last lasts until now, unless the run
// has finished (a finished run has no "current" step). Each attempt: first move to the next
// attempt's first move. Relative times tick beside the absolute ones.
function renderDurations() {
  const now = Date.now();
  const moves = [...document.querySelectorAll("#timeline li.move")];
  const finished = document.body.dataset.finished === "true";
  const times = moves.map((move) => Date.parse(move.querySelector("time").dateTime));
  moves.forEach((move, index) => {
    const end = index + 1 < moves.length ? times[index + 1] : finished ? null : now;
    move.querySelector(".move-duration").textContent =
      end === null ? "—" : `${duration(end - times[index])}${index + 1 < moves.length ? "" : " so far"}`;
    move.querySelector(".move-ago").textContent = `(${relative(times[index], now)})`;
  });
  const sections = [...document.querySelectorAll("#timeline section.attempt")];
  sections.forEach((section, index) => {
    const first = section.querySelector("time");
    const next = sections[index + 1]?.querySelector("time");
    const last = [...section.querySelectorAll("time")].pop();
    if (!first) return;
    const end = next ? Date.parse(next.dateTime) : finished ? Date.parse(last.dateTime) : now;
    section.querySelector(".attempt-duration").textContent =
      `· ${duration(end - Date.parse(first.dateTime))}${next || finished ? "" : " so far"}`;
  });
}

function renderActions(allowed) {
  document.querySelectorAll("form.run-action").forEach((form) => {
    form.hidden = !allowed.includes(form.dataset.action);
  });
}

function renderReruns(reruns) {
  const box = $("#reruns");
  const list = $("#rerun-list");
  box.hidden = reruns.length === 0;
  list.replaceChildren(...reruns.map((rerun) => {
    const item = element("li");
    const link = element("a", "", rerun.short_id);
    link.href = runUrl(rerun.id);
    item.append(link, " ", element("span", `rp-state state-${rerun.state}`, rerun.state));
    return item;
  }));
}

function render(data) {
  shownVersion = Math.max(shownVersion, data.version);
  renderAnswer(data.answer);
  renderState(data);
  renderFields(data.fields);
  renderMeters(data.meters);
  $("#result").textContent = data.result;
  renderTimeline(data.timeline);
  renderActions(data.actions);
  renderReruns(data.reruns);
  document.body.dataset.finished = String(Boolean(data.finished));
  document.body.dataset.runVersion = String(shownVersion);
  const form = $("#replenish-form");
  if (form) form.hidden = Boolean(data.finished);
  renderDurations();
  titleTimes();
}

// One refresh in flight; changes that arrive meanwhile fold into one more.
async function refresh() {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  try {
    do {
      refreshAgain = false;
      const response = await fetch(`${config.liveUrl}?after=${lastTransitionId}`, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (!response.ok) break;
      render(await response.json());
    } while (refreshAgain);
  } catch (error) {
    setStatus("error", "refresh failed; retrying on the next change");
  } finally {
    refreshing = false;
  }
}

function concernsThisRun(frame) {
  return (frame.deltas || []).some(
    (event) => event && event.id === config.runId && event.version > shownVersion,
  );
}

let retryDelay = 500;
let position = null; // the change-log position of the last frame: a reconnect resumes there

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const after = position ? `&after=${encodeURIComponent(position)}` : "";
  const socket = new WebSocket(`${scheme}//${location.host}${config.socketPath}${after}`);
  socket.addEventListener("open", () => {
    retryDelay = 500;
    setStatus("live", "live");
  });
  socket.addEventListener("message", (message) => {
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      return;
    }
    if (frame.position) position = frame.position;
    // A snapshot (first connect, or a reconnect the log could not bridge) may hide anything;
    // otherwise only a newer version of this run, live or missed while away, needs a fetch.
    if (frame.type === "snapshot" || (frame.type === "deltas" && concernsThisRun(frame))) {
      refresh();
    }
  });
  socket.addEventListener("close", (closed) => {
    // The consumer's close codes: 4401 not logged in, 4404 no such run, 4400 bad query.
    if (closed.code === 4401) {
      setStatus("closed", "logged out: reload to log in again");
      return;
    }
    if (closed.code === 4404 || closed.code === 4400) {
      setStatus("closed", "this run is gone");
      return;
    }
    setStatus("reconnecting", "reconnecting…");
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 15000);
  });
}

// Buttons post to the board's action endpoint; the answer is JSON, the change comes back over
// the websocket like every other change. Without JavaScript the forms post and redirect back.
function wireActions() {
  document.querySelectorAll("form.run-action").forEach((form) => {
    form.addEventListener("submit", async (submit) => {
      submit.preventDefault();
      const problem = $("#action-error");
      problem.hidden = true;
      const body = new FormData(form);
      let response;
      try {
        response = await fetch(form.action, {
          method: "POST",
          body,
          credentials: "same-origin",
          headers: {
            Accept: "application/json",
            "X-Requested-With": "XMLHttpRequest",
            "X-CSRFToken": body.get("csrfmiddlewaretoken"),
          },
        });
      } catch {
        problem.textContent = "Could not reach the server; try again.";
        problem.hidden = false;
        return;
      }
      let answer = {};
      try {
        answer = await response.json();
      } catch {
        answer = { ok: false, message: `the server answered ${response.status}` };
      }
      if (!response.ok || !answer.ok) {
        problem.textContent = answer.message || `refused (${response.status})`;
        problem.hidden = false;
      }
      refresh();
    });
  });
}

// Raise the budget through the API (session + CSRF, runs.resume_run): the change then comes
// back over the websocket like any other.
function wireReplenish() {
  const form = $("#replenish-form");
  if (!form) return;
  form.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const problem = $("#action-error");
    problem.hidden = true;
    const budget = {};
    for (const input of form.querySelectorAll("input[type=number]")) budget[input.name] = Number(input.value);
    const token = document.querySelector("input[name=csrfmiddlewaretoken]")?.value || "";
    let answer = {};
    try {
      const response = await fetch(form.dataset.url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": token },
        body: JSON.stringify({ budget }),
      });
      answer = await response.json().catch(() => ({ message: `the server answered ${response.status}` }));
      if (!response.ok) {
        problem.textContent = answer.message || `refused (${response.status})`;
        problem.hidden = false;
      }
    } catch {
      problem.textContent = "Could not reach the server; try again.";
      problem.hidden = false;
    }
    refresh();
  });
}

wireActions();
wireReplenish();
document.body.dataset.finished = String(config.finished);
renderDurations();
setInterval(renderDurations, 1000);
connect();
