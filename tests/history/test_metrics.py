"""GET /metrics: protected, exact runs by state and queue, all-time moves and histograms."""

from __future__ import annotations

import pytest
from django.db.models import Count
from prometheus_client.parser import text_string_to_metric_families

from runs.models import Run, Transition

from .conftest import fold_everything

TOKEN = "s3cret-scrape-token"


@pytest.fixture
def metrics_on(settings):
    settings.RUNBOARD = {**settings.RUNBOARD, "METRICS_TOKEN": TOKEN,
                         "METRICS_ALLOW": ("10.0.0.7",)}


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.django_db
def test_metrics_do_not_exist_until_a_token_or_an_allow_list_is_set(client):
    assert client.get("/metrics").status_code == 404


@pytest.mark.django_db
def test_a_wrong_token_is_refused_with_a_code_and_the_allow_list_needs_none(client, metrics_on):
    refused = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert refused.status_code == 401 and refused.content.startswith(b"metrics_token")
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.7").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_metrics_report_exact_counts_moves_and_latency_histograms(client, metrics_on, history):
    history(80, seed=50)
    fold_everything()
    moves = dict(Transition.objects.values_list("to_state").annotate(n=Count("pk")))
    waits = Transition.objects.filter(from_state="ready", to_state="leased").count()
    history(5, seed=51)  # not folded yet: the runs gauge still counts them (the log tail)
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    samples = _samples(response.content.decode())
    runs = {key[1]: value for key, value in samples.items() if key[0] == "runboard_runs"}
    assert runs == {(("queue", row["queue"]), ("state", row["state"])): row["n"] for row in
                    Run.objects.values("queue", "state").annotate(n=Count("pk"))}
    assert {key[1][0][1]: value for key, value in samples.items()
            if key[0] == "runboard_transitions_total" and value} == moves
    assert samples[("runboard_queue_wait_seconds_count", ())] == waits > 0
    assert samples[("runboard_queue_wait_seconds_bucket", (("le", "+Inf"),))] == waits
    assert samples[("runboard_queue_wait_seconds_bucket", (("le", "0.001"),))] <= waits
    assert samples[("runboard_watchers", ())] == 0
