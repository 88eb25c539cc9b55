"""`manage.py demo`: the one-command demo behind `make run`.

Migrates, creates the demo operator (random password, printed once) and executor tokens, starts
`manage.py serve` (daphne) and `manage.py clock` as separate processes — the clock's moves
reach the board through the database's change log like everyone else's — and then a
submitter, N simulated executors and an operator that act only through the HTTP API. Ctrl-C
(or SIGTERM) stops the actors, then the clock and the server, and waits for them: no process
is left behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.demo import World
from runs.demo_tasks import DemoTasks
from runs.management.commands.serve import READY_LINE
from runs.states import RunState
from runs.tokens import ExecutorToken

DEMO_USER = "demo"
DEMO_TOKEN_CREATOR = "manage.py demo"
OPERATORS_GROUP = "Run operators"
SERVER_START_TIMEOUT = 60
SERVER_STOP_TIMEOUT = 15


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        raise CommandError(f"{name} must be a number") from None


def _prepare_child() -> None:
    """In the server child: Ctrl-C works even if our shell ignored SIGINT (a background job),
    and the child gets SIGTERM if the demo dies without cleaning up (Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # Not Linux (no prctl): the demo's own shutdown stops the server instead.
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Command(BaseCommand):
    help = "Run the live demo: server, clock, submitter, executors and an operator."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)),
                            help="0 picks a free port (env PORT)")
        parser.add_argument("--rate", type=float, default=_env_number("DEMO_RATE", 1.0),
                            help="new runs per second (env DEMO_RATE)")
        parser.add_argument("--executors", type=int,
                            default=int(_env_number("DEMO_EXECUTORS", 4)),
                            help="simulated executors (env DEMO_EXECUTORS)")
        parser.add_argument("--duration", type=float, default=0,
                            help="stop after this many seconds (0: until Ctrl-C)")
        parser.add_argument("--until-all-states", action="store_true",
                            help="stop once every one of the nine states has held a run")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args: Any, host: str, port: int, rate: float, executors: int,
               duration: float, until_all_states: bool, seed: int | None,
               **options: Any) -> None:
        if rate <= 0 or executors < 1:
            raise CommandError("--rate must be > 0 and --executors ≥ 1")
        self.seen: dict[str, float] = {}
        call_command("migrate", interactive=False, verbosity=0)
        password = self._operator()
        submitter, tokens = self._tokens(executors)
        stop = threading.Event()
        # Ctrl-C raises KeyboardInterrupt even when started from a shell that ignores SIGINT.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        server = self._start_server(host, port)
        clock = self._spawn("clock")
        # Real django.tasks tasks next to the simulated HTTP executors (runs/demo_tasks.py).
        tasks = DemoTasks(rate=rate / 2, stop=stop, seed=seed,
                          preexec_fn=_prepare_child if sys.platform == "linux" else None)
        try:
            base_url = self._wait_until_serving(server)
            self._banner(base_url, password, submitter)
            world = World(base_url=base_url, submitter_token=submitter,
                          executor_tokens=tokens, operator=(DEMO_USER, password), rate=rate,
                          stop=stop, seed=seed)
            self._run(world, duration=duration, until_all_states=until_all_states,
                      server=server)
        except KeyboardInterrupt:
            # A terminal's Ctrl-C reached the server too: let it finish before signalling again.
            self.stdout.write("\nStopping the demo…")
            stop.set()
            self._wait_for(server, timeout=5)
        finally:
            stop.set()
            tasks.close()
            self._stop_child(clock, "Clock")
            self._stop_child(server, "Server")
        missing = [s.value for s in RunState if s.value not in self.seen]
        if until_all_states and missing:
            raise CommandError(f"states never seen: {', '.join(missing)}")

    # -- setup -------------------------------------------------------------------------------

    def _operator(self) -> str:
        """Create or reset the demo operator with a fresh random password; return it."""
        user, _ = get_user_model().objects.get_or_create(username=DEMO_USER)
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.is_staff = True
        user.save()
        group = Group.objects.filter(name=OPERATORS_GROUP).first()
        if group:
            user.groups.add(group)
        # The action permissions directly too, so the demo works before the group exists.
        user.user_permissions.add(*Permission.objects.filter(
            content_type__app_label="runs",
            codename__in=["cancel_run", "suspend_run", "resume_run", "retry_run", "rerun_run",
                          # the admin the top bar links to: runs and their audit trail
                          "view_run", "view_transition"]))
        return password

    def _tokens(self, executors: int) -> tuple[str, list[str]]:
        """Revoke the previous demo's tokens; issue a submitter token and one per executor."""
        for token in ExecutorToken.objects.active().filter(created_by=DEMO_TOKEN_CREATOR):
            token.revoke()
        _, submitter = ExecutorToken.issue("demo-submitter", created_by=DEMO_TOKEN_CREATOR)
        tokens = [ExecutorToken.issue(f"exec-{i + 1}", created_by=DEMO_TOKEN_CREATOR)[1]
                  for i in range(executors)]
        return submitter, tokens

    def _start_server(self, host: str, port: int) -> subprocess.Popen:
        return self._spawn("serve", "--host", host, "--port", str(port),
                           stdout=subprocess.PIPE)

    @staticmethod
    def _spawn(*command: str, stdout: Any = None) -> subprocess.Popen:
        """A `manage.py` child that dies with the demo (its output goes to our terminal)."""
        return subprocess.Popen(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), *command], stdout=stdout,
            text=True, bufsize=1,
            preexec_fn=_prepare_child if sys.platform == "linux" else None)

    def _wait_until_serving(self, server: subprocess.Popen) -> str:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        assert server.stdout is not None
        for line in server.stdout:
            if line.startswith(READY_LINE):
                url = line.split()[-1]
                threading.Thread(target=self._forward, args=(server.stdout,),
                                 daemon=True).start()
                return url
            self.stdout.write(line.rstrip())
            if time.monotonic() > deadline:
                break
        raise CommandError("the server did not start (see its output above)")

    def _forward(self, stream: Any) -> None:
        for line in stream:
            self.stdout.write(line.rstrip())

    def _banner(self, base_url: str, password: str, submitter: str) -> None:
        self.stdout.write(self.style.SUCCESS(f"\nRunboard demo on {base_url}"))
        self.stdout.write(f"  log in as: {DEMO_USER} / {password}   (printed once)")
        self.stdout.write(f"  API docs:  {base_url}api/docs")
        self.stdout.write(f"  API token: {submitter}   (acts as executor 'demo-submitter')")
        self.stdout.write("  Ctrl-C stops everything.\n")

    # -- running -----------------------------------------------------------------------------

    def _run(self, world: World, *, duration: float, until_all_states: bool,
             server: subprocess.Popen) -> None:
        started = time.monotonic()
        self.seen = world.seen_states

        def noticed(state: str, after: float) -> None:
            self.stdout.write(f"  [{after:5.1f}s] first run in {state} "
                              f"({len(world.seen_states)}/9 states seen)")
            if until_all_states and len(world.seen_states) == len(RunState):
                world.stop.set()

        actors = world.threads()
        actors.append(threading.Thread(target=world.watch_states, name="demo-watch",
                                       args=(started, time.monotonic, noticed), daemon=True))
        for actor in actors:
            actor.start()
        try:
            while not world.stop.wait(0.5):
                if server.poll() is not None:
                    raise CommandError(f"the server exited ({server.returncode})")
                if duration and time.monotonic() - started >= duration:
                    break
        finally:
            world.stop.set()
            for actor in actors:
                actor.join(timeout=10)

    @staticmethod
    def _wait_for(server: subprocess.Popen, *, timeout: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=timeout)

    def _stop_child(self, child: subprocess.Popen, name: str) -> None:
        if child.poll() is None:
            child.terminate()  # SIGTERM: daphne stops its reactor, the clock its loop, cleanly
            try:
                child.wait(timeout=SERVER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.stdout.write(f"{name} stopped." if child.returncode == 0 else
                          f"{name} stopped (exit status {child.returncode}).")
