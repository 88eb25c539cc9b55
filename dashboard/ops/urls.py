"""Routes of the operations pages: queues (with pause / resume) and executors."""

from django.urls import path

from . import views

urlpatterns = [
    path("queues/", views.queues_page, name="queues"),
    path("queues/<str:verb>/", views.queue_action, name="queue-action"),
    path("executors/", views.executors_page, name="executors"),
]
