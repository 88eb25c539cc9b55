"""The no-op tasks benchmarks/tasks.py enqueues, one per backend."""

from runs.tasks.compat import task


@task
def noop_runboard() -> None:
    return None


@task(backend="db")
def noop_db() -> None:
    return None
