"""`python manage.py fold_history [--batch N]`: fold the change log into the history now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.history.fold import FOLD_BATCH, fold_all


class Command(BaseCommand):
    help = ("Fold every committed change-log row the history has not read yet into its "
            "rollups and totals. The clock does this every few seconds; safe beside it.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=FOLD_BATCH,
                            help=f"rows per transaction (default {FOLD_BATCH})")

    def handle(self, *args: Any, batch: int, **options: Any) -> None:
        if batch < 1:
            raise CommandError("--batch must be ≥ 1")
        folded = fold_all(limit=batch)
        self.stdout.write(f"folded {folded} change-log row(s) into the history")
