from django.apps import AppConfig


class RunsConfig(AppConfig):
    """The run lifecycle: models, services, clock and executor API."""

    name = "runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # runs/admin.py belongs to the run pages; the executor tokens' admin is its own module.
        # Queue pauses live in their own module too (runs/queues.py), with their admin.
        from . import admin_queues, admin_tokens, queues  # noqa: F401
