"""The Django admin for runs: fast at a million rows, lifecycle read-only, actions via services.

- No full-table count: `show_full_result_count = False` and a paginator that counts at most
  COUNT_CAP + 1 rows (PostgreSQL's planner estimate beyond that).
- `state` and every lifecycle field are read-only; a save writes only the fields the form
  changed, so an admin edit never overwrites a transition that committed meanwhile.
- Actions call `runs.actions` (→ `runs.services`), one run at a time, and report outcomes.
- Adding runs is refused (submit them through the API, which writes the audit row and
  announces them); deleting runs is refused too: the Transition rows are audit history.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

from . import bulk
from .actions import ACTIONS
from .bulk_models import BulkOperation
from .listing import COUNT_CAP, distinct_queues, id_search_q, with_short_id
from .models import LIFECYCLE_FIELDS, Run, Transition
from .presentation import STATE_COLOURS

# Editable on a run that has not finished; everything else is read-only.
EDITABLE_FIELDS = ("name", "queue", "payload", "priority", "scheduled_at", "max_attempts",
                   "backoff_base_seconds", "backoff_factor", "backoff_cap_seconds",
                   "backoff_jitter")
# Large columns the changelist never shows.
CHANGELIST_DEFERRED = ("payload", "result", "last_error", "budget", "consumed",
                       "suspend_reason")


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows; past that, the planner's estimate (PostgreSQL)."""

    @cached_property
    def count(self) -> int:
        limited = self.object_list.order_by().values("pk")[: COUNT_CAP + 1].count()
        if limited <= COUNT_CAP:
            return limited
        return max(planner_estimate(self.object_list), limited)


def planner_estimate(queryset: QuerySet) -> int:
    """PostgreSQL's row estimate for the query (no rows read); 0 elsewhere."""
    if connection.vendor != "postgresql":
        return 0
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return int(plan[0]["Plan"]["Plan Rows"])


class QueueFilter(admin.SimpleListFilter):
    """Queues read with a loose index scan, not `SELECT DISTINCT` over every run."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(queue, queue) for queue in distinct_queues()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(queue=self.value()) if self.value() else queryset


class TransitionInline(admin.TabularInline):
    """The run's audit trail, in order, read-only."""

    model = Transition
    fields = ("at", "from_state", "to_state", "actor", "reason", "attempt")
    readonly_fields = fields
    ordering = ("id",)
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _action_permission(name: str) -> Any:
    def has_permission(self: RunAdmin, request: HttpRequest) -> bool:
        return request.user.has_perm(ACTIONS[name].permission)
    return has_permission


