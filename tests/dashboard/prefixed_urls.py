"""A host project's URL conf as README tells it to write one: its own login, Runboard under
`runboard/`, and no admin or logout route (Runboard must not need them)."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(
        template_name="registration/login.html"), name="host-login"),
    path("runboard/", include("dashboard.urls")),
]
