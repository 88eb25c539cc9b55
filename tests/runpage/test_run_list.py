"""The run list: filters and id search in the URL, keyset pages, bounded counts and queries."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils.http import urlencode

from runs import listing, services
from runs.models import Run
from runs.states import RunState
from tests.runpage.html import parse

pytestmark = pytest.mark.django_db


def listed(client, **query) -> tuple[list[str], object]:
    response = client.get(reverse("run-list"), query)
    assert response.status_code == 200
    html = parse(response.content)
    return [row.attrs["data-run-id"] for row in html.find(id="runs").find_all("tr")
            if "data-run-id" in row.attrs], html


def test_the_list_needs_a_login(client):
    assert client.get(reverse("run-list")).status_code == 302


def test_filters_by_state_queue_and_name(watcher_client, make_run):
    a = make_run(RunState.FAILED, name="nightly-etl", queue="etl")
    b = make_run(RunState.FAILED, name="send-report", queue="etl")
    c = make_run(RunState.FAILED, name="nightly-etl", queue="emails")
    d = make_run(RunState.READY, name="nightly-etl", queue="etl")
    assert set(listed(watcher_client, state="failed")[0]) == {str(a.pk), str(b.pk), str(c.pk)}
    assert set(listed(watcher_client, queue="etl")[0]) == {str(a.pk), str(b.pk), str(d.pk)}
    assert set(listed(watcher_client, name="ETL")[0]) == {str(a.pk), str(c.pk), str(d.pk)}
    assert listed(watcher_client, state="failed", queue="etl", name="nightly")[0] == [str(a.pk)]


def test_the_filter_form_shows_what_the_url_says(watcher_client, make_run):
    make_run(queue="etl")
    make_run(queue="emails")
    _, html = listed(watcher_client, state="failed", queue="etl", name="night")
    form = html.find(id="filters")
    assert form.find("option", value="failed").attrs.get("selected") is not None or \
        "selected" in form.find("option", value="failed").attrs
    assert "selected" in form.find("option", value="etl").attrs
    assert form.find("input", name="name").attrs["value"] == "night"
    assert [o.attrs["value"] for o in form.find("select", name="queue").find_all("option")] == [
        "", "emails", "etl"]


def test_an_unknown_state_matches_nothing_and_says_so(watcher_client, make_run):
    make_run()
    ids, html = listed(watcher_client, state="exploded")
    assert ids == []  # a bad filter narrows to nothing, never widens to every run
    assert "There is no state 'exploded'" in html.find(class_="filter-error").text


def test_search_by_full_id_short_id_or_a_longer_suffix(watcher_client, make_run):
    runs = [make_run() for _ in range(5)]
    target = runs[2]
    full = str(target.pk)
    assert listed(watcher_client, q=full)[0] == [full]
    assert listed(watcher_client, q=full.replace("-", "").upper())[0] == [full]
    assert listed(watcher_client, q=target.short_id)[0] == [full]
    assert listed(watcher_client, q=full[-12:])[0] == [full]
    assert listed(watcher_client, q=full[-17:])[0] == [full]  # with a dash inside


@pytest.mark.parametrize("term", ["abc", "not-an-id!", "zzzzzzzzzz"])
def test_an_id_search_that_is_not_an_id_matches_nothing_with_help(watcher_client, make_run,
                                                                   term):
    make_run()
    ids, html = listed(watcher_client, q=term)
    assert "last 8 or more characters" in html.find(class_="filter-error").text
    assert ids == []  # narrowed to nothing, not dropped (which showed every run)
    assert html.find(id="no-match") is not None


def test_the_short_id_search_reads_the_expression_index(make_run):
    make_run()
    query = listing.filtered_runs(listing.RunFilter(search="0123abcd")).values("pk").query
    sql, params = query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}", params)
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "run_short_id" in plan


def walk(client, **query) -> list[list[str]]:
    """Follow "older" links from page 1 to the end; return each page's ids."""
    pages = []
    ids, html = listed(client, **query)
    pages.append(ids)
    while (older := html.find(id="older")) is not None:
        response = client.get(reverse("run-list") + older.attrs["href"])
        html = parse(response.content)
        pages.append([row.attrs["data-run-id"] for row in html.find(id="runs").find_all("tr")
                      if "data-run-id" in row.attrs])
    return pages


def test_keyset_pages_cover_every_run_once_newest_first(watcher_client, make_run, now,
                                                        monkeypatch):
    monkeypatch.setattr(listing, "PAGE_SIZE", 3)
    same_moment = now - timedelta(minutes=1)
    runs = [make_run(state_changed_at=same_moment) for _ in range(4)]  # ties: broken by id
    runs += [make_run(state_changed_at=now - timedelta(minutes=m)) for m in (2, 3, 4)]
    pages = walk(watcher_client)
    assert [len(p) for p in pages] == [3, 3, 1]
    expected = [str(r.pk) for r in sorted(runs, key=lambda r: (r.state_changed_at, r.pk),
                                          reverse=True)]
    assert [run_id for p in pages for run_id in p] == expected


