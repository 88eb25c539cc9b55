"""`python manage.py prune_runs [--finished-before ISO | --older-than DAYS]`: retention."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from runs.retention import RETENTION_BATCH, RetentionOff, prune_finished_runs, retention_cutoff


class Command(BaseCommand):
    help = ("Delete finished runs (completed, failed, canceled) that finished before a cutoff, "
            "with their audit rows, in batches; history rollups stay. Default cutoff: "
            "RUNBOARD['FINISHED_RUN_RETENTION'] days ago. Safe to interrupt and repeat.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--finished-before", metavar="ISO_TIME",
                            help="e.g. 2026-11-01T00:00:00Z")
        parser.add_argument("--older-than", type=float, metavar="DAYS")
        parser.add_argument("--batch", type=int, default=RETENTION_BATCH)

    def handle(self, *args: Any, finished_before: str | None, older_than: float | None,
               batch: int, **options: Any) -> None:
        if finished_before and older_than is not None:
            raise CommandError("give --finished-before or --older-than, not both")
        if batch < 1:
            raise CommandError("--batch must be ≥ 1")
        if finished_before:
            cutoff = parse_datetime(finished_before)
            if cutoff is None:
                raise CommandError(f"--finished-before: not an ISO time: {finished_before!r}")
            if timezone.is_naive(cutoff):
                cutoff = timezone.make_aware(cutoff, UTC)
        elif older_than is not None:
            if older_than < 0:
                raise CommandError("--older-than must be ≥ 0")
            cutoff = timezone.now() - timedelta(days=older_than)
        else:
            try:
                cutoff = retention_cutoff()
            except RetentionOff as error:
                raise CommandError(str(error)) from error
        report = prune_finished_runs(finished_before=cutoff, batch=batch)
        self.stdout.write(f"{report.describe()} (finished before {cutoff.isoformat()})")
