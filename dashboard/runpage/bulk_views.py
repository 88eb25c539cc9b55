"""Bulk actions by filter: preview (freeze the ids) and confirm (act on exactly those)."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods, require_POST

from runs import bulk
from runs.bulk_models import BulkOperation
from runs.exceptions import InvalidInput
from runs.listing import RunFilter

OUTCOME_ROWS_SHOWN = 200


def _refuse(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(request, "runpage/refused.html", {"message": message}, status=status)


def _selected_ids(request: HttpRequest) -> list[str] | None:
    """The ticked rows of a selection form (an empty selection selects nothing, never "all"),
    or None for "all matching"."""
    if request.POST.get("scope") != "selected":
        return None
    return request.POST.getlist("ids")


@require_POST
@login_required
def bulk_preview(request: HttpRequest) -> HttpResponse:
    """Freeze the runs the list's filter matches that the action applies to; show the preview."""
    runs_filter = RunFilter.from_query(request.POST)
    back = f"{reverse('run-list')}?{urlencode(runs_filter.as_query())}"
    try:
        operation = bulk.preview(user=request.user, action_name=request.POST.get("action", ""),
                                 runs_filter=runs_filter, reason=request.POST.get("reason", ""),
                                 run_ids=_selected_ids(request))
    except bulk.NotPermitted as error:
        return _refuse(request, error.message, 403)
    except InvalidInput as error:
        return _refuse(request, error.message, 400)
    except bulk.TooManyRuns as error:
        messages.error(request, error.message)
        return redirect(back)
    return redirect("run-bulk-operation", operation_id=operation.pk)


@require_http_methods(["GET", "POST"])
@login_required
def bulk_operation(request: HttpRequest, operation_id: UUID) -> HttpResponse:
    """GET: the preview (or, once confirmed, the outcomes). POST: confirm and act."""
    operation = get_object_or_404(BulkOperation, pk=operation_id, user=request.user)
    if request.method == "POST":
        try:
            operation = bulk.execute(operation, user=request.user)
        except bulk.NotPermitted as error:
            return _refuse(request, error.message, 403)
        except bulk.AlreadyStarted as error:
            messages.warning(request, error.message)
            return redirect("run-bulk-operation", operation_id=operation.pk)
        messages.success(request, bulk.summarize(operation.outcomes, skipped=operation.skipped))
        return redirect("run-bulk-operation", operation_id=operation.pk)
    action = bulk.bulk_action(operation.action)
    runs_filter = RunFilter.from_dict(operation.filter)
    not_done = [(run_id, outcome) for run_id, outcome in operation.outcomes.items()
                if outcome != action.past_tense]
    return render(request, "runpage/bulk_operation.html", {
        "operation": operation,
        "action": action,
        "filter": runs_filter,
        "list_url": f"{reverse('run-list')}?{urlencode(runs_filter.as_query())}",
        "summary": bulk.summarize(operation.outcomes, skipped=operation.skipped),
        "not_done": not_done[:OUTCOME_ROWS_SHOWN],
        "not_done_total": len(not_done),
        "sample_ids": operation.run_ids[:20],
        "stalled": bulk.is_stalled(operation),
        "already_rerun": bulk.already_rerun(operation),
        "runs_made": bulk.runs_made(operation),
    })
