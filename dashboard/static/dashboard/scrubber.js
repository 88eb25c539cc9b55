// The board's time scrubber: pick a past minute (last 24 hours), step or play forward through
// the audit trail, or go back to live. The board (board.js) pauses its stream when it
// receives a "runboard:past" event and shows the snapshot it carries; "back to live" loads
// the live board again (a fresh snapshot, then the stream).
const root = document.getElementById("scrubber");
const MINUTES_BACK = 24 * 60;
const PLAY_STEP_MS = 1000;

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

function minuteNow() {
  return Math.floor(Date.now() / 60000) * 60000;
}

const params = new URLSearchParams(location.search);
const initialAt = params.get("at");
const slider = el("input", { type: "range", min: String(-MINUTES_BACK), max: "0", step: "1",
  value: "0", id: "scrubber-range", "aria-label": "Minutes before now" });
const shown = el("output", { for: "scrubber-range", id: "scrubber-moment" }, "Live");
const back = el("button", { type: "button", class: "button secondary", "data-step": "-1" }, "−1 min");
const forward = el("button", { type: "button", class: "button secondary", "data-step": "1" }, "+1 min");
const play = el("button", { type: "button", class: "button secondary" }, "Play");
const live = el("a", { class: "button", href: liveUrl() }, "Back to live");
root.append(el("span", { class: "scrubber-label" }, "Time travel"), slider, shown, back, forward, play, live);

function liveUrl() {
  const kept = new URLSearchParams(location.search);
  kept.delete("at");
  const query = kept.toString();
  return `${location.pathname}${query ? `?${query}` : ""}`;
}

function momentOf(offset) {
  return new Date(minuteNow() + offset * 60000);
}

let timer = null;
let request = 0;

async function show(offset) {
  slider.value = String(offset);
  if (offset >= 0) {
    location.assign(liveUrl());
    return;
  }
  const moment = momentOf(offset).toISOString();
  const query = new URLSearchParams(location.search);
  query.set("at", moment);
  const mine = ++request;
  const response = await fetch(`${root.dataset.dataUrl}?${query}`, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (mine !== request) return; // a later move of the slider won
  if (!response.ok) {
    shown.textContent = body.message;
    return;
  }
  history.replaceState(null, "", `${location.pathname}?${query}`);
  live.href = liveUrl();
  shown.textContent = `As of ${body.past.at.slice(0, 16).replace("T", " ")} UTC`;
  document.dispatchEvent(new CustomEvent("runboard:past", { detail: body }));
}

function stopPlaying() {
  clearInterval(timer);
  timer = null;
  play.textContent = "Play";
}

slider.addEventListener("change", () => show(Number(slider.value)));
for (const button of [back, forward]) {
  button.addEventListener("click", () => show(Math.min(0, Number(slider.value) + Number(button.dataset.step))));
}
play.addEventListener("click", () => {
  if (timer) return stopPlaying();
  play.textContent = "Pause";
  timer = setInterval(() => {
    const next = Number(slider.value) + 1;
    if (next >= 0) stopPlaying();
    show(next);
  }, PLAY_STEP_MS);
});

if (initialAt) {
  const offset = Math.round((Date.parse(initialAt) - minuteNow()) / 60000);
  slider.value = String(Math.max(-MINUTES_BACK, Math.min(-1, offset)));
  shown.textContent = `As of ${new Date(Math.floor(Date.parse(initialAt) / 60000) * 60000).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}
