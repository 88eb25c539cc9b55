"""Runboard URLs: the admin, login/logout, and the operator UI."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from .health import healthz
from .metrics import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("dashboard.history.urls")),  # /history/, /board/at, /runs/errors/
    path("runs/", include("dashboard.runpage.urls")),
    path("", include("dashboard.ops.urls")),  # /queues/, /executors/
    path("", include("runs.api.urls")),  # /api/… (executor HTTP API)
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("", include("dashboard.board_urls")),
]
