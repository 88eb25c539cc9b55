// One time policy for every page (README "Times"): absolute times in the site's zone
// (settings.TIME_ZONE, on <html data-time-zone>), to the second, with the zone named; every
// relative time ("12s ago") carries its absolute time on hover; hovering an absolute time
// shows it in UTC. Pages import these helpers; on load this module also titles every
// <time datetime> the server rendered.

const zone = document.documentElement.dataset.timeZone || "UTC";

function parts(date, timeZone) {
  const format = new Intl.DateTimeFormat("en-GB", {
    timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
    minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short",
  });
  const out = {};
  for (const part of format.formatToParts(date)) out[part.type] = part.value;
  return out;
}

function asDate(value) {
  return value instanceof Date ? value : new Date(value);
}

/** "2026-12-01 21:06:51 UTC" in the site's zone. */
export function absolute(value, timeZone = zone) {
  const p = parts(asDate(value), timeZone);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${p.timeZoneName}`;
}

/** "21:06:51 UTC": the time of day, for things that happened today (the board's pill). */
export function clock(value) {
  const p = parts(asDate(value), zone);
  return `${p.hour}:${p.minute}:${p.second} ${p.timeZoneName}`;
}

/** What hovering a time shows: the site's zone and UTC. */
export function hover(value) {
  const site = absolute(value);
  const utc = absolute(value, "UTC");
  return site === utc ? site : `${site} (${utc})`;
}

/** "12s", "4m 10s", "2h 5m", "3d 1h". */
export function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** "12s ago" / "in 3s". */
export function relative(value, now = Date.now()) {
  const delta = asDate(value).getTime() - now;
  return delta > 0 ? `in ${duration(delta)}` : `${duration(-delta)} ago`;
}

/** Title every server-rendered <time datetime> (and any added later with titleTimes). */
export function titleTimes(root = document) {
  for (const node of root.querySelectorAll("time[datetime]")) {
    if (!node.title && !Number.isNaN(Date.parse(node.dateTime))) node.title = hover(node.dateTime);
  }
}

titleTimes();
