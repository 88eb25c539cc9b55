"""The Queues and Executors pages and the pause / resume endpoints: parse, call `runs`, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from runs.exceptions import RunError
from runs.executors import executor_overview
from runs.queue_overview import queue_overview
from runs.queues import (
    PAUSE_PERMISSION,
    REASON_MAX,
    pause_queue,
    recent_queue_events,
    resume_queue,
)
from runs.states import RunState

from ..board import STATE_COLOURS
from ..views import wants_json

STATUS_BY_CODE = {"not_found": 404, "invalid": 400}  # every other error: 409 (not now)
VERBS = {"pause": (pause_queue, "paused"), "resume": (resume_queue, "resumed")}


def state_keys(*states: RunState) -> dict[str, dict[str, str]]:
    """Label and colour of each state the page shows, from the board's one source."""
    return {str(state): {"label": state.label, "colour": STATE_COLOURS[state]}
            for state in states}


@require_GET
@login_required
def queues_page(request: HttpRequest) -> HttpResponse:
    """Every queue: backlog, latency, work in hand, throughput, and whether it is paused."""
    overview = queue_overview()
    return render(request, "ops/queues.html", {
        "overview": overview,
        "rows": [(row, row.latency(overview.at)) for row in overview.queues],
        "events": recent_queue_events(),
        "can_pause": request.user.has_perm(PAUSE_PERMISSION),
        "reason_max": REASON_MAX,
        "states": state_keys(RunState.READY, RunState.LEASED, RunState.RUNNING,
                             RunState.COMPLETED, RunState.FAILED),
    })


@require_GET
@login_required
def executors_page(request: HttpRequest) -> HttpResponse:
    """Every executor holding leases now: last heartbeat, runs in hand, last hour, staleness."""
    overview = executor_overview()
    return render(request, "ops/executors.html", {
        "overview": overview,
        "rows": [(row, row.is_stale(overview.at), overview.at - row.last_contact_at)
                 for row in overview.executors],
        "states": state_keys(RunState.LEASED, RunState.RUNNING, RunState.COMPLETED,
                             RunState.FAILED),
    })


@require_POST
def queue_action(request: HttpRequest, verb: str) -> HttpResponse:
    """`POST /queues/<pause|resume>/` with `queue` (and `reason`).

    JSON (Accept: application/json or X-Requested-With): 200 {"ok": true, "queue", "message"}
    or 400/403/404/409 {"ok": false, "code", "message", "queue"}. A form post is redirected to
    the Queues page with a message; a refused permission is a plain 403.
    """
    as_json = wants_json(request)
    queue = request.POST.get("queue", "")
    if not request.user.is_authenticated:
        if as_json:
            return _refusal(403, "login_required", "log in to pause or resume queues", queue)
        return redirect_to_login(reverse("queues"))
    if verb not in VERBS:
        return _answer(request, as_json, 404, "unknown_action", f"no queue action {verb!r}",
                       queue)
    if not request.user.has_perm(PAUSE_PERMISSION):
        return _answer(request, as_json, 403, "forbidden", f"you may not {verb} queues", queue)
    act, past_tense = VERBS[verb]
    reason = request.POST.get("reason", "").strip()[:REASON_MAX]
    try:
        act(queue=queue, actor=request.user.get_username(), reason=reason)
    except RunError as error:
        return _answer(request, as_json, STATUS_BY_CODE.get(error.code, 409), error.code,
                       error.message, queue)
    summary = f"queue {queue} {past_tense}"
    if as_json:
        return JsonResponse({"ok": True, "action": verb, "queue": queue, "message": summary})
    messages.success(request, summary)
    return redirect("queues")


def _refusal(status: int, code: str, message: str, queue: str) -> JsonResponse:
    return JsonResponse({"ok": False, "code": code, "message": message, "queue": queue},
                        status=status)


def _answer(request: HttpRequest, as_json: bool, status: int, code: str, message: str,
            queue: str) -> HttpResponse:
    if as_json:
        return _refusal(status, code, message, queue)
    if status == 403:  # a forged or stale form: refuse outright, do not bounce
        return HttpResponse(message, status=403, content_type="text/plain; charset=utf-8")
    messages.error(request, message)
    return redirect("queues")
