"""Board page and card actions: parse the request, call `runs`, render the answer."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from runs.actions import ACTIONS
from runs.exceptions import RunError, RunNotFound
from runs.history.counts import HistoryUnavailable
from runs.models import Run
from runs.selectors import BoardFilter

from .board import read_board
from .history.past import InvalidMoment, parse_moment, read_board_at

REASON_MAX = 500
STATUS_BY_CODE = {"not_found": 404, "invalid": 400}  # every other RunError: 409 (not now)


@login_required
def board(request: HttpRequest) -> HttpResponse:
    """The live board: first paint rendered here, kept live by board.js over the websocket."""
    board_filter = BoardFilter.from_params(request.GET)
    snapshot = past_or_live(request, board_filter)
    phases = [{"label": phase["label"],
               "columns": [c for c in snapshot["columns"] if c["state"] in phase["states"]]}
              for phase in snapshot["phases"]]
    return render(request, "dashboard/board.html", {
        "snapshot": snapshot, "phases": phases, "board_filter": board_filter,
        "total": sum(column["count"] for column in snapshot["columns"]),
    })


def socket_over_http(request: HttpRequest) -> HttpResponse:
    """`ws/board/` over plain HTTP: the route exists so pages can reverse the socket's path
    under the project's prefix; the socket itself is served by `dashboard.routing`."""
    response = HttpResponse("this is Runboard's websocket: connect with a websocket client\n",
                            status=426, content_type="text/plain; charset=utf-8")
    response["Upgrade"] = "websocket"
    return response


def past_or_live(request: HttpRequest, board_filter: BoardFilter) -> dict[str, Any]:
    """`?at=<iso time>` (the scrubber's bookmark): the board then, read-only; else live."""
    if request.GET.get("at"):
        try:
            return read_board_at(board_filter, parse_moment(request.GET["at"]),
                                 user=request.user)
        except (InvalidMoment, HistoryUnavailable) as error:
            messages.error(request, f"{error} ({error.code}): showing the live board")
    return read_board(board_filter, user=request.user)


def wants_json(request: HttpRequest) -> bool:
    return ("application/json" in request.headers.get("Accept", "")
            or "X-Requested-With" in request.headers)


def _current_state(run_id: Any) -> str | None:
    return Run.objects.filter(pk=run_id).values_list("state", flat=True).first()


@require_POST
def run_action(request: HttpRequest, run_id: Any, name: str) -> HttpResponse:
    """`POST /runs/<id>/actions/<name>/`: one operator action through `runs.actions`.

    JSON (Accept: application/json or X-Requested-With): 200 {"ok": true, "run"} or
    403/404/409 {"ok": false, "code", "message", "current_state"}. A form post is redirected
    to `next` (or the board) with a message.
    """
    as_json = wants_json(request)
    if not request.user.is_authenticated:
        if as_json:
            return _refusal(403, "login_required", "log in to act on runs", None)
        return redirect_to_login(request.get_full_path())
    action = ACTIONS.get(name)
    if action is None:
        return _answer(request, as_json, 404, "unknown_action", f"no action named {name!r}",
                       _current_state(run_id))
    if not request.user.has_perm(action.permission):
        return _answer(request, as_json, 403, "forbidden",
                       f"you may not {action.label.lower()} runs", _current_state(run_id))
    reason = request.POST.get("reason", "").strip()[:REASON_MAX]
    try:
        run = action.perform(run_id, actor=request.user.get_username(), reason=reason)
    except RunNotFound as error:
        return _answer(request, as_json, 404, error.code, error.message, None)
    except RunError as error:
        status = STATUS_BY_CODE.get(error.code, 409)
        return _answer(request, as_json, status, error.code, error.message,
                       error.current_state or _current_state(run_id))
    summary = f"{run.name} {run.short_id}: {action.past_tense}"
    if name == "rerun":
        summary = f"{run.name}: rerun as {run.short_id}"
    if as_json:
        return JsonResponse({"ok": True, "action": name, "message": summary,
                             "run": run.live_data()})
    messages.success(request, summary)
    return redirect(_next_url(request))


def _refusal(status: int, code: str, message: str, current_state: str | None) -> JsonResponse:
    return JsonResponse({"ok": False, "code": code, "message": message,
                         "current_state": current_state}, status=status)


def _answer(request: HttpRequest, as_json: bool, status: int, code: str, message: str,
            current_state: str | None) -> HttpResponse:
    if as_json:
        return _refusal(status, code, message, current_state)
    if status == 403:  # a forged or stale form: refuse outright, do not bounce
        return HttpResponse(message, status=403, content_type="text/plain; charset=utf-8")
    messages.error(request, message)
    return redirect(_next_url(request))


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return target
    return reverse("board")
