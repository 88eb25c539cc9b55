"""Routes under /runs/: the list, one run's page and its live refresh, bulk actions.

The per-run action endpoint (`/runs/<id>/actions/<name>/`) belongs to the board's urls.
"""

from django.urls import path

from . import bulk_views, views

urlpatterns = [
    path("", views.run_list, name="run-list"),
    path("bulk/", bulk_views.bulk_preview, name="run-bulk"),
    path("bulk/<uuid:operation_id>/", bulk_views.bulk_operation, name="run-bulk-operation"),
    path("<uuid:run_id>/", views.run_page, name="run-detail"),
    path("<uuid:run_id>/live/", views.run_live, name="run-live"),
]
