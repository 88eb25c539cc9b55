from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The operator UI: board, run pages, actions and the websocket fan-out hub."""

    name = "dashboard"
