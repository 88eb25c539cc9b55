"""The board's routes: the page and the action endpoint the board, run page and list share."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.board, name="board"),
    path("runs/<uuid:run_id>/actions/<str:name>/", views.run_action, name="run-action"),
]
