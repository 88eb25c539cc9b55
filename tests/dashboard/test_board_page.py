"""The board page: login, first paint, embedded snapshot, buttons only where allowed."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs import selectors
from runs.models import Run
from runs.selectors import BoardFilter
from runs.states import RunState

pytestmark = pytest.mark.django_db


def embedded_snapshot(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="board-snapshot" type="application/json">')
    start = html.index(">", start) + 1
    return json.loads(html[start:html.index("</script>", start)])


def test_the_board_needs_a_login(client: Client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=/")


def test_the_login_page_is_styled_and_works(client: Client, viewer):
    page = client.get("/login/")
    assert page.status_code == 200 and b"runboard.css" in page.content
    response = client.post("/login/", {"username": "victor",
                                       "password": "correct horse battery staple"})
    assert response.status_code == 302 and response["Location"] == "/"


def test_the_board_renders_columns_counts_cards_in_lifecycle_order(client, viewer, make_run):
    running = make_run(RunState.RUNNING, name="nightly-etl")
    make_run(RunState.FAILED, last_error="Traceback\nValueError: boom")
    client.force_login(viewer)
    response = client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    positions = [html.index(f'data-state="{state.value}"') for state in RunState]
    assert positions == sorted(positions)
    for phase in ("Waiting to start", "In flight", "Paused", "Done"):
        assert phase in html
    assert "/runs/?state=running" in html and "Show all 1" in html
    snapshot = embedded_snapshot(response)
    running_column = next(c for c in snapshot["columns"] if c["state"] == "running")
    assert [(c["id"], c["name"]) for c in running_column["cards"]] == [
        (str(running.pk), "nightly-etl")]
    counts = {c["state"]: c["count"] for c in snapshot["columns"]}
    assert counts["running"] == 1 and counts["failed"] == 1 and counts["ready"] == 0
    failed = next(c for c in snapshot["columns"] if c["state"] == "failed")
    assert failed["cards"][0]["error_summary"] == "Traceback"
    assert "dashboard/board.js" in html
    assert "{#" not in html and "{%" not in html  # no template syntax leaks into the page


def test_server_strings_are_escaped(client, viewer, make_run):
    make_run(RunState.READY, name="<img src=x onerror=alert(1)>")
    client.force_login(viewer)
    html = client.get("/").content.decode()
    assert "<img src=x" not in html


def test_the_filter_narrows_cards_and_counts_and_is_kept_in_links(client, viewer, make_run):
    make_run(RunState.READY, queue="billing", name="invoice-run")
    make_run(RunState.READY, queue="default", name="invoice-run")
    client.force_login(viewer)
    response = client.get("/?queue=billing&name=INVOICE")
    snapshot = embedded_snapshot(response)
    ready = next(c for c in snapshot["columns"] if c["state"] == "ready")
    assert ready["count"] == 1 and [c["queue"] for c in ready["cards"]] == ["billing"]
    assert "/runs/?state=ready&amp;queue=billing&amp;name=INVOICE" in response.content.decode()


def test_a_viewer_without_permissions_sees_no_buttons(client, viewer, make_run):
    run = make_run(RunState.RUNNING)
    client.force_login(viewer)
    response = client.get("/")
    # The page's link templates name the action route once (with a placeholder id), for
    # the operators' buttons board.js draws; no real run's action may appear.
    assert f"/runs/{run.pk}/actions/" not in response.content.decode()
    assert embedded_snapshot(response)["permitted_actions"] == []


def test_an_operator_sees_only_the_buttons_the_state_allows(client, operator, make_run):
    # board.js draws a card's buttons as the column's allowed actions that the user holds,
    # both from the snapshot (the browser tests click them).
    running = make_run(RunState.RUNNING)
    done = make_run(RunState.COMPLETED)
    client.force_login(operator)
    snapshot = embedded_snapshot(client.get("/"))
    permitted = set(snapshot["permitted_actions"])
    buttons = {column["state"]: [name for name in column["actions"] if name in permitted]
               for column in snapshot["columns"]}
    cards = {column["state"]: [card["id"] for card in column["cards"]]
             for column in snapshot["columns"]}
    assert cards["running"] == [str(running.pk)] and cards["completed"] == [str(done.pk)]
    assert buttons["running"] == ["cancel", "suspend"]
    assert buttons["completed"] == ["rerun"]


def test_column_limit_bounds_the_cards(client, viewer, make_run, settings):
    settings.RUNBOARD = {**settings.RUNBOARD, "BOARD_COLUMN_LIMIT": 3}
    now = timezone.now()
    for minutes in range(5):
        make_run(RunState.READY, name=f"r{minutes}",
                 state_changed_at=now - timedelta(minutes=minutes))
    client.force_login(viewer)
    ready = next(c for c in embedded_snapshot(client.get("/"))["columns"]
                 if c["state"] == "ready")
    assert ready["count"] == 5 and [c["name"] for c in ready["cards"]] == ["r0", "r1", "r2"]


@pytest.mark.parametrize("runs_per_state", [1, 12])
def test_the_board_and_the_snapshot_cost_a_bounded_number_of_queries(
        client, viewer, make_run, runs_per_state):
    for state in RunState:
        for _ in range(runs_per_state):
            make_run(state)
    client.force_login(viewer)
    with CaptureQueriesContext(connection) as page:
        assert client.get("/").status_code == 200
    with CaptureQueriesContext(connection) as snapshot:
        selectors.state_counts(BoardFilter())
        selectors.newest_cards(BoardFilter(), limit=50)
    # session + user + permissions, the counts (with the consistent read's position and, in
    # this test's transaction, its savepoint), one card query per state: never per run
    assert len(page) <= 6 + 2 + 3 + len(RunState)
    assert len(snapshot) == 2 + len(RunState)


@pytest.mark.django_db(transaction=True)
def test_counts_stay_exact_from_the_history_totals_and_the_unfolded_tail(make_run):
    from tests.history.conftest import fold_everything

    old = timezone.now() - timedelta(hours=2)
    for _ in range(3):
        make_run(RunState.COMPLETED, state_changed_at=old)
    make_run(RunState.RUNNING)
    fold_everything()  # counted into the totals
    make_run(RunState.COMPLETED)  # in the log, not folded yet
    make_run(RunState.CANCELED)
    counts = selectors.state_counts(BoardFilter())
    assert counts["completed"] == 4 and counts["canceled"] == 1 and counts["running"] == 1
    assert Run.objects.filter(state="completed").count() == 4


def test_the_board_page_has_skip_links_and_counts_for_screen_readers(client, operator):
    client.force_login(operator)
    html = client.get("/").content.decode()
    assert 'href="#main"' in html and 'id="main"' in html
    assert 'class="skip-columns" href="#after-board"' in html and 'id="after-board"' in html
    assert 'aria-label="0 failed"' in html
