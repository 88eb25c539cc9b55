"""The run page and the run list: parse the request, call a selector, render."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET

from runs import bulk
from runs.actions import ACTIONS
from runs.detail import TIMELINE_LIMIT, live_state, run_detail
from runs.listing import (
    SEARCH_HELP,
    Cursor,
    RunFilter,
    bounded_count,
    distinct_queues,
    filtered_runs,
    page_of_runs,
)
from runs.models import Run
from runs.states import LEASE_HOLDING_STATES, RunState


def action_url(run_id: UUID, name: str) -> str:
    """The board's per-run action endpoint (cross-area contract in HELPERS.md)."""
    return reverse("run-action", args=[run_id, name])


@require_GET
@login_required
def run_page(request: HttpRequest, run_id: UUID) -> HttpResponse:
    """One run: why it isn't moving, every field, its timeline, and what this user may do."""
    try:
        detail = run_detail(run_id, user=request.user)
    except Run.DoesNotExist:
        raise Http404(f"no run {run_id}") from None
    page_url = reverse("run-detail", args=[run_id])
    config = {
        "runId": str(run_id),
        "version": detail.run.version,
        "liveUrl": reverse("run-live", args=[run_id]),
        "socketPath": f"{reverse('board-socket')}?run={run_id}",
        "lastTransitionId": detail.last_transition_id,
        "finished": detail.run.run_state.is_terminal,
    }
    buttons = [(button, action_url(run_id, button.name)) for button in detail.actions]
    may_replenish = bool(detail.meters) and not detail.run.run_state.is_terminal and \
        request.user.has_perm(ACTIONS["resume"].permission)
    return render(request, "runpage/run_detail.html", {
        "detail": detail, "run": detail.run, "buttons": buttons, "page_url": page_url,
        "may_replenish": may_replenish,
        "config": config, "timeline_limit": f"{TIMELINE_LIMIT:,}",
    })


@require_GET
@login_required
def run_live(request: HttpRequest, run_id: UUID) -> JsonResponse:
    """The run page's refresh after a websocket delta: answer, fields, new timeline rows."""
    try:
        after = max(int(request.GET.get("after", "0")), 0)
    except ValueError:
        after = 0
    try:
        return JsonResponse(live_state(run_id, user=request.user, after=after))
    except Run.DoesNotExist:
        return JsonResponse({"ok": False, "code": "not_found",
                             "message": f"no run {run_id}"}, status=404)


ZERO_ID = UUID(int=0)


# One table row; rendered with format_html (every value escaped) because 50 rows through
# template nodes cost more than all of the page's queries at a million runs (benchmarks/board.py).
ROW_HTML = (
    '<tr data-run-id="{}" data-state="{}"><td class="select-cell"><input type="checkbox" '
    'name="ids" value="{}" form="selection-form" aria-label="Select {} {}"></td>'
    '<td><a href="{}"><code>{}</code></a></td><td class="wrap" title="{}">{}</td><td>{}</td>'
    '<td><span class="rp-state state-{}">{}</span></td><td>{}/{}</td><td>{}</td><td>{}</td>'
    '<td>{}</td><td><time datetime="{}">{}</time></td><td><time datetime="{}">{}</time></td>'
    '</tr>'
)
# Progress belongs to the attempt holding the lease; a finished or waiting run shows none.
SHOWS_PROGRESS = frozenset(state.value for state in LEASE_HOLDING_STATES)


def display_time(moment: datetime) -> str:
    """The one time format of server-rendered pages: TIME_ZONE, to the second, zone named."""
    return date_format(timezone.localtime(moment), "Y-m-d H:i:s T")


def table_rows(runs: list[Run]) -> SafeString:
    """The run list's table body."""
    link = reverse("run-detail", args=[ZERO_ID]).replace(str(ZERO_ID), "{}")
    labels = dict(RunState.choices)
    rows = []
    for run in runs:
        progress = "" if run.progress is None or run.state not in SHOWS_PROGRESS else \
            f"{run.progress}%"
        rows.append(format_html(
            ROW_HTML, run.pk, run.state, run.pk, run.name, run.short_id, link.format(run.pk),
            run.short_id, run.name, run.name, run.queue, run.state,
            labels.get(run.state, run.state), run.attempts, run.max_attempts, run.priority,
            progress, run.lease_owner, run.state_changed_at.isoformat(),
            display_time(run.state_changed_at), run.created_at.isoformat(),
            display_time(run.created_at),
        ))
    return mark_safe("".join(rows))  # each row is format_html output


@require_GET
@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    """Runs matching the URL's filters, newest state change first, one keyset page at a time."""
    runs_filter = RunFilter.from_query(request.GET)
    page = page_of_runs(runs_filter, after=Cursor.decode(request.GET.get("after")),
                        before=Cursor.decode(request.GET.get("before")))
    bulk_choices = [(name, ACTIONS[name].label) for name in bulk.BULK_ACTIONS
                    if request.user.has_perm(ACTIONS[name].permission)]
    query = runs_filter.as_query()
    return render(request, "runpage/run_list.html", {
        "filter": runs_filter,
        "first_url": f"?{urlencode(query)}",
        "next_url": f"?{urlencode({**query, 'after': page.next_cursor})}"
        if page.next_cursor else "",
        "previous_url": f"?{urlencode({**query, 'before': page.previous_cursor})}"
        if page.previous_cursor else "",
        "filter_query": runs_filter.as_query(),
        "page": page,
        "rows": table_rows(page.runs),
        "count": bounded_count(filtered_runs(runs_filter)),
        "queues": distinct_queues(),
        "states": RunState.choices,
        "bulk_choices": bulk_choices,
        "search_help": SEARCH_HELP,
        "bulk_cap": bulk.bulk_cap(),
    })
