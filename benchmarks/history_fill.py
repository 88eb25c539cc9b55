"""Set-based fill of the history for benchmarks/board.py: every run's audit trail and the
rollups, totals and cursor the fold would have left after folding it.

The rollups are written directly with SQL, not by running the fold over a change log: folding
five million rows through the real fold (1,000 per batch) would take far longer than the rest
of the benchmark. The SQL reproduces what `runs.history.fold._Folding` writes for each move
(`submitted`, `in:`/`out:`, the `dwell:`/`wait`/`run` latency histograms in the same log-scaled
buckets; grains 60/600/3600 for (queue, name), (queue, all) and (all, all); the all-time
grain), derived from the same per-run paths the audit trail is generated from, so the totals
(`StateTotal` = the runs per state now) minus the rollups' moves give the exact counts of any
past minute. Minute and ten-minute rows are written only for the windows rollup retention
keeps (`runs.history.pruning`), as a fold running with that retention would have left them.
"""

from __future__ import annotations

from datetime import timedelta

from runs.history.buckets import (
    ALL_TIME,
    HOUR,
    MAX_BUCKET,
    MINUTE,
    STEPS_PER_DOUBLING,
    TEN_MINUTES,
)
from runs.history.fold import EPOCH, FOLD_NAME, READER_PREFIX
from runs.history.pruning import KEEP

# Each run's moves, by the state it ends in: created into `scheduled`, then on. Failed runs
# went round a retry once. About 5.1 audit rows per run with STATE_SHARES.
PATHS = {
    "scheduled": ["scheduled"],
    "ready": ["scheduled", "ready"],
    "leased": ["scheduled", "ready", "leased"],
    "running": ["scheduled", "ready", "leased", "running"],
    "retry_wait": ["scheduled", "ready", "leased", "running", "retry_wait"],
    "suspended": ["scheduled", "ready", "suspended"],
    "completed": ["scheduled", "ready", "leased", "running", "completed"],
    "failed": ["scheduled", "ready", "leased", "running", "retry_wait", "ready", "leased",
               "running", "failed"],
    "canceled": ["scheduled", "ready", "canceled"],
}
# Seconds between a run's consecutive moves: 1, 2, 4 … 128 by run, so latencies spread over
# eight histogram buckets (a spread of 1 to 120 s in 1 s steps, 28 buckets, made the rollups
# 3.5 times as many rows and the fill several minutes long).
GAP = "(2 ^ ((r.payload->>'n')::int % 8))::int"
TERMINAL = ("completed", "failed", "canceled")


def path_count(state: str) -> int:
    return len(PATHS[state])


def create_paths(cursor) -> None:
    cursor.execute("CREATE TEMP TABLE bench_paths (state text PRIMARY KEY, path text[])")
    cursor.executemany("INSERT INTO bench_paths VALUES (%s, %s)", list(PATHS.items()))


def fill_transitions(cursor) -> None:
    """Every run's audit trail along its path, one row per move, in order per run."""
    cursor.execute(f"""
        INSERT INTO runs_transition (run_id, from_state, to_state, at, actor, reason, attempt)
        SELECT r.id, COALESCE(p.path[k - 1], ''), p.path[k],
               r.created_at + (k - 1) * {GAP} * interval '1 second', 'bench', 'generated', 1
        FROM runs_run r JOIN bench_paths p ON p.state = r.state
        CROSS JOIN LATERAL generate_series(1, cardinality(p.path)) AS k
    """)


def _steps(since_sql: str) -> str:
    """Every move stamped at or after `since_sql`, with what the fold derives from it."""
    bucket = (f"CASE WHEN ms < 1 THEN 0 ELSE least({MAX_BUCKET}, "
              f"floor({STEPS_PER_DOUBLING} * ln(ms) / ln(2)))::int END")
    return f"""
        SELECT s.*, {bucket} AS bucket FROM (
            SELECT r.queue, r.name, k, COALESCE(p.path[k - 1], '') AS source,
                   p.path[k] AS target,
                   r.created_at + (k - 1) * {GAP} * interval '1 second' AS at,
                   {GAP} * 1000 AS ms
            FROM runs_run r JOIN bench_paths p ON p.state = r.state
            CROSS JOIN LATERAL generate_series(1, cardinality(p.path)) AS k
            WHERE r.created_at >= {since_sql} - interval '1 hour'
        ) AS s WHERE s.at >= {since_sql}
    """


def _measures(since_sql: str, grain: int) -> str:
    """The fold's increments per (grain bucket, queue, name, measure, latency bucket)."""
    terminal = ", ".join(f"'{state}'" for state in TERMINAL)
    return f"""
        SELECT date_bin(interval '{grain} seconds', t.at, timestamptz 'epoch') AS start,
               t.queue, t.name, m.measure, m.bucket, count(*) AS n, sum(m.ms) AS ms
        FROM ({_steps(since_sql)}) AS t
        CROSS JOIN LATERAL (VALUES
            (CASE WHEN t.k = 1 THEN 'submitted' ELSE 'out:' || t.source END, 0, 0),
            ('in:' || t.target, 0, 0),
            (CASE WHEN t.k > 1 THEN 'dwell:' || t.source END, t.bucket, t.ms),
            (CASE WHEN t.source = 'ready' AND t.target = 'leased' THEN 'wait' END,
             t.bucket, t.ms),
            (CASE WHEN t.source = 'running' AND t.target IN ({terminal}) THEN 'run' END,
             t.bucket, t.ms)
        ) AS m(measure, bucket, ms)
        WHERE m.measure IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5
    """


