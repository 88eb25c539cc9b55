"""Top errors for a range: the most frequent first lines of `last_error`, linked to the run
list filtered to them."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from runs.history.errors import top_errors
from runs.history.series import DEFAULT_RANGE, RANGES


@login_required
def top_errors_page(request: HttpRequest) -> HttpResponse:
    """`GET /runs/errors/?range=1h|24h|7d&queue=`."""
    chosen = RANGES.get(request.GET.get("range", DEFAULT_RANGE), RANGES[DEFAULT_RANGE])
    queue = request.GET.get("queue", "").strip()[:100]
    until = timezone.now()
    since = until - chosen.span
    errors = top_errors(since=since, until=until, queue=queue)
    for entry in errors:
        query = {"error": entry["line"], "changed_after": since.isoformat(),
                 **({"queue": queue} if queue else {})}
        entry["url"] = f"{reverse('run-list')}?{urlencode(query)}"
    return render(request, "runpage/top_errors.html", {
        "errors": errors, "range": chosen, "ranges": RANGES.values(), "queue": queue,
        "since": since})