def test_pages_stay_stable_while_runs_move_and_arrive(watcher_client, make_run, now,
                                                      monkeypatch):
    monkeypatch.setattr(listing, "PAGE_SIZE", 3)
    runs = [make_run(state_changed_at=now - timedelta(minutes=m)) for m in range(1, 10)]
    first_ids, html = listed(watcher_client)
    older = html.find(id="older").attrs["href"]
    # Meanwhile: one run of page 2 and one of page 3 move (to the top), new runs arrive.
    moved = [runs[4], runs[7]]
    for run in moved:
        services.cancel(run.pk, actor="olga")
    services.submit(name="new-one")
    html = parse(watcher_client.get(reverse("run-list") + older).content)
    rest = [row.attrs["data-run-id"] for row in html.find(id="runs").find_all("tr")
            if "data-run-id" in row.attrs]
    while (link := html.find(id="older")) is not None:
        html = parse(watcher_client.get(reverse("run-list") + link.attrs["href"]).content)
        rest += [row.attrs["data-run-id"] for row in html.find(id="runs").find_all("tr")
                 if "data-run-id" in row.attrs]
    stayed = [str(r.pk) for r in runs[3:] if r not in moved]
    assert rest == stayed  # no repeat of page 1, no skip, same order
    assert not set(rest) & set(first_ids)


def test_newer_goes_back_to_the_same_page(watcher_client, make_run, now, monkeypatch):
    monkeypatch.setattr(listing, "PAGE_SIZE", 2)
    for minutes in range(1, 8):
        make_run(state="failed", state_changed_at=now - timedelta(minutes=minutes))
    _, html = listed(watcher_client, state="failed")
    html2 = parse(watcher_client.get(reverse("run-list") + html.find(id="older").attrs["href"])
                  .content)
    html3 = parse(watcher_client.get(reverse("run-list") + html2.find(id="older").attrs["href"])
                  .content)
    back = html3.find(id="newer").attrs["href"]
    assert "state=failed" in back
    html2_again = parse(watcher_client.get(reverse("run-list") + back).content)
    ids = [row.attrs["data-run-id"] for row in html2_again.find(id="runs").find_all("tr")
           if "data-run-id" in row.attrs]
    page2 = [row.attrs["data-run-id"] for row in html2.find(id="runs").find_all("tr")
             if "data-run-id" in row.attrs]
    assert ids == page2
    assert html.find(id="newer") is None  # page 1 has nothing newer


def test_the_count_is_exact_below_the_cap_and_capped_above(watcher_client, make_run,
                                                            monkeypatch):
    for _ in range(3):
        make_run(RunState.FAILED)
    assert listed(watcher_client, state="failed")[1].find(id="match-count").text == "3 matching"
    monkeypatch.setattr(listing, "COUNT_CAP", 2)
    assert listed(watcher_client, state="failed")[1].find(id="match-count").text == "2+ matching"


@pytest.mark.parametrize("query", [{}, {"state": "failed"}, {"queue": "etl", "name": "x"},
                                   {"q": "0123abcd"}])
def test_the_list_makes_the_same_few_queries_whatever_the_number_of_runs(
        watcher_client, make_run, now, query, django_assert_num_queries, monkeypatch):
    monkeypatch.setattr(listing, "PAGE_SIZE", 5)
    make_run(RunState.FAILED, queue="etl", name="x")
    # session, user, 2 permission queries, page, count, queue choices
    with django_assert_num_queries(7):
        listed(watcher_client, **query)
    for minutes in range(40):
        make_run(RunState.FAILED, queue=f"q{minutes % 4}", name="x",
                 state_changed_at=now - timedelta(minutes=minutes))
    _, html = listed(watcher_client, **query)
    older = html.find(id="older")
    with django_assert_num_queries(7):
        watcher_client.get(reverse("run-list") + (older.attrs["href"] if older else
                                                  "?" + urlencode(query)))


def test_rows_link_to_run_pages(watcher_client, make_run):
    run = make_run()
    _, html = listed(watcher_client)
    assert html.find(id="runs").find("a").attrs["href"] == reverse("run-detail", args=[run.pk])


def test_a_moved_run_is_not_repeated_at_the_cursor(make_run, now):
    a = make_run(state_changed_at=now - timedelta(minutes=1))
    b = make_run(state_changed_at=now - timedelta(minutes=2))
    page = listing.page_of_runs(listing.RunFilter(), size=1)
    assert [r.pk for r in page.runs] == [a.pk]
    services.cancel(a.pk, actor="x")  # a moves to the top after the cursor was handed out
    nxt = listing.page_of_runs(listing.RunFilter(), after=listing.Cursor.decode(page.next_cursor),
                               size=1)
    assert [r.pk for r in nxt.runs] == [b.pk]
    assert Run.objects.count() == 2


def test_a_finished_run_shows_no_leftover_progress_and_times_name_their_zone(watcher_client,
                                                                             make_run):
    done = make_run(RunState.COMPLETED, progress=70)
    running = make_run(RunState.RUNNING, progress=40)
    _, html = listed(watcher_client)
    cells = {row.attrs["data-run-id"]: row.find_all("td") for row in html.find_all("tr")
             if "data-run-id" in row.attrs}
    assert cells[str(done.pk)][7].text == ""
    assert cells[str(running.pk)][7].text == "40%"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
                        cells[str(done.pk)][9].find("time").text)
