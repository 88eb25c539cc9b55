from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The operator UI: board, run pages, actions and the websocket fan-out hub."""

    name = "dashboard"

    def ready(self) -> None:
        from runs.events import run_changed

        from .broadcast import on_run_changed

        # One group_send per committed event; each process's hub fans it out locally.
        run_changed.connect(on_run_changed, dispatch_uid="dashboard.broadcast")
