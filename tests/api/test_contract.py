"""The document and the server agree: a request the OpenAPI document calls valid is never
refused with a 400, and one it calls invalid always is (strict types, stated rules)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from django.test import Client

from tests.api.conftest import running

pytestmark = pytest.mark.django_db

FAR_OFFSET = "2999-12-31T23:59:59-23:59"  # RFC 3339 allows it; PostgreSQL's offsets stop at 15:59


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    import json

    from runs.api import api as ninja_api

    return json.loads(json.dumps(ninja_api.get_openapi_schema(path_prefix="/api/")))


def body_is_valid(document: dict[str, Any], path: str, body: Any) -> bool:
    schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    validator = jsonschema.Draft202012Validator(
        {**schema["schema"], "components": document["components"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return validator.is_valid(body)


@pytest.mark.parametrize(("body", "valid"), [
    ({"name": "etl", "priority": 3}, True),
    ({"name": "etl", "priority": 3.0}, True),  # JSON Schema's integer: 3.0 is 3
    ({"name": "etl", "priority": True}, False),
    ({"name": "etl", "priority": "3"}, False),
    ({"name": "etl", "max_attempts": 2.5}, False),
    ({"name": 7}, False),
    ({"name": "   "}, False),
    ({"name": "\x1c"}, False),  # whitespace to str.strip(), spelled out in the pattern
    ({"name": "e\u0000tl"}, False),
    ({"name": "etl", "queue": "q\u0000"}, False),
    ({"name": "etl", "payload": {"k\u0000": 1}}, False),
    ({"name": "etl", "payload": ["ok", {"deep": ["still ok"]}]}, True),
    ({"name": "etl", "payload": ["not\u0000ok"]}, False),
    ({"name": "etl", "budget": {"tok\u0000ens": 1}}, False),
    ({"name": "etl", "budget": {"tokens": True}}, False),
    ({"name": "etl", "backoff": {"base": False}}, False),
    ({"name": "etl", "scheduled_at": "2000-01-01T00:00:00Z"}, True),  # past: due now
    ({"name": "etl", "scheduled_at": FAR_OFFSET}, True),
    ({"name": "etl", "scheduled_at": "3000-01-01T00:00:00Z"}, False),
    ({"name": "etl", "scheduled_at": 1700000000}, False),
    ({"name": "etl", "colour": "red"}, False),
])
def test_submit_accepts_exactly_what_the_document_calls_valid(api, document, body, valid):
    assert body_is_valid(document, "/api/runs", body) is valid
    answer = api.post("/api/runs", body)
    assert (answer.status == 201) is valid, answer.body
    if not valid:
        assert (answer.status, answer.body["code"]) == (400, "invalid"), answer.body


@pytest.mark.parametrize(("body", "valid"), [
    ({"limit": 2}, True),
    ({"limit": True}, False),
    ({"limit": "2"}, False),
    ({"queues": ["default"]}, True),
    ({"queues": ["de\u0000fault"]}, False),
    ({"lease_seconds": 0}, False),
    ({"extra": 1}, False),
])
def test_lease_accepts_exactly_what_the_document_calls_valid(api, document, body, valid):
    assert body_is_valid(document, "/api/lease", body) is valid
    assert (api.post("/api/lease", body).status == 200) is valid


@pytest.mark.parametrize(("path", "body"), [
    ("fail", {"error": "bo\u0000om"}),
    ("fail", {"error": "boom", "retryable": "yes"}),
    ("heartbeat", {"progress": True}),
    ("heartbeat", {"progress": 101}),
    ("heartbeat", {"consumed": {"\u0000": 1}}),
    ("replenish", {"budget": {}}),
])
def test_executor_bodies_the_document_refuses_are_400s(api, document, path, body):
    run = running(api)
    assert not body_is_valid(document, f"/api/runs/{{run_id}}/{path}", body)
    answer = api.post(f"/api/runs/{run['id']}/{path}", body)
    assert (answer.status, answer.body["code"]) == (400, "invalid"), answer.body


def test_a_scheduled_time_far_east_or_west_of_utc_is_stored_as_its_instant(api):
    answer = api.post("/api/runs", {"name": "etl", "scheduled_at": FAR_OFFSET})
    assert answer.status == 201
    assert answer.body["scheduled_at"].startswith("3000-01-01T23:58:59")


def test_a_cursor_of_the_documented_form_is_a_position_and_any_other_is_a_400(api, document):
    pattern = next(p for p in document["paths"]["/api/runs"]["get"]["parameters"]
                   if p["name"] == "cursor")["schema"]["anyOf"][0]["pattern"]
    forged = "1_" + "0" * 32
    assert jsonschema.Draft202012Validator({"pattern": pattern}).is_valid(forged)
    assert api.get("/api/runs", {"cursor": forged}).status == 200
    answer = api.get("/api/runs", {"cursor": "bm9wZQ"})
    assert (answer.status, answer.body["code"], answer.body["field"]) == (400, "invalid", "cursor")


def test_the_document_links_a_lease_to_start_and_start_to_every_executor_verb(client: Client):
    paths = client.get("/api/openapi.json").json()["paths"]
    lease = paths["/api/lease"]["post"]["responses"]["200"]["links"]
    assert lease["startRun"]["parameters"] == {"run_id": "$response.body#/runs/0/id"}
    start = paths["/api/runs/{run_id}/start"]["post"]["responses"]["200"]["links"]
    assert set(start) == {"heartbeatRun", "completeRun", "failRun"}
    ids = {op["operationId"] for item in paths.values() for op in item.values()}
    linked = {link["operationId"] for item in paths.values() for op in item.values()
              for answer in op["responses"].values() for link in answer.get("links", {}).values()}
    assert linked <= ids
