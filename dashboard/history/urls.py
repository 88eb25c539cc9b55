"""Routes of the History page and its data."""

from django.urls import path

from . import errors_view, past, views

urlpatterns = [
    path("history/", views.history_page, name="history"),
    path("history/data", views.history_data, name="history-data"),
    path("board/at", past.board_at_data, name="board-at"),
    path("runs/errors/", errors_view.top_errors_page, name="top-errors"),
]
