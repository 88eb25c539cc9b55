"""History page and its JSON: parse the filter, call `runs.history.series`, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from runs.history.series import DEFAULT_RANGE, RANGES, UnknownRange, filter_choices, history_series
from runs.selectors import NAME_FILTER_MAX, QUEUE_FILTER_MAX
from runs.states import RunState

from ..board import STATE_COLOURS


def _params(request: HttpRequest) -> dict[str, str]:
    return {"range_key": request.GET.get("range", DEFAULT_RANGE).strip() or DEFAULT_RANGE,
            "queue": request.GET.get("queue", "").strip()[:QUEUE_FILTER_MAX],
            "name": request.GET.get("name", "").strip()[:NAME_FILTER_MAX]}


@login_required
def history_page(request: HttpRequest) -> HttpResponse:
    """Charts for one range and filter; first paint embeds the data, history.js draws it."""
    params = _params(request)
    try:
        data = history_series(**params)
    except UnknownRange as error:
        params["range_key"] = DEFAULT_RANGE
        data = history_series(**params)
        data["error"] = {"code": error.code, "message": str(error)}
    data["states"] = {str(s): {"label": s.label, "colour": STATE_COLOURS[s]} for s in RunState}
    return render(request, "history/history.html", {
        "data": data, "params": params, "ranges": RANGES.values(), **filter_choices()})


@login_required
def history_data(request: HttpRequest) -> JsonResponse:
    """`GET /history/data?range=&queue=&name=`: the same series as JSON (400 on a bad range)."""
    try:
        return JsonResponse(history_series(**_params(request)))
    except UnknownRange as error:
        return JsonResponse({"ok": False, "code": error.code, "message": str(error)},
                            status=400)
