"""What the demo operator may open: links only to pages the user may see, and those work."""

from __future__ import annotations

import logging
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from runs.management.commands.demo import Command as DemoCommand
from runs.states import RunState
from tests.runpage.html import parse

pytestmark = pytest.mark.django_db


def link(html, text: str):
    return next((a for a in html.find_all("a") if a.text.strip() == text), None)


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_demo_operator_can_open_the_admin_the_top_bar_links_to(make_run):
    run = make_run(RunState.RUNNING)
    DemoCommand()._operator()
    client = logged_in(User.objects.get(username="demo"))
    board = parse(client.get("/").content)
    admin_link = link(board, "Admin")
    assert admin_link is not None
    assert client.get(admin_link.attrs["href"]).status_code == 200
    changelist = client.get(reverse("admin:runs_run_changelist"))
    assert changelist.status_code == 200
    assert run.short_id in changelist.content.decode()
    assert client.get(reverse("admin:runs_run_change", args=[run.pk])).status_code == 200


def test_staff_without_a_run_permission_gets_no_admin_link(make_run):
    run = make_run(RunState.RUNNING)
    user = User.objects.create_user("sam", password="pw-sam-123", is_staff=True)
    client = logged_in(user)
    assert link(parse(client.get("/").content), "Admin") is None
    page = parse(client.get(reverse("run-detail", args=[run.pk])).content)
    assert link(page, "admin") is None


def test_a_finished_run_admin_page_offers_no_save(admin_client_, make_run):
    open_run, finished = make_run(RunState.RUNNING), make_run(RunState.COMPLETED)
    assert 'name="_save"' in admin_client_.get(
        reverse("admin:runs_run_change", args=[open_run.pk])).content.decode()
    page = admin_client_.get(reverse("admin:runs_run_change", args=[finished.pk]))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()


def test_admin_pages_name_their_icon_so_browsers_ask_no_favicon_ico(admin_client_):
    html = parse(admin_client_.get(reverse("admin:index")).content)
    assert html.find("link", rel="icon") is not None


def test_admin_times_are_to_the_second_with_the_zone(admin_client_, make_run):
    run = make_run(RunState.RUNNING)
    run.transition_to(RunState.CANCELED, actor="olga", reason="x")
    page = admin_client_.get(reverse("admin:runs_run_change", args=[run.pk])).content.decode()
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page)


def test_a_refusal_is_logged_once_and_without_a_traceback(client, caplog, settings):
    from logging.config import dictConfig
    dictConfig(settings.LOGGING)
    User.objects.create_user("sam", password="pw-sam-123", is_staff=True)
    client.login(username="sam", password="pw-sam-123")
    records: list[logging.LogRecord] = []
    handler = logging.getLogger().handlers[0]
    real_emit = handler.emit
    handler.emit = lambda record: (records.append(record), real_emit(record))[1]
    try:
        assert client.get(reverse("admin:runs_run_changelist")).status_code == 403
    finally:
        handler.emit = real_emit
    forbidden = [r for r in records if r.name == "django.request"]
    assert len(forbidden) == 1
    assert forbidden[0].exc_info is None
    assert len(logging.getLogger("django").handlers) == 0  # no second, bare console line