def fill_rollups(cursor) -> None:
    """Rollup rows per grain for the window retention keeps, in three dimensions, and the
    all-time rows; one aggregation pass over the generated moves per grain."""
    windows = {MINUTE: KEEP[MINUTE], TEN_MINUTES: KEEP[TEN_MINUTES], HOUR: None}
    for grain, keep in windows.items():
        since = ("timestamptz '1970-01-01 00:00:00+00'" if keep is None else
                 f"date_bin(interval '{grain} seconds', now() - interval "
                 f"'{int(keep / timedelta(seconds=1))} seconds', timestamptz 'epoch')")
        cursor.execute(f"CREATE TEMP TABLE bench_g{grain} AS {_measures(since, grain)}")
        for queue, name, group in (("queue", "name", "queue, name"),
                                   ("queue", "''", "queue"), ("''", "''", "")):
            group_by = f"GROUP BY start, measure, bucket{', ' + group if group else ''}"
            cursor.execute(f"""
                INSERT INTO runs_rollup (grain, start, queue, name, measure, bucket, count,
                                            total_ms)
                SELECT {grain}, start, {queue}, {name}, measure, bucket, sum(n), sum(ms)
                FROM bench_g{grain} {group_by}
            """)
    cursor.execute(f"""
        INSERT INTO runs_rollup (grain, start, queue, name, measure, bucket, count, total_ms)
        SELECT {ALL_TIME}, %s, '', '', measure, bucket, sum(n), sum(ms)
        FROM bench_g{HOUR} GROUP BY measure, bucket
    """, [EPOCH])


def fill_fold_state(cursor) -> None:
    """The fold's counted state after the rollups above: totals = runs per state now,
    cursor and change-log reader at the log's current end."""
    cursor.execute("""
        INSERT INTO runs_statetotal (queue, name, state, count)
        SELECT queue, name, state, count(*) FROM runs_run GROUP BY 1, 2, 3
    """)
    cursor.execute("SELECT coalesce(max(txid::text::bigint), 0), coalesce(max(id), 0) "
                   "FROM runs_change")
    txid, change_id = cursor.fetchone()
    cursor.execute("""
        INSERT INTO runs_foldcursor (name, txid, change_id, initialized, baseline, folded_at)
        VALUES (%s, %s, %s, true, NULL, now())
    """, [FOLD_NAME, txid, change_id])
    cursor.execute("""
        INSERT INTO runs_changereader (name, txid, change_id, seen_at) VALUES (%s, %s, %s, now())
        ON CONFLICT (name) DO UPDATE SET txid = excluded.txid, change_id = excluded.change_id
    """, [READER_PREFIX + FOLD_NAME, txid, change_id])


def fill_change_stream(cursor, *, runs: int, spread: int = 300) -> int:
    """`runs` new runs as the write path leaves them — the run row (completed), its audit
    trail and its change-log rows (created → ready, leased, running, completed) — with the
    runs' moves interleaved `spread` rows apart, as concurrent runs are. Returns log rows."""
    steps = ["ready", "leased", "running", "completed"]
    cursor.execute("""
        CREATE TEMP TABLE bench_stream AS
        SELECT gen_random_uuid() AS id, i, 'job-' || (i %% 20) AS name, 'q' || (i %% 8) AS queue,
               now() - interval '30 seconds' + i * interval '5 milliseconds' AS created
        FROM generate_series(1, %s) AS i
    """, [runs])
    cursor.execute("""
        INSERT INTO runs_run (id, name, queue, payload, priority, state, version, scheduled_at,
            attempts, max_attempts, backoff_base_seconds, backoff_factor, backoff_cap_seconds,
            backoff_jitter, lease_owner, lease_seconds, result, last_error, suspend_reason,
            suspended_by, budget, consumed, created_at, state_changed_at, started_at,
            finished_at)
        SELECT id, name, queue, jsonb_build_object('n', i), 0, 'completed', 4, created, 1, 3,
               2, 2, 300, 0.1, '', 30, '{"ok": true}'::jsonb, '', '', '', '{}'::jsonb,
               '{}'::jsonb, created, created + interval '3 seconds',
               created + interval '2 seconds', created + interval '3 seconds'
        FROM bench_stream
    """)
    cursor.execute("""
        INSERT INTO runs_transition (run_id, from_state, to_state, at, actor, reason, attempt)
        SELECT s.id, COALESCE((%s::text[])[k - 1], ''), (%s::text[])[k],
               s.created + (k - 1) * interval '1 second', 'bench', '', 1
        FROM bench_stream s CROSS JOIN generate_series(1, 4) AS k ORDER BY s.id, k
    """, [steps, steps])
    cursor.execute("""
        INSERT INTO runs_change (run_id, version, kind, from_state, to_state, queue, name, at,
                                 actor, reason)
        SELECT s.id, k, CASE WHEN k = 1 THEN 'created' ELSE 'transition' END,
               COALESCE((%s::text[])[k - 1], ''), (%s::text[])[k], s.queue, s.name,
               s.created + (k - 1) * interval '1 second', 'bench', ''
        FROM bench_stream s CROSS JOIN generate_series(1, 4) AS k
        ORDER BY s.i + (k - 1) * %s, k
    """, [steps, steps, spread])
    return runs * len(steps)
