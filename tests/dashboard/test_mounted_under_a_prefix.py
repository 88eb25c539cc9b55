"""Runboard included under a host project's prefix: every page, link, script path, the API,
its docs and the websocket live under it, and login goes to the host's LOGIN_URL."""

from __future__ import annotations

import json
import re

import pytest
from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import clear_url_caches

from dashboard.routing import websocket_urls
from runs.states import RunState

from .conftest import session_cookie

PREFIX = "/runboard/"
HOST_LOGIN = "/accounts/login/"
# Paths a page may point at outside the prefix: static files and the host's login.
OUTSIDE_THE_PREFIX = ("/static/", HOST_LOGIN)
PATH_ATTRIBUTE = re.compile(r'(?:href|src|action|data-[a-z-]+)="(/[^"]*)"')


@pytest.fixture
def mounted(settings):
    settings.ROOT_URLCONF = "tests.dashboard.prefixed_urls"
    settings.LOGIN_URL = "host-login"
    clear_url_caches()
    yield
    clear_url_caches()


def paths_on(html: str) -> list[str]:
    """Every absolute path in attributes and in the page's reversed links."""
    paths = PATH_ATTRIBUTE.findall(html)
    links = re.search(r'<script id="runboard-links" type="application/json">(.*?)</script>',
                      html, re.S)
    assert links, "every page embeds its links"
    paths += [value for value in json.loads(links.group(1)).values() if value.startswith("/")]
    return paths


def assert_all_under_the_prefix(html: str) -> None:
    strays = [p for p in paths_on(html)
              if not p.startswith(PREFIX) and not p.startswith(OUTSIDE_THE_PREFIX)]
    assert strays == []


@pytest.mark.django_db
def test_every_page_and_link_lives_under_the_prefix(mounted, client, operator, make_run):
    run = make_run(RunState.RUNNING)
    client.force_login(operator)
    for page in ("", "runs/", f"runs/{run.pk}/", "queues/", "executors/"):
        response = client.get(PREFIX + page)
        assert response.status_code == 200, page
        assert_all_under_the_prefix(response.content.decode())
    board = client.get(PREFIX).content.decode()
    assert f'data-socket-path="{PREFIX}ws/board/"' in board
    assert client.get(f"{PREFIX}runs/{run.pk}/live/").status_code == 200


@pytest.mark.django_db
def test_actions_api_docs_and_health_answer_under_the_prefix(mounted, client, operator,
                                                               make_run):
    run = make_run(RunState.RUNNING)
    client.force_login(operator)
    answer = client.post(f"{PREFIX}runs/{run.pk}/actions/cancel/",
                         HTTP_ACCEPT="application/json")
    assert answer.status_code == 200 and answer.json()["run"]["state"] == "canceled"
    assert client.get(f"{PREFIX}api/runs/{run.pk}").json()["state"] == "canceled"
    docs = client.get(f"{PREFIX}api/docs")
    assert docs.status_code == 200 and f"{PREFIX}api/openapi.json" in docs.content.decode()
    assert client.get(f"{PREFIX}healthz").status_code == 200


@pytest.mark.django_db
def test_anonymous_visitors_go_to_the_host_login(mounted):
    response = Client().get(f"{PREFIX}runs/")
    assert response.status_code == 302
    assert response["Location"] == f"{HOST_LOGIN}?next={PREFIX}runs/"


@pytest.mark.django_db
def test_no_admin_or_logout_link_when_the_host_routes_none(mounted, client, operator):
    operator.is_staff = True
    operator.save()
    client.force_login(operator)
    html = client.get(PREFIX).content.decode()
    assert "Admin</a>" not in html and "Log out" not in html


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_websocket_answers_under_the_prefix(mounted, operator, make_run):
    run = await sync_to_async(make_run)(RunState.READY)
    cookie = await sync_to_async(session_cookie)(operator)
    application = AuthMiddlewareStack(URLRouter(websocket_urls("runboard/")))
    socket = WebsocketCommunicator(application, f"{PREFIX}ws/board/",
                                   headers=[(b"cookie", f"sessionid={cookie}".encode())])
    connected, _ = await socket.connect(timeout=5)
    assert connected
    snapshot = await socket.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot"
    ready = next(c for c in snapshot["columns"] if c["state"] == "ready")
    assert [card["id"] for card in ready["cards"]] == [str(run.pk)]
    await socket.disconnect()


def test_the_check_sees_a_stray_path():
    html = ('<a href="/runs/">x</a><script id="runboard-links" type="application/json">'
            '{"board": "/runboard/"}</script>')
    with pytest.raises(AssertionError):
        assert_all_under_the_prefix(html)


def test_no_app_template_extends_a_name_the_host_project_owns():
    # A host project's own base.html (in its DIRS) would replace ours for every page that
    # extends the bare name.
    from pathlib import Path

    import dashboard

    templates = Path(dashboard.__file__).parent / "templates"
    offenders = [str(path.relative_to(templates)) for path in templates.rglob("*.html")
                 if re.search(r"""{%\s*extends\s+["']base\.html["']""", path.read_text())]
    assert offenders == []
