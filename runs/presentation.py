"""How each state looks: its one colour and label, for every page (board, run list, run page,
admin). Presentation data only; which moves exist stays in `runs.states`.

Pages get the colours as CSS custom properties (`.state-<value> { --state: … }`) rendered from
here, so no stylesheet or script keeps its own copy.
"""

from __future__ import annotations

from .states import RunState

# One hue per state, grouped by phase; chosen to read on both the dark and the light theme
# (a state badge is dark text on the hue).
STATE_COLOURS: dict[str, str] = {
    RunState.SCHEDULED: "#8b9bb4",
    RunState.READY: "#5aa9ff",
    RunState.LEASED: "#b48cff",
    RunState.RUNNING: "#3ddc97",
    RunState.RETRY_WAIT: "#ffb547",
    RunState.SUSPENDED: "#f5d04c",
    RunState.COMPLETED: "#2fbf71",
    RunState.FAILED: "#ff5c6c",
    RunState.CANCELED: "#8a8f98",
}

# States whose count goes into the page title ("(3 failed) Board · Runboard").
ALERT_STATES: frozenset[str] = frozenset({RunState.FAILED.value})

STATE_LABELS: dict[str, str] = {state.value: state.label for state in RunState}


def state_colour(state: RunState | str) -> str:
    """The state's colour (a hex string)."""
    return STATE_COLOURS[RunState(state)]


def state_css() -> str:
    """`.state-<value> { --state: <colour>; }` for every state: the one palette as CSS."""
    return "".join(f".state-{state.value}{{--state:{STATE_COLOURS[state]}}}"
                   for state in RunState)
