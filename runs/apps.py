from django.apps import AppConfig


class RunsConfig(AppConfig):
    """The run lifecycle: models, services, clock and executor API."""

    name = "runs"
    default_auto_field = "django.db.models.BigAutoField"
