"""The standalone site's URLs (`make run`, `manage.py serve`): the admin, login/logout, and
Runboard itself at the root. A host project writes its own and includes `dashboard.urls`."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("dashboard.urls")),
]
