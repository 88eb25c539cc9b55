"""Refusals of malformed, oversized or unstorable requests: JSON errors, never a 500."""

from __future__ import annotations

import pytest
from django.test import override_settings

from runs.models import Run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("raw", ["{", "not json", '{"name": "x",}', b"\xff\xfe", "[" * 5000])
def test_malformed_json_is_a_400(api, raw):
    answer = api.post("/api/runs", raw=raw)
    assert answer.status == 400
    assert answer.body["code"] == "malformed_json"
    assert answer.body["field"] == "body"
    assert not Run.objects.exists()


@pytest.mark.parametrize(("raw", "field"), [
    ('{"name": "x", "payload": {"a": NaN}}', "body"),
    ('{"name": "x", "payload": {"a": 1e999}}', "payload.a"),
    ('{"name": "x", "payload": ["ok", "nul\\u0000"]}', "payload.1"),
    ('{"name": "x", "payload": "\\ud800"}', "payload"),
])
def test_values_no_database_can_store_are_refused_up_front(api, raw, field):
    answer = api.post("/api/runs", raw=raw)
    assert answer.status == 400
    assert answer.body["field"] == field
    assert not Run.objects.exists()


def test_a_json_body_that_is_not_an_object_is_a_400(api):
    answer = api.post("/api/runs", [1, 2])
    assert (answer.status, answer.body["code"]) == (400, "invalid")


@override_settings(RUNBOARD={"API_MAX_BODY_BYTES": 200})
def test_an_oversized_body_is_a_413_before_anything_is_parsed(api):
    answer = api.post("/api/runs", {"name": "x", "payload": "y" * 500})
    assert (answer.status, answer.body["code"]) == (413, "body_too_large")
    assert "200-byte" in answer.body["message"]
    # Even malformed JSON: the size is judged first.
    assert api.post("/api/runs", raw="{" * 300).status == 413
    assert not Run.objects.exists()
    assert api.post("/api/runs", {"name": "x"}).status == 201


@override_settings(RUNBOARD={"API_MAX_BODY_BYTES": 200})
def test_an_oversized_body_without_credentials_is_still_a_413(anonymous):
    assert anonymous.post("/api/runs", {"payload": "y" * 500}).status == 413


def test_every_error_has_the_stable_shape(api, anonymous):
    answers = [
        api.post("/api/runs", raw="{"),
        api.post("/api/runs", {}),
        anonymous.get("/api/runs"),
        api.get("/api/runs/01a2203d-1c3e-7f00-8000-000000000000"),
        api.post("/api/lease", {"executor": "someone-else"}),
    ]
    for answer in answers:
        assert {"status", "code", "message"} <= set(answer.body)
        assert answer.body["status"] == answer.status
        assert isinstance(answer.body["code"], str) and answer.body["message"]


def test_a_wrong_method_is_a_json_405_naming_the_allowed_ones(api):
    answer = api.get("/api/lease")
    assert (answer.status, answer.body["code"]) == (405, "method_not_allowed")
    assert answer.headers["Allow"] == "POST"
