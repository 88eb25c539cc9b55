"""Routes of the History page and its data."""

from django.urls import path

from . import views

urlpatterns = [
    path("history/", views.history_page, name="history"),
    path("history/data", views.history_data, name="history-data"),
]
