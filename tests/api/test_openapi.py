"""The OpenAPI document tells the truth: every route is in it, every answer matches it, and the
interactive docs are served from django-ninja's own static files (no CDN)."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from django.contrib.staticfiles import finders
from django.test import Client, override_settings

from runs import services
from runs.api import api as ninja_api
from tests.api.conftest import ApiClient, csrf_headers, lease_one, running, submit

pytestmark = pytest.mark.django_db

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def schema(client: Client) -> dict[str, Any]:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()


def routes_in_code() -> set[tuple[str, str]]:
    routes = set()
    for prefix, router in ninja_api._routers:
        for path, path_view in router.path_operations.items():
            for operation in path_view.operations:
                for method in operation.methods:
                    full = "/api/" + "/".join(p for p in (prefix, path.strip("/")) if p)
                    routes.add((method.lower(), full))
    return routes


def test_every_route_is_in_the_schema_and_nothing_else(schema):
    documented = {(method, path) for path, item in schema["paths"].items()
                  for method in item if method in HTTP_METHODS}
    assert routes_in_code() == documented
    assert len(documented) == 14


class Recorder(ApiClient):
    """An ApiClient that keeps every (method, path, status, body) it saw."""

    seen: list[tuple[str, str, int, Any]]

    def __init__(self, client: Client, token: str | None, seen: list) -> None:
        super().__init__(client, token)
        self.seen = seen

    def get(self, path: str, params: dict | None = None, **extra: Any):
        answer = super().get(path, params, **extra)
        self.seen.append(("get", path, answer.status, answer.body))
        return answer

    def post(self, path: str, body: Any = None, **extra: Any):
        answer = super().post(path, body, **extra)
        self.seen.append(("post", path, answer.status, answer.body))
        return answer


def _template_of(path: str, schema: dict[str, Any]) -> str:
    for template in schema["paths"]:
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path):
            return template
    raise AssertionError(f"{path} matches no documented path")


def test_every_answer_matches_the_documented_schema(schema, api, other_api, operator_api):
    seen: list = []
    as_exec = Recorder(api.client, api.token, seen)
    as_other = Recorder(other_api.client, other_api.token, seen)
    as_operator = Recorder(operator_api.client, None, seen)
    as_nobody = Recorder(Client(), None, seen)

    # A walk through every endpoint, with successes and refusals.
    run = submit(as_exec, payload={"a": [1, 2]}, budget={"tokens": 5})
    as_exec.get("/api/runs", {"limit": 1})
    as_exec.get(f"/api/runs/{run['id']}")
    as_exec.get("/api/runs/01a2203d-1c3e-7f00-8000-000000000000")
    as_nobody.get("/api/runs")
    lease_one(as_exec)
    as_other.post(f"/api/runs/{run['id']}/start")
    as_exec.post(f"/api/runs/{run['id']}/start")
    as_exec.post(f"/api/runs/{run['id']}/start")
    as_exec.post(f"/api/runs/{run['id']}/heartbeat", {"progress": 10})
    as_exec.post(f"/api/runs/{run['id']}/heartbeat", {"consumed": {"tokens": 9}})
    as_exec.post(f"/api/runs/{run['id']}/replenish", {"budget": {"tokens": 50}})
    second = running(as_exec)
    as_exec.post(f"/api/runs/{second['id']}/complete", {"result": "ok"})
    third = running(as_exec)
    as_exec.post(f"/api/runs/{third['id']}/fail", {"error": "boom"})
    fourth = running(as_exec)
    services.cancel(fourth["id"], actor="olga")
    as_exec.post(f"/api/runs/{fourth['id']}/heartbeat", {})
    as_exec.post(f"/api/runs/{fourth['id']}/complete", {})
    as_exec.post(f"/api/runs/{fourth['id']}/fail", {"error": "x"})
    as_exec.post("/api/runs", {"name": ""})
    as_exec.post("/api/lease", {"executor": "not-me"})
    as_operator.post(f"/api/runs/{run['id']}/cancel", {}, **csrf_headers(operator_api))
    as_operator.post(f"/api/runs/{run['id']}/cancel", {}, **csrf_headers(operator_api))
    as_exec.post(f"/api/runs/{run['id']}/rerun")
    as_operator.post(f"/api/runs/{run['id']}/rerun", **csrf_headers(operator_api))
    fifth = running(as_exec)
    as_exec.post(f"/api/runs/{fifth['id']}/suspend", {"reason": "maintenance"})
    as_exec.post(f"/api/runs/{fifth['id']}/suspend", {})
    as_exec.post(f"/api/runs/{fifth['id']}/resume")
    as_exec.post(f"/api/runs/{third['id']}/retry")
    as_exec.post(f"/api/runs/{third['id']}/retry")

    exercised = set()
    for method, path, status, body in seen:
        template = _template_of(path.split("?")[0], schema)
        responses = schema["paths"][template][method]["responses"]
        assert str(status) in responses, f"{method} {template} answered undocumented {status}"
        documented = responses[str(status)]["content"]["application/json"]["schema"]
        jsonschema.validate(body, {**documented, "components": schema["components"]},
                            cls=jsonschema.Draft202012Validator)
        exercised.add((method, template))
    assert exercised == routes_in_code()


def test_the_interactive_docs_use_only_static_files_shipped_with_ninja(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/ninja/swagger-ui-bundle.js" in assets
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))]
    with override_settings(WHITENOISE_USE_FINDERS=True):
        fresh = Client()  # WhiteNoise reads its settings when the middleware is built
        for asset in assets:
            assert finders.find(asset.removeprefix("/static/")), asset
            response = fresh.get(asset)
            assert response.status_code == 200, asset
