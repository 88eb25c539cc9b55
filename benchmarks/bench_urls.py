"""URLs for benchmarks/board.py: the project's, plus a stock ModelAdmin for Run as the baseline
a Django user would otherwise have (default paginator, full-result count, no tuning)."""

from django.contrib.admin import AdminSite, ModelAdmin
from django.urls import path

from dashboard.site_urls import urlpatterns as project_urlpatterns
from runs.models import Run


class StockRunAdmin(ModelAdmin):
    list_display = ("id", "name", "queue", "state", "state_changed_at")
    list_filter = ("state",)
    search_fields = ("id", "name")


baseline_site = AdminSite(name="baseline")
baseline_site.register(Run, StockRunAdmin)

urlpatterns = [path("baseline-admin/", baseline_site.urls), *project_urlpatterns]
