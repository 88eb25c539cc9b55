// Paths the server reversed for this page (`dashboard/links.py`, embedded by the base template
// as `runboard-links`): Runboard may be mounted under any prefix, so no script writes a path.
const links = JSON.parse(document.getElementById("runboard-links").textContent);

const withRun = (template, id) => template.replace(links.runIdPlaceholder, encodeURIComponent(id));

export const runUrl = (id) => withRun(links.run, id);

export const actionUrl = (id, name) =>
  withRun(links.action, id).replace(links.actionPlaceholder, encodeURIComponent(name));

// The project's LOGIN_URL, sending the user back here afterwards (Django's `next`).
export const loginUrl = (next) =>
  `${links.login}${links.login.includes("?") ? "&" : "?"}next=${encodeURIComponent(next)}`;
