// The History page: draws the server's series with uPlot, then keeps the current bucket
// moving from the board's websocket stream (deltas), re-reading exact numbers every minute.
import uPlot from "./vendor/uplot/uPlot.esm.js";
import { rollWindow } from "./window.js";

const data = JSON.parse(document.getElementById("history-data").textContent);
const states = data.states;
const FINISHED = ["completed", "failed", "canceled"];
const REFRESH_MS = 60_000;
const charts = {};

function width(el) {
  return Math.max(280, el.clientWidth || 460);
}

// Axis labels short enough for the gutter: durations in ms or s, counts with k and M.
function axisLabel(value, unit) {
  if (value == null) return "";
  if (unit === " ms") {
    if (Math.abs(value) >= 1000) return `${+(value / 1000).toFixed(value >= 10000 ? 0 : 1)} s`;
    return `${Math.round(value)} ms`;
  }
  if (Math.abs(value) >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
  if (Math.abs(value) >= 1e4) return `${+(value / 1e3).toFixed(0)}k`;
  return String(Math.round(value));
}

function draw(id, series, values, { stacked = false, unit = "" } = {}) {
  const el = document.getElementById(id);
  const opts = {
    width: width(el),
    height: 220,
    series: [{}, ...series.map((s) => ({
      label: s.label, stroke: s.colour, width: 1.5,
      fill: stacked ? s.colour + "99" : undefined,
      value: (u, v) => (v == null ? "–" : `${Math.round(v)}${unit}`),
    }))],
    axes: [
      { stroke: "#aab" },
      { stroke: "#aab", size: 56, values: (u, ticks) => ticks.map((v) => axisLabel(v, unit)) },
    ],
    scales: { x: { time: true } },
  };
  if (charts[id]) charts[id].destroy();
  el.textContent = "";
  charts[id] = new uPlot(opts, [data.times, ...values], el);
}

function stack(rows) {
  // Stacked areas: each series drawn as the sum of itself and those below it.
  const sums = data.times.map(() => 0);
  return rows.map((row) => row.map((v, i) => (sums[i] += v ?? 0)));
}

function render() {
  const t = data.throughput;
  draw("chart-throughput", [
    { label: "Submitted", colour: states.ready.colour },
    ...FINISHED.map((s) => ({ label: states[s].label, colour: states[s].colour })),
  ], [t.submitted, ...FINISHED.map((s) => t[s])]);
  const q = (m) => ["p50", "p95", "p99"].map((k) => data[m][k]);
  const shades = [{ label: "p50", colour: "#5aa9ff" }, { label: "p95", colour: "#ffb547" },
    { label: "p99", colour: "#ff5c6c" }];
  draw("chart-wait", shades, q("wait"), { unit: " ms" });
  draw("chart-run", shades, q("run"), { unit: " ms" });
  const dwellStates = Object.keys(data.dwell);
  draw("chart-dwell", dwellStates.map((s) => ({ label: states[s].label, colour: states[s].colour })),
    dwellStates.map((s) => data.dwell[s]), { unit: " ms" });
  if (data.flow) {
    const order = Object.keys(states).reverse(); // finished at the bottom of the stack
    const stacked = stack(order.map((s) => data.flow[s])).reverse();
    draw("chart-flow", order.slice().reverse().map((s) => ({ label: states[s].label, colour: states[s].colour })),
      stacked, { stacked: true });
  }
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  document.getElementById("history-summary").textContent =
    `${data.range.label}: submitted ${sum(t.submitted)} · ` +
    FINISHED.map((s) => `${states[s].label.toLowerCase()} ${sum(t[s])}`).join(" · ");
}

// -- live ---------------------------------------------------------------------------------------

function currentBucket() {
  // Roll the window forward when the clock enters a new bucket.
  return rollWindow(data.times, data.range.grain, () => {
    for (const key of Object.keys(data.throughput)) { data.throughput[key].push(0); data.throughput[key].shift(); }
    for (const m of ["wait", "run"]) for (const k of Object.keys(data[m])) { data[m][k].push(null); data[m][k].shift(); }
    for (const s of Object.keys(data.dwell)) { data.dwell[s].push(null); data.dwell[s].shift(); }
    if (data.flow) for (const s of Object.keys(data.flow)) { const f = data.flow[s]; f.push(f[f.length - 1]); f.shift(); }
  });
}

function wanted(event) {
  const run = event.run;
  if (!run) return !data.filter.queue && !data.filter.name;
  return (!data.filter.queue || run.queue === data.filter.queue)
    && (!data.filter.name || run.name === data.filter.name);
}

function apply(frame) {
  const i = currentBucket();
  for (const event of frame.deltas || []) {
    if (!wanted(event)) continue;
    if (event.kind === "created") data.throughput.submitted[i] += 1;
    if (event.kind === "transition" && FINISHED.includes(event.to)) data.throughput[event.to][i] += 1;
  }
  if (data.flow && !data.filter.name && frame.counts && Object.keys(frame.counts).length) {
    for (const s of Object.keys(data.flow)) data.flow[s][i] = frame.counts[s] ?? data.flow[s][i];
  }
  render();
}

function connect(attempt = 0) {
  const live = document.getElementById("history-live");
  const params = new URLSearchParams();
  if (data.filter.queue) params.set("queue", data.filter.queue);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/board/?${params}`);
  socket.addEventListener("open", () => { live.textContent = "Live: following changes"; attempt = 0; });
  socket.addEventListener("message", (message) => {
    const frame = JSON.parse(message.data);
    if (frame.type === "deltas") apply(frame);
  });
  socket.addEventListener("close", () => {
    live.textContent = "Live: reconnecting…";
    setTimeout(() => connect(attempt + 1), Math.min(30_000, 500 * 2 ** attempt));
  });
}

async function refresh() {
  // The live increments are coalesced per run; the server's rollups are exact.
  const params = new URLSearchParams({ range: data.range.key, queue: data.filter.queue, name: data.filter.name });
  const response = await fetch(`/history/data?${params}`, { headers: { Accept: "application/json" } });
  if (response.ok) {
    Object.assign(data, await response.json());
    render();
  }
}

render();
connect();
setInterval(refresh, REFRESH_MS);
window.addEventListener("resize", () => render());
