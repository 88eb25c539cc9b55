"""`manage.py create_token NAME`: issue an executor token and print its secret once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.tokens import ExecutorToken


class Command(BaseCommand):
    help = "Create a bearer token for the executor NAME and print it (it is shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the executor the token acts as (its lease owner name)")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        try:
            token, secret = ExecutorToken.issue(name, created_by="manage.py create_token")
        except ValueError as error:
            raise CommandError(str(error)) from error
        self.stderr.write(f"Token {token.masked} for executor {token.name!r}; "
                          "store it now, it is not shown again:")
        self.stdout.write(secret)
