"""Routes of the History page and its data."""

from django.urls import path

from . import past, views

urlpatterns = [
    path("history/", views.history_page, name="history"),
    path("history/data", views.history_data, name="history-data"),
    path("board/at", past.board_at_data, name="board-at"),
]
