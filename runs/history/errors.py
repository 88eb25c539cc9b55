"""Top errors: the most frequent first lines of `last_error` among failed and retrying runs
whose state changed within a time range (bounded by the `run_state_changed` index)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, Func, TextField

from runs.models import Run

ERROR_STATES = ("failed", "retry_wait")
TOP_ERRORS_LIMIT = 10
LINE_CHARS = 300


class FirstLine(Func):
    """The text before the first newline (at most LINE_CHARS characters), in SQL."""

    output_field = TextField()

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        sql, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            return f"left(split_part({sql}, E'\\n', 1), {LINE_CHARS})", params
        return (f"substr(substr({sql}, 1, instr({sql} || char(10), char(10)) - 1), 1, "
                f"{LINE_CHARS})", params * 2)


def top_errors(*, since: datetime, until: datetime, queue: str = "",
               limit: int = TOP_ERRORS_LIMIT) -> list[dict[str, Any]]:
    """[{"line", "count", "failed", "retry_wait"}], most frequent first."""
    runs = Run.objects.filter(state__in=ERROR_STATES, state_changed_at__gte=since,
                              state_changed_at__lt=until).exclude(last_error="")
    if queue:
        runs = runs.filter(queue=queue)
    rows = (runs.annotate(line=FirstLine("last_error")).order_by()
            .values("line", "state").annotate(n=Count("pk")))
    lines: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = lines.setdefault(row["line"], {"line": row["line"], "count": 0,
                                               "failed": 0, "retry_wait": 0})
        entry["count"] += row["n"]
        entry[row["state"]] += row["n"]
    return sorted(lines.values(), key=lambda e: (-e["count"], e["line"]))[:limit]
