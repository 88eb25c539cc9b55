"""`python manage.py prune_changes [--older-than DAYS]`: prune the change log now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.changelog.pruning import prune, retention


class Command(BaseCommand):
    help = ("Delete change-log rows past retention (RUNBOARD['CHANGE_LOG_RETENTION_DAYS'], "
            "default 7) that every live board has read, in batches. The clock does this every "
            "10 minutes; the audit trail is never pruned.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=float, default=None, metavar="DAYS",
                            help="keep this many days instead of the configured retention")

    def handle(self, *args: Any, older_than: float | None, **options: Any) -> None:
        if older_than is not None and older_than < 0:
            raise CommandError("--older-than must be ≥ 0")
        keep = timedelta(days=older_than) if older_than is not None else retention()
        removed = prune(keep=keep)
        self.stdout.write(f"pruned {removed} change-log row(s) older than {keep}")
