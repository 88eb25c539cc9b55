"""The wheel, installed into a fresh virtualenv beside a minimal Django project that mounts
Runboard under `runboard/` (tests/packaging/host_project.py), serves its board, static files,
API and websocket, and runs a task through `manage.py runboard_worker`.

Nothing is written to the repository: the source is copied to a temporary directory and the
wheel built there. Dependencies come from the machine's package index (pip's cache makes a
second run quicker); the whole test takes about one to two minutes, so it runs once per
`make test` (the SQLite pass only).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.api.live_servers import READY_LINE, delta_for, drain, receive_until, stop_server

from .host_project import write_host_project

pytestmark = [pytest.mark.sqlite_only, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("runs", "dashboard", "pyproject.toml", "README.md")
PASSWORD = "host-admin-password-1"


def run(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 300) -> str:
    """Run a command to completion; its output, or a failure that shows it."""
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=env, timeout=timeout,
                          capture_output=True, text=True)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build_wheel(work: Path) -> Path:
    source = work / "source"
    for name in SHIPPED:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", work / "dist", ".",
        cwd=source)
    (wheel,) = (work / "dist").glob("runboard-*.whl")
    return wheel


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A fresh virtualenv with the wheel, and the host project migrated, with an admin."""
    work = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(work)
    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    # the test venv's pip installs into the new one: no pip bootstrap in every run
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", wheel)
    site = work / "site"
    write_host_project(site)
    env = {key: value for key, value in os.environ.items()
           if key not in {"DJANGO_SETTINGS_MODULE", "PYTHONPATH", "DATABASE_URL", "REDIS_URL"}}
    env.update(PYTHONUNBUFFERED="1", DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    manage = [python, "manage.py"]
    run(*manage, "migrate", "--noinput", cwd=site, env=env)
    run(*manage, "collectstatic", "--noinput", cwd=site, env=env)
    run(*manage, "createsuperuser", "--noinput", "--username", "host-admin",
        "--email", "admin@example.com", cwd=site, env=env)
    yield {"python": python, "site": site, "env": env, "wheel": wheel}


def start(host: dict[str, object], *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(host["python"]), "manage.py", *args], cwd=host["site"],
                            env=host["env"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def serve(host: dict[str, object]) -> tuple[subprocess.Popen, str]:
    server = start(host, "serve", "--port", "0")
    seen: list[str] = []
    assert server.stdout is not None
    for line in server.stdout:
        if line.startswith(READY_LINE):
            drain(server)
            return server, line.split()[-1].rstrip("/")
        seen.append(line)
    raise AssertionError("the host project's server did not start:\n" + "".join(seen))


def log_in(http: httpx.Client) -> None:
    """Through the host's own login (LOGIN_URL = admin:login), as a browser would."""
    page = http.get("/runboard/")
    assert page.status_code == 302
    assert page.headers["location"] == "/admin/login/?next=/runboard/"
    http.get("/admin/login/")
    answer = http.post("/admin/login/?next=/runboard/", data={
        "username": "host-admin", "password": PASSWORD, "next": "/runboard/",
        "csrfmiddlewaretoken": http.cookies["csrftoken"]})
    assert answer.status_code == 302 and answer.headers["location"] == "/runboard/"


def test_the_wheel_holds_the_apps_templates_static_files_and_migrations(host):
    listing = run(sys.executable, "-m", "zipfile", "-l", host["wheel"])
    for shipped in ("dashboard/templates/dashboard/board.html",
                    "dashboard/templates/runpage/run_detail.html",
                    "dashboard/static/dashboard/board.js",
                    "dashboard/static/dashboard/links.js",
                    "runs/migrations/0001_initial.py",
                    "runs/management/commands/runboard_worker.py"):
        assert shipped in listing
    assert "tests/" not in listing and "benchmarks/" not in listing


def test_a_host_project_serves_the_board_and_runs_a_task_end_to_end(host):
    server, base = serve(host)
    worker = None
    try:
        with httpx.Client(base_url=base, headers={"Referer": base + "/"}, timeout=20) as http:
            log_in(http)
            board = http.get("/runboard/")
            assert board.status_code == 200
            html = board.text
            assert 'data-socket-path="/runboard/ws/board/"' in html
            script = re.search(r'src="([^"]*board\.js)"', html).group(1)
            assert script.startswith("/static/")
            assert http.get(script).status_code == 200
            for page in ("/runboard/runs/", "/runboard/queues/", "/runboard/executors/",
                         "/runboard/api/docs", "/runboard/api/openapi.json"):
                assert http.get(page).status_code == 200, page

            cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
            socket_url = base.replace("http://", "ws://") + "/runboard/ws/board/"
            with connect(socket_url, additional_headers={"Cookie": cookie, "Origin": base},
                         open_timeout=20) as socket:
                snapshot = receive_until(socket, lambda frame: frame["type"] == "snapshot")
                assert len(snapshot["columns"]) == 9

                enqueued = run(host["python"], "manage.py", "shell", "-c",
                               "from jobs.tasks import add; print(add.enqueue(2, 3).id)",
                               cwd=host["site"], env=host["env"]).split()[-1]
                receive_until(socket, delta_for(enqueued, "ready"))
                worker = start(host, "runboard_worker", "--poll-interval", "0.05")
                delta = receive_until(socket, delta_for(enqueued, "completed"), timeout=60)
            event = next(e for e in delta["deltas"] if e["id"] == enqueued)
            assert event["run"]["name"] == "jobs.tasks.add"

            answer = run(host["python"], "manage.py", "shell", "-c",
                         "import json; from jobs.tasks import add; "
                         f"r = add.get_result({enqueued!r}); "
                         "print(json.dumps([r.status, r.return_value]))",
                         cwd=host["site"], env=host["env"])
            # the last line: `shell` may print its automatic imports first
            assert json.loads(answer.strip().splitlines()[-1]) == ["SUCCESSFUL", 5]
            assert http.get(f"/runboard/api/runs/{enqueued}").json()["state"] == "completed"
            assert http.get(f"/runboard/runs/{enqueued}/").status_code == 200
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=40)
            if worker.stdout:
                worker.stdout.close()
        stop_server(server)
    assert worker.returncode == 0