class ReadOnlyAdmin(admin.ModelAdmin):
    """History: list and view only, no add, change or delete."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("short_id", "name", "queue", "coloured_state", "attempts_of_max",
                    "priority", "lease_owner", "state_changed_at", "created_at")
    list_display_links = ("short_id", "name")
    list_filter = ("state", QueueFilter, "created_at")
    search_fields = ("name", "=lease_owner")
    search_help_text = ("A full run id or its last 8+ characters, a name (contains) or a "
                        "lease owner (exact).")
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = 50
    inlines = (TransitionInline,)
    actions = ("cancel_runs", "suspend_runs", "resume_runs", "retry_runs", "rerun_runs")

    def view_on_site(self, run: Run) -> str:
        """"View on site" opens the run page."""
        return reverse("run-detail", args=[run.pk])

    @admin.display(description="id", ordering="id")
    def short_id(self, run: Run) -> str:
        return run.short_id

    @admin.display(description="state", ordering="state")
    def coloured_state(self, run: Run) -> str:
        return format_html(
            '<span class="run-state state-{}" style="background:{};color:#0f1419;'
            'padding:1px 8px;border-radius:10px;font-weight:600">{}</span>',
            run.state, STATE_COLOURS.get(run.state, "#ccc"), run.get_state_display())

    @admin.display(description="attempts")
    def attempts_of_max(self, run: Run) -> str:
        return f"{run.attempts}/{run.max_attempts}"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        runs = super().get_queryset(request)
        match = request.resolver_match
        if match and match.url_name and match.url_name.endswith("changelist"):
            runs = runs.defer(*CHANGELIST_DEFERRED)
        return runs

    def get_search_results(self, request: HttpRequest, queryset: QuerySet,
                           search_term: str) -> tuple[QuerySet, bool]:
        """An id (full, or its short suffix) goes through the pk / short-id index."""
        by_id = id_search_q(search_term.strip().lower()) if search_term.strip() else None
        if by_id is not None:
            return with_short_id(queryset).filter(by_id), False
        return super().get_search_results(request, queryset, search_term)

    def has_change_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        """A finished run never changes: its page is view-only (no Save)."""
        if obj is not None and obj.run_state.is_terminal:
            return False
        return super().has_change_permission(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Run | None = None) -> list[str]:
        every = [f.name for f in Run._meta.fields]
        if obj is not None and obj.run_state.is_terminal:
            return every  # a finished run never changes
        return [name for name in every if name not in EDITABLE_FIELDS]

    def save_model(self, request: HttpRequest, obj: Run, form: Any, change: bool) -> None:
        """Write only what the form changed: never the lifecycle columns, which a transition
        may have moved since the form was loaded."""
        changed = [name for name in form.changed_data
                   if name in EDITABLE_FIELDS and name not in LIFECYCLE_FIELDS]
        if changed:
            obj.save(update_fields=changed)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    has_cancel_permission = _action_permission("cancel")
    has_suspend_permission = _action_permission("suspend")
    has_resume_permission = _action_permission("resume")
    has_retry_permission = _action_permission("retry")
    has_rerun_permission = _action_permission("rerun")

    @admin.action(description="Cancel selected runs", permissions=["cancel"])
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.act(request, queryset, "cancel")

    @admin.action(description="Suspend selected runs", permissions=["suspend"])
    def suspend_runs(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.act(request, queryset, "suspend")

    @admin.action(description="Resume selected runs", permissions=["resume"])
    def resume_runs(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.act(request, queryset, "resume")

    @admin.action(description="Retry selected runs now", permissions=["retry"])
    def retry_runs(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.act(request, queryset, "retry")

    @admin.action(description="Rerun selected runs", permissions=["rerun"])
    def rerun_runs(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.act(request, queryset, "rerun")

    def act(self, request: HttpRequest, queryset: QuerySet, name: str) -> None:
        """Run one registry action on each selected run (capped) and report the outcomes."""
        action = bulk.bulk_action(name)
        cap = bulk.bulk_cap()
        ids = list(queryset.order_by().values_list("pk", flat=True)[: cap + 1])
        if len(ids) > cap:
            self.message_user(request, bulk.TOO_MANY.format(
                count=f"More than {cap:,}", action=name, cap=cap), messages.ERROR)
            return
        outcomes = bulk.act_on_ids(action, ids, actor=request.user.get_username())
        level = (messages.SUCCESS if all(o == action.past_tense for o in outcomes.values())
                 else messages.WARNING)
        self.message_user(request, bulk.summarize(outcomes), level)


@admin.register(Transition)
class TransitionAdmin(ReadOnlyAdmin):
    """The audit trail: read-only, no add, change or delete."""

    list_display = ("id", "run", "from_state", "to_state", "at", "actor", "reason", "attempt")
    list_filter = ("to_state",)
    list_select_related = ("run",)
    search_fields = ("=actor",)
    search_help_text = "A run id (full or its last 8+ characters) or an actor (exact)."
    ordering = ("-id",)
    show_full_result_count = False
    paginator = CappedCountPaginator

    def get_search_results(self, request: HttpRequest, queryset: QuerySet,
                           search_term: str) -> tuple[QuerySet, bool]:
        by_id = id_search_q(search_term.strip().lower()) if search_term.strip() else None
        if by_id is not None:
            runs = with_short_id(Run.objects.all()).filter(by_id).values("pk")[:100]
            return queryset.filter(run__in=runs), False
        return super().get_search_results(request, queryset, search_term)


@admin.register(BulkOperation)
class BulkOperationAdmin(ReadOnlyAdmin):
    """Who acted on which runs by filter, and the outcomes: read-only history."""

    list_display = ("created_at", "user", "action", "status", "matched", "finished_at")
    list_filter = ("action", "status")
    exclude = ("run_ids", "outcomes")
    readonly_fields = ("user", "action", "filter", "reason", "matched", "skipped", "status",
                       "created_at", "finished_at", "outcome_summary")

    @admin.display(description="outcomes")
    def outcome_summary(self, operation: BulkOperation) -> str:
        return bulk.summarize(operation.outcomes, skipped=operation.skipped)

