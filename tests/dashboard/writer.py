"""A writer process for the live-board tests: `python -m tests.dashboard.writer N`.

Submits runs to the queue `faults` and walks each through lease → start → heartbeat →
complete (every fourth fails instead), committing one change at a time through the services,
as an executor would, and printing `<unix time> <run id> <state>` after each commit. N is how
many runs (0: until killed). Started, killed and restarted by the tests, never imported.
"""

from __future__ import annotations

import os
import sys
import time

import django


def main(runs: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    django.setup()
    from runs import services

    def committed(run_id: object, state: str) -> None:
        print(f"{time.time():.6f} {run_id} {state}", flush=True)

    done = 0
    while runs == 0 or done < runs:
        run = services.submit(name=f"burst-{done}", queue="faults", actor="writer")
        committed(run.pk, "ready")
        (leased,) = services.lease(executor="writer", queues=["faults"], limit=1)
        committed(leased.pk, "leased")
        services.start(leased.pk, executor="writer")
        committed(leased.pk, "running")
        services.heartbeat(leased.pk, executor="writer", progress=50)
        committed(leased.pk, "running")
        if done % 4 == 3:
            services.fail(leased.pk, executor="writer", error="boom", retryable=False)
            committed(leased.pk, "failed")
        else:
            services.complete(leased.pk, executor="writer", result={"n": done})
            committed(leased.pk, "completed")
        done += 1


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
