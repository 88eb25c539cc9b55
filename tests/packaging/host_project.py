"""The files of a minimal Django project that mounts Runboard the way README says, written by
tests/packaging/test_wheel.py next to a fresh virtualenv holding only the built wheel."""

from __future__ import annotations

from pathlib import Path

MANAGE = '''\
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostsite.settings")
from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
'''

SETTINGS = '''\
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "host-project-test-key"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "jobs",
]
INSTALLED_APPS += ["runs", "dashboard"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "hostsite.urls"
ASGI_APPLICATION = "hostsite.asgi.application"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DATABASES = {"default": {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": BASE_DIR / "db.sqlite3",
    # the server, the worker and the shell write to one file: take the lock at BEGIN
    "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
}}
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "static"
LOGIN_URL = "admin:login"
TASKS = {"default": {"BACKEND": "runs.tasks.RunboardBackend", "QUEUES": ["default"]}}
'''

URLS = '''\
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("runboard/", include("dashboard.urls")),
]
'''

ASGI = '''\
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostsite.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from dashboard.routing import websocket_urls  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter([
        *websocket_urls("runboard/"),
    ]))),
})
'''

TASKS = '''\
from django_tasks import task


@task()
def add(a: int, b: int) -> int:
    return a + b
'''


def write_host_project(root: Path) -> None:
    """manage.py, the hostsite package (settings, urls, asgi) and a `jobs` app with a task."""
    files = {
        "manage.py": MANAGE,
        "hostsite/__init__.py": "",
        "hostsite/settings.py": SETTINGS,
        "hostsite/urls.py": URLS,
        "hostsite/asgi.py": ASGI,
        "jobs/__init__.py": "",
        "jobs/tasks.py": TASKS,
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
