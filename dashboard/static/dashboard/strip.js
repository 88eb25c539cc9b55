// The board's throughput strip: runs finished per minute over the last hour (completed and
// failed), drawn with uPlot from the History page's data endpoint and moved live by the
// board's own stream: board.js dispatches "runboard:deltas" with each deltas frame it applies.
// The server's rollups are exact; live increments are re-read from them every minute.
import uPlot from "./vendor/uplot/uPlot.esm.js";
import { rollWindow } from "./window.js";

const root = document.getElementById("throughput-strip");
const chartEl = document.getElementById("strip-chart");
const summary = document.getElementById("strip-summary");
const SHOWN = ["completed", "failed"];
const REFRESH_MS = 60_000;
const HEIGHT = 48;
// Colours and labels come from the board's snapshot, as everything else on the board does.
const columns = Object.fromEntries(
  JSON.parse(document.getElementById("board-snapshot").textContent).columns
    .map((column) => [column.state, column]));
const filter = new URLSearchParams(location.search);
const queue = filter.get("queue") || "";
// The History data filters names exactly, the board by substring: with a name filter the
// strip shows the whole queue and follows it by refreshing, not from the (narrower) stream.
const followsStream = !filter.get("name");
let data = null;
let chart = null;

function draw() {
  if (!data) return;
  const width = Math.max(120, chartEl.clientWidth);
  const opts = {
    width, height: HEIGHT,
    legend: { show: false }, cursor: { show: false },
    axes: [{ show: false }, { show: false }],
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    series: [{}, ...SHOWN.map((state) => ({
      label: columns[state].label, stroke: columns[state].colour, width: 1.5,
      fill: `${columns[state].colour}33`,
    }))],
  };
  if (chart) chart.destroy();
  chartEl.textContent = "";
  chart = new uPlot(opts, [data.times, ...SHOWN.map((state) => data.throughput[state])], chartEl);
  const sum = (values) => values.reduce((a, b) => a + b, 0);
  summary.textContent = "Last hour: " + SHOWN.map(
    (state) => `${sum(data.throughput[state])} ${columns[state].label.toLowerCase()}`).join(" · ");
  root.dataset.ready = "true";
}

function currentMinute() {
  return rollWindow(data.times, data.range.grain, () => {
    for (const state of SHOWN) { data.throughput[state].push(0); data.throughput[state].shift(); }
  });
}

async function refresh() {
  const params = new URLSearchParams({ range: "1h" });
  if (queue) params.set("queue", queue);
  try {
    const response = await fetch(`${root.dataset.dataUrl}?${params}`, {
      headers: { Accept: "application/json" } });
    if (!response.ok) return;
    data = await response.json();
    draw();
  } catch {
    // Offline for a moment: the next refresh tries again.
  }
}

document.addEventListener("runboard:deltas", (event) => {
  if (!data || !followsStream) return;
  const i = currentMinute();
  let moved = false;
  for (const delta of event.detail.deltas || []) {
    if (delta.kind === "transition" && SHOWN.includes(delta.to)) {
      data.throughput[delta.to][i] += 1;
      moved = true;
    }
  }
  if (moved) draw();
});

refresh();
setInterval(refresh, REFRESH_MS);
window.addEventListener("resize", draw);
