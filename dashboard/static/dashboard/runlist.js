// The run list, live: it listens on the board's websocket with the list's own queue and name
// filter (`ws/board/?queue=&name=`), marks the rows that changed since the page loaded and
// counts the changes it does not show, with a link to refresh. It never redraws rows itself:
// the server renders the list. Also counts the ticked rows for "act on the selection".

const table = document.getElementById("runs");
const bar = document.getElementById("live-bar");
const barText = document.getElementById("live-bar-text");
const selectionCount = document.getElementById("selection-count");
const selectionForm = document.getElementById("selection-form");

let unseen = 0;
let retryDelay = 1000;

function rowOf(id) {
  return table.querySelector(`tr[data-run-id="${CSS.escape(id)}"]`);
}

function applyEvent(event) {
  const row = rowOf(event.id);
  const wantedState = table.dataset.state;
  if (row) {
    row.classList.add("changed");
    row.title = `Changed since this page loaded: now ${event.run.state.replace("_", " ")}`;
    unseen += 1;
  } else if (!wantedState || wantedState === event.run.state) {
    unseen += 1;
  } else {
    return;
  }
  bar.hidden = false;
  barText.textContent = `${unseen} change${unseen === 1 ? "" : "s"} since this page loaded.`;
}

// The change-log position of the last frame: a reconnect asks for exactly what it missed.
let position = null;
let everOpened = false;

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const params = new URLSearchParams();
  if (table.dataset.queue) params.set("queue", table.dataset.queue);
  if (table.dataset.name) params.set("name", table.dataset.name);
  if (position) params.set("after", position);
  const query = params.toString();
  const socket = new WebSocket(
    `${scheme}//${location.host}${table.dataset.socketPath}${query ? `?${query}` : ""}`);
  socket.addEventListener("open", () => {
    retryDelay = 1000;
  });
  const reconnecting = everOpened;
  everOpened = true;
  socket.addEventListener("message", (message) => {
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      return;
    }
    if (frame.position) position = frame.position;
    if (frame.type === "deltas") {
      for (const event of frame.deltas || []) applyEvent(event);
    } else if (frame.type === "snapshot" && reconnecting) {
      // The log no longer held what we missed: say so rather than guess.
      bar.hidden = false;
      barText.textContent = "The live connection dropped; the list may be out of date.";
    }
  });
  socket.addEventListener("close", (closed) => {
    if (closed.code === 4401) return; // logged out: the next page load says so
    // Reconnecting with ?after=<position> brings the changes missed meanwhile.
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 15000);
  });
}

document.getElementById("live-bar-refresh").addEventListener("click", (event) => {
  event.preventDefault();
  location.reload();
});

if (selectionForm) {
  const update = () => {
    const ticked = document.querySelectorAll('input[name="ids"]:checked').length;
    selectionCount.textContent = ticked ? `${ticked} selected.` : "Tick rows below.";
    selectionForm.querySelector("#selection-preview").disabled = ticked === 0;
  };
  table.addEventListener("change", update);
  update();
}

if (table) connect();
