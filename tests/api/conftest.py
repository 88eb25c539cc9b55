"""API test fixtures: executor tokens, operators, and a JSON client that speaks bearer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from runs.tokens import ExecutorToken


@dataclass
class Answer:
    status: int
    body: Any
    headers: Any


class ApiClient:
    """Django's test client, sending JSON, optionally as an executor (bearer token)."""

    def __init__(self, client: Client, token: str | None = None) -> None:
        self.client = client
        self.token = token

    def _headers(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token}"} if self.token else {}

    def _answer(self, response: Any) -> Answer:
        body = json.loads(response.content) if response.content else None
        return Answer(response.status_code, body, response.headers)

    def get(self, path: str, params: dict[str, Any] | None = None, **extra: Any) -> Answer:
        return self._answer(self.client.get(path, params or {}, **self._headers(), **extra))

    def post(self, path: str, body: Any = None, *, raw: bytes | str | None = None,
             **extra: Any) -> Answer:
        data = raw if raw is not None else ("" if body is None else json.dumps(body))
        return self._answer(self.client.post(path, data, content_type="application/json",
                                             **self._headers(), **extra))


@pytest.fixture
def executor_token(db) -> tuple[ExecutorToken, str]:
    return ExecutorToken.issue("exec-1")


@pytest.fixture
def api(client: Client, executor_token: tuple[ExecutorToken, str]) -> ApiClient:
    """The API as executor `exec-1`."""
    return ApiClient(client, executor_token[1])


@pytest.fixture
def other_api(db) -> ApiClient:
    """The API as executor `exec-2`, with its own cookie jar."""
    return ApiClient(Client(), ExecutorToken.issue("exec-2")[1])


@pytest.fixture
def anonymous(db) -> ApiClient:
    return ApiClient(Client())


@pytest.fixture
def operator(db) -> User:
    user = User.objects.create_user("olga", password="pw-olga-123")
    user.user_permissions.add(Permission.objects.get(codename="cancel_run"),
                              Permission.objects.get(codename="resume_run"))
    return user


@pytest.fixture
def operator_api(operator: User) -> ApiClient:
    """An operator's browser session, with CSRF enforced as in production."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    return ApiClient(client)


def csrf_headers(api_client: ApiClient) -> dict[str, str]:
    """Fetch a CSRF cookie the way a page would, and return the header carrying it."""
    from django.middleware.csrf import get_token
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    token = get_token(request)
    api_client.client.cookies["csrftoken"] = request.META["CSRF_COOKIE"]
    return {"HTTP_X_CSRFTOKEN": token}


def submit(api_client: ApiClient, **fields: Any) -> dict[str, Any]:
    answer = api_client.post("/api/runs", {"name": "send-report", **fields})
    assert answer.status == 201, answer.body
    return answer.body


def lease_one(api_client: ApiClient, **fields: Any) -> dict[str, Any]:
    answer = api_client.post("/api/lease", {"limit": 1, **fields})
    assert answer.status == 200, answer.body
    (run,) = answer.body["runs"]
    return run


def running(api_client: ApiClient, **fields: Any) -> dict[str, Any]:
    """Submit, lease and start a run as `api_client`; return it running."""
    submit(api_client, **fields)
    run = lease_one(api_client)
    answer = api_client.post(f"/api/runs/{run['id']}/start")
    assert answer.status == 200, answer.body
    return answer.body
