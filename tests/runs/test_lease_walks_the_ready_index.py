"""A lease reads the first ready runs off `run_lease_order` (or, per queue asked for,
`run_lease_queue_order`), whatever the backlog: it never reads and sorts every ready run (which
it did: 0.9 ms per lease at a backlog of 1,000, 80-206 ms at 50,000 of a million runs)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction

from runs import reads
from runs.models import Run
from runs.queues import QueuePause
from runs.states import RunState

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def generic_plan(sql: str, params: list[str]) -> str:
    """EXPLAIN of `sql` as a prepared statement's generic plan (what psycopg's prepared
    statements get after their first executions): no parameter value helps the planner."""
    numbered = sql
    for number in range(1, len(params) + 1):
        numbered = numbered.replace("%s", f"${number}", 1)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE lease_plan AS {numbered}")
        arguments = f"({', '.join(['%s'] * len(params))})" if params else ""
        cursor.execute(f"EXPLAIN EXECUTE lease_plan{arguments}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE lease_plan")
    return plan


@pytest.mark.parametrize("queues", [None, ["queue-1"], ["queue-1", "queue-2"], ["none", "other"]])
def test_the_lease_query_walks_the_ready_index_without_sorting(now, queues):
    Run.objects.bulk_create(
        [Run(name="backlog", state=RunState.READY, queue=f"queue-{i % 20}",
             created_at=now + timedelta(microseconds=i))
         for i in range(2000)]
        + [Run(name="done", state=RunState.COMPLETED) for _ in range(500)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_run")
        cursor.execute("ANALYZE runs_queuepause")
    sql = reads._candidates_sql(connection.alias, Run, RunState.READY.value, QueuePause,
                                len(queues) if queues else None, 1, True)
    plan = generic_plan(sql, list(queues or ()))
    assert "Seq Scan on runs_run" not in plan, plan
    if queues and len(queues) > 1:
        # One walk of `run_lease_queue_order` per queue; only their first rows are sorted.
        assert "Function Scan on unnest" in plan and "run_lease_queue_order" in plan, plan
    else:
        assert "Index Scan using run_lease_order" in plan or "run_lease_queue_order" in plan
        assert "Sort" not in plan, plan
