"""The board's snapshot at a past moment (read-only) and its JSON endpoint for the scrubber."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from runs.history.counts import HistoryUnavailable
from runs.history.moment import board_at
from runs.selectors import BoardFilter

from ..board import board_snapshot, column_limit


class InvalidMoment(ValueError):
    """`at` is not an ISO time in the past."""

    code = "invalid_moment"


def parse_moment(value: str) -> datetime:
    moment = parse_datetime(value.strip().replace(" ", "+")) if value else None
    if moment is None:
        raise InvalidMoment(f"not an ISO time: {value[:40]!r}")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_current_timezone())
    if moment > timezone.now():
        raise InvalidMoment("that moment has not happened yet")
    return moment


def read_board_at(board_filter: BoardFilter, moment: datetime, *, user: Any) -> dict[str, Any]:
    """The board snapshot as it was at `moment` (its minute): no actions, marked `past`."""
    limit = column_limit()
    past = board_at(moment, queue=board_filter.queue, name=board_filter.name, limit=limit)
    snapshot = board_snapshot(board_filter, user=user, counts=past["counts"],
                              cards=past["cards"], limit=limit)
    snapshot["permitted_actions"] = []  # the past is read-only
    snapshot["past"] = {"at": past["at"].isoformat(), "cards_complete": past["cards_complete"]}
    return snapshot


@login_required
def board_at_data(request: HttpRequest) -> JsonResponse:
    """`GET /board/at?at=<iso>&queue=&name=`: the scrubber's snapshot (400 with a code)."""
    try:
        moment = parse_moment(request.GET.get("at", ""))
        return JsonResponse(read_board_at(BoardFilter.from_params(request.GET), moment,
                                          user=request.user))
    except (InvalidMoment, HistoryUnavailable) as error:
        return JsonResponse({"ok": False, "code": error.code, "message": str(error)},
                            status=400)
