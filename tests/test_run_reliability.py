"""The run engine under faults: a worker killed mid-run, a run that kills its worker every
time, Redis restarting mid-run, a model server dying mid-stream, cancels, and an endpoint's
concurrency limit across workers.

Everything is real: the web app runs under uvicorn in its own process, the workers are Celery
worker processes (never eager mode), and the model is a scripted OpenAI-compatible server on
loopback (or, once, llama-server).

These tests run their own Redis (a ``redis-server`` on a free port) for that web app and their
workers. The suite's shared worker (the ``worker`` fixture) consumes every endpoint's queue on
the session Redis, and would take the runs these tests mean to kill; with a broker of their
own, only the workers a test starts here see its runs, whatever else runs in the session or on
the machine's Redis — and a test may restart it. The database is the session's (SQLite, or
PostgreSQL in CI).

How a dead worker's run comes back: its claim's lease (``SWITCHBOARD_RUN_LEASE``, renewed by a
heartbeat while the worker lives) lapses soon after the worker dies. A run worker is one
process of threads; when it dies, its messages stay unacknowledged until the visibility
timeout. The sweeper sends its runs again before that: at once when the dead process ran on
this machine, else once their leases lapse. A worker started after the timeout gets a run by
two roads: Redis redelivers it as the worker connects, and the sweeper that runs at every
worker's start re-sends it. Whichever is consumed first claims it; the other finds it claimed
and is dropped. Between worker starts, Celery beat's sweeper (every 15 s, not run here)
re-sends it: the kill and poison tests send that sweep themselves.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlmodel import Session, select

from app.db import get_engine
from app.engine import live
from app.models import Message, Run
from app.paths import PROJECT_ROOT
from app.redis_conn import connect
from app.runtime.embedded_redis import redis_server_binary
from tests.factories import make_agent, make_model, make_user, make_workspace, sign_in
from tests.scripted_server import (
    Drop,
    Hold,
    Pause,
    ScriptedServer,
    ServerThread,
    Stream,
    answer,
    chunk,
    sse,
    unused_port,
)
from tests.worker_process import WorkerProcess

CHAT = "/v1/chat/completions"
FINISHED = ("succeeded", "failed", "cancelled")
TEXT = "one two three four five six seven eight nine ten eleven twelve"

LONG_TEXT = " ".join(f"word{n}" for n in range(1, 31))  # 30 tokens

# A run's hard time limit and the broker's visibility timeout (which must exceed it): the
# shortest the settings allow for the crash tests, where recovery waits for them (a run must
# then finish within the 5 s soft limit); roomier for the others.
CRASH_LIMITS = {
    "SWITCHBOARD_RUN_TIME_LIMIT": "10",
    "SWITCHBOARD_BROKER_VISIBILITY_TIMEOUT": "11",
    "SWITCHBOARD_RUN_LEASE": "6",
}
LIMITS = {"SWITCHBOARD_RUN_TIME_LIMIT": "20", "SWITCHBOARD_BROKER_VISIBILITY_TIMEOUT": "25"}
VISIBILITY = timedelta(seconds=11)  # with CRASH_LIMITS
# The shipped defaults (the suite's own settings are shorter).
DEFAULT_LIMITS = {
    "SWITCHBOARD_RUN_TIME_LIMIT": "900",
    "SWITCHBOARD_BROKER_VISIBILITY_TIMEOUT": "1800",
    "SWITCHBOARD_RUN_LEASE": "30",
}


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05):
    """``condition()``'s first truthy value, polled until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


# --- the private stack: Redis, the web app, workers --------------------------------------


class RedisServer:
    """A redis-server of these tests' own on a free loopback port, without persistence (a
    restart loses everything: queues, unacknowledged messages, streams, slots, cancel flags)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = unused_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.client = connect(self.url)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory),
                "--logfile", str(self.directory / "redis.log"),
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self.serving, 10, "the private Redis to start")

    def serving(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def crash(self) -> None:
        """SIGKILL: no shutdown, and nothing saved."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class WebServer:
    """The web app under uvicorn in its own process, so that it uses the private Redis."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = unused_port()
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "app.web.app:create_app", "--factory",
                "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
            ],
            cwd=PROJECT_ROOT, env=self.env,
        )  # fmt: skip

        def answering() -> bool:
            assert self.process is not None and self.process.poll() is None, "web app exited"
            try:
                return httpx.get(f"{self.url}/api/v1/runs/1", timeout=2).status_code > 0
            except httpx.HTTPError:
                return False

        wait_until(answering, 30, "the web app to start", every=0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)


class WatchedServer:
    """The scripted model server, counting the requests it is answering at once."""

    def __init__(self, app: ScriptedServer) -> None:
        self.app = app
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

    @property
    def port(self) -> int:
        return self.app.port

    @port.setter
    def port(self, value: int) -> None:
        self.app.port = value

    def reset(self) -> None:
        self.app.reset()
        with self._lock:
            self.peak = self.in_flight

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            await self.app(scope, receive, send)
        finally:
            with self._lock:
                self.in_flight -= 1


@dataclass
class Stack:
    redis: RedisServer
    web: WebServer
    model: ScriptedServer
    watched: WatchedServer
    env: dict[str, str]
    workers: list[WorkerProcess] = field(default_factory=list)
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def worker(
        self, *, concurrency: int = 1, crash_limits: bool = False, env: dict[str, str] | None = None
    ) -> WorkerProcess:
        """Start a worker of its own name (a killed one's heartbeat must not pass for it)."""
        env = {**self.env, **(CRASH_LIMITS if crash_limits else {}), **(env or {})}
        process = WorkerProcess(name=f"rel{next(self._names)}", concurrency=concurrency, env=env)
        self.workers.append(process)
        return process.start()

    def sweep(self) -> None:
        """Have a worker run the sweeper now (as Celery beat does every 15 s)."""
        from app.config import Settings
        from workers.celery_app import create_celery

        producer = create_celery(Settings(redis_url=self.redis.url))  # type: ignore[call-arg]
        try:
            producer.send_task("switchboard.sweep_runs")
        finally:
            producer.close()

    def kill_workers(self) -> None:
        for process in self.workers:
            if process.process is not None and process.process.poll() is None:
                process.kill()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    directory = Path(tempfile.mkdtemp(prefix="sbr-", dir="/tmp"))
    private_redis = RedisServer(directory)
    private_redis.start()
    env = {**os.environ, "SWITCHBOARD_REDIS_URL": private_redis.url, **LIMITS}
    web = WebServer(env)
    model = ScriptedServer()
    watched = WatchedServer(model)
    thread = ServerThread(watched)  # type: ignore[arg-type]
    thread.start()
    try:
        web.start()
        yield Stack(private_redis, web, model, watched, env)
    finally:
        web.stop()
        thread.stop()
        private_redis.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def rig(stack: Stack) -> Iterator[Stack]:
    """The stack, clean: Redis up and empty, the model server unscripted, no workers."""
    if not stack.redis.serving():
        stack.redis.start()
    stack.redis.client.flushdb()
    stack.watched.reset()
    try:
        yield stack
    finally:
        stack.kill_workers()
        stack.workers.clear()
        stack.watched.reset()
        if stack.redis.serving():
            stack.redis.client.flushdb()


@dataclass
class Team:
    api: httpx.Client
    workspace: Any
    agents: list[Any]
    endpoint_id: int

    @property
    def slug(self) -> str:
        return str(self.workspace.slug)


@pytest.fixture
def team(rig: Stack, session: Session) -> Iterator[Team]:
    """A signed-in API client, a workspace, and two agents on the scripted model server."""
    user = make_user(session)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=rig.model.base_url)
    agents = [
        make_agent(session, workspace=workspace, model=model, name=name)
        for name in ("Coder", "Tester")
    ]
    with httpx.Client(base_url=rig.web.url, timeout=10) as api:
        sign_in(api, session, user)  # type: ignore[arg-type]
        yield Team(api, workspace, agents, model.endpoint_id)


def set_max_concurrency(endpoint_id: int, limit: int) -> None:
    from app.models import ModelEndpoint

    with Session(get_engine()) as db:
        endpoint = db.get(ModelEndpoint, endpoint_id)
        assert endpoint is not None
        endpoint.max_concurrency = limit
        db.add(endpoint)
        db.commit()


def start_task(team: Team, agents: list[Any] | None = None, brief: str = "Count.") -> dict:
    created = team.api.post(
        f"/api/v1/workspaces/{team.slug}/tasks",
        json={"title": "Count", "brief": brief,
              "agent_ids": [a.id for a in (agents or team.agents[:1])]},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    started = created.json()["started"]
    assert started["queued"], started
    return started


def get_run(team: Team, run_id: int) -> dict:
    response = team.api.get(f"/api/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_finished(team: Team, run_id: int, timeout: float = 30) -> dict:
    return wait_until(
        lambda: (run := get_run(team, run_id))["status"] in FINISHED and run,
        timeout,
        f"run {run_id} to finish",
        every=0.1,
    )


def run_row(run_id: int) -> Run:
    with Session(get_engine()) as db:
        run = db.get(Run, run_id)
        assert run is not None
        return run


def slot_holder_and_waiter(team: Team, run_ids: list[int]) -> tuple[int, int] | None:
    """(the run that streams, the run a worker holds while it waits for the endpoint's slot),
    once both are with a worker; None until then."""
    runs = {run_id: get_run(team, run_id) for run_id in run_ids}
    assert not any(run["status"] in FINISHED for run in runs.values()), runs
    running = [run_id for run_id, run in runs.items() if run["status"] == "running"]
    queued = [run_id for run_id, run in runs.items() if run["status"] == "queued"]
    if len(running) != 1 or not run_row(queued[0]).claimed_by:
        return None
    waiting = runs[queued[0]]
    assert waiting["started_at"] is None and waiting["attempts"] == 0, waiting
    return running[0], queued[0]


def answer_text(run_id: int) -> str:
    """The content of the run's answer message, from SQL."""
    with Session(get_engine()) as db:
        run = db.get(Run, run_id)
        assert run is not None and run.output_message_id is not None
        message = db.get(Message, run.output_message_id)
        assert message is not None
        return message.content


def answers_to(question_id: int) -> list[Message]:
    with Session(get_engine()) as db:
        return list(db.exec(select(Message).where(Message.parent_id == question_id)).all())


def sse_text(team: Team, run_id: int) -> tuple[str, list[str]]:
    """What a viewer who opens the run's live events now sees: the text and the event types."""
    text, types = "", []
    with team.api.stream("GET", f"/api/v1/runs/{run_id}/events") as response:
        assert response.status_code == 200
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
                types.append(event)
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                if event == "reset":
                    text = ""
                elif event == "token":
                    text += data["text"]
                elif event in ("done", "error"):
                    break
    return text, types


def stream_entries(rig: Stack, run_id: int) -> list[tuple[str, dict]]:
    return [
        live.decode_entry(fields) for _, fields in rig.redis.client.xrange(live.run_stream(run_id))
    ]


def wait_past(moment: datetime, timeout: float = 20) -> None:
    wait_until(lambda: datetime.now(UTC) > moment, timeout, f"the clock to pass {moment}", 0.1)


def streamed_text(rig: Stack, run_id: int) -> str:
    """The text a viewer of the live stream sees: tokens since the last ``reset``."""
    text = ""
    for type_, data in stream_entries(rig, run_id):
        if type_ == "reset":
            text = ""
        elif type_ == "token":
            text += data["text"]
    return text


# --- 1. a worker killed mid-run -------------------------------------------------------------


def test_a_run_whose_worker_is_killed_mid_stream_runs_again_and_answers_once(rig, team):
    rig.model.on(CHAT, answer(TEXT, pause=0.2))
    first = rig.worker(crash_limits=True)
    started = start_task(team)
    run_id = started["runs"][0]["id"]
    wait_until(lambda: len(streamed_text(rig, run_id).split()) >= 3, 90, "a few tokens")

    first.kill()  # SIGKILL, the worker and its pool: the run's message stays unacknowledged

    partial = streamed_text(rig, run_id)
    assert TEXT.startswith(partial) and partial != TEXT
    lost = run_row(run_id)
    assert (lost.status, lost.attempts) == ("running", 1)
    # Nobody renews its lease now. Once that has lapsed, and Redis may hand the message out
    # again (its delivery came before this attempt started), a new worker takes the run.
    assert lost.lease_until is not None and lost.started_at is not None
    wait_past(max(lost.lease_until, lost.started_at + VISIBILITY) + timedelta(seconds=0.5))
    rig.worker(crash_limits=True)
    run = wait_finished(team, run_id)

    assert run["status"] == "succeeded", run
    assert run["attempts"] == 2
    assert len(rig.model.received) == 2
    (message,) = answers_to(started["message"]["id"])  # one answer, not a second one
    assert message.content == TEXT  # the full text once; the lost attempt's part is gone
    types = [type_ for type_, _ in stream_entries(rig, run_id)]
    assert types.count("reset") == 1 and types[-1] == "done"
    assert streamed_text(rig, run_id) == TEXT  # viewers drop the lost part at the reset


# --- 2. a poison run ------------------------------------------------------------------------


def test_a_run_that_kills_its_worker_every_time_fails_after_three_attempts(rig, team):
    rig.model.on(CHAT, Stream([Pause(30)]))  # the test kills the worker while it waits here
    worker = rig.worker(crash_limits=True)
    started = start_task(team)
    run_id = started["runs"][0]["id"]

    for attempt in (1, 2, 3):
        wait_until(lambda: len(rig.model.received) == attempt, 30, f"request {attempt}")  # noqa: B023
        worker.kill()
        row = run_row(run_id)
        assert (row.status, row.attempts) == ("running", attempt)
        # The next worker starts at once (its start-up sweep finds the lease still held);
        # once the lease has run out, a sweep sends the run again.
        worker = rig.worker(crash_limits=True)
        assert row.lease_until is not None
        wait_past(row.lease_until + timedelta(seconds=0.2))
        rig.sweep()

    run = wait_finished(team, run_id)
    assert run["status"] == "failed", run
    assert "died 3 times" in run["error"], run["error"]
    assert run["attempts"] == 3
    assert [type_ for type_, _ in stream_entries(rig, run_id)][-1] == "error"
    rig.sweep()
    time.sleep(1)
    assert len(rig.model.received) == 3, "it was tried again"
    assert get_run(team, run_id)["status"] == "failed"


# --- 3. Redis restarting mid-run ------------------------------------------------------------


def test_redis_restarting_mid_run_neither_loses_nor_strands_a_run(rig, team):
    rig.model.on(CHAT, answer(LONG_TEXT, pause=0.1))
    rig.worker(crash_limits=True)  # one process: the second run waits in Redis's queue
    started = start_task(team, team.agents)
    first, second = (run["id"] for run in started["runs"])
    wait_until(lambda: len(streamed_text(rig, first).split()) >= 3, 90, "a few tokens")

    # SIGKILL, no persistence: the queue with the second run's message, the first run's
    # unacknowledged message, its live stream, the slot, the worker's heartbeat — all gone.
    rig.redis.crash()
    rig.redis.start()

    # The run in progress goes on (the worker and the web app reconnect) and finishes.
    run = wait_finished(team, first)
    assert run["status"] == "succeeded", run
    assert run["attempts"] == 1
    assert answer_text(first) == LONG_TEXT
    # A viewer arriving now gets the whole text, not only what was streamed since the restart.
    text, types = sse_text(team, first)
    assert text == LONG_TEXT and types[-1] == "done", (text, types)

    # The second run's message was lost: it stays queued until the sweeper sends it again,
    # once Redis would have redelivered it, and then it runs once.
    assert get_run(team, second)["status"] == "queued"
    dispatched_at = run_row(second).dispatched_at
    assert dispatched_at is not None
    wait_past(dispatched_at + VISIBILITY + timedelta(seconds=0.5))
    rig.sweep()
    run = wait_finished(team, second)
    assert run["status"] == "succeeded", run
    assert run["attempts"] == 1
    assert answer_text(second) == LONG_TEXT
    assert len(rig.model.received) == 2


# --- 4. the model server dying mid-stream ---------------------------------------------------


def test_model_server_dropping_mid_stream_fails_the_run_and_keeps_the_partial_text(rig, team):
    rig.model.on(CHAT, Stream([sse(chunk("Hello")), sse(chunk(" wor")), Pause(0.1), Drop()]))
    rig.worker()
    started = start_task(team)
    run_id = started["runs"][0]["id"]

    run = wait_finished(team, run_id)

    assert run["status"] == "failed", run
    assert run["error"].startswith("The model stream ended without a finish"), run["error"]
    assert "closed the connection mid-stream" in run["error"]
    assert run["attempts"] == 1  # a model failure is the run's outcome, not a reason to retry
    assert answer_text(run_id) == "Hello wor"  # kept, under a run marked failed
    type_, data = stream_entries(rig, run_id)[-1]
    assert (type_, data["status"], data["error"]) == ("error", "failed", run["error"])
    assert len(rig.model.received) == 1


def test_llama_server_killed_mid_generation_fails_the_run_with_a_clear_reason(
    rig, team, session, tmp_path
):
    from app.runtime import embedded_model

    server = embedded_model.start(
        tmp_path, port=unused_port(), parallel=1, context=1024, timeout=120
    )
    try:
        model = make_model(
            session, base_url=server.base_url, api_key=server.api_key, server_kind="llama.cpp"
        )
        agent = make_agent(session, workspace=team.workspace, model=model, name="Counter")
        agent.max_tokens = 400
        session.add(agent)
        session.commit()
        rig.worker()  # after the endpoint exists: it consumes the endpoint's queue at once
        started = start_task(team, [agent], brief="Count from 1 to 300, one number per line.")
        run_id = started["runs"][0]["id"]
        wait_until(lambda: len(streamed_text(rig, run_id)) >= 10, 60, "the first tokens")

        server.process.kill()
        server.process.wait(10)
        run = wait_finished(team, run_id)
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)

    assert run["status"] == "failed", run
    assert run["error"] == (
        f"The model stream ended without a finish: Model server at {server.base_url} "
        "closed the connection mid-stream"
    )
    assert answer_text(run_id).startswith(streamed_text(rig, run_id)[:10])


# --- 5. cancel ------------------------------------------------------------------------------


def test_cancelling_a_running_run_stops_the_model_and_keeps_the_partial_text(rig, team):
    rig.model.on(CHAT, answer(LONG_TEXT, pause=0.2))
    rig.worker()
    started = start_task(team)
    run_id = started["runs"][0]["id"]
    wait_until(lambda: len(streamed_text(rig, run_id).split()) >= 3, 90, "a few tokens")

    asked = time.monotonic()
    response = team.api.post(f"/api/v1/runs/{run_id}/cancel")
    assert response.status_code == 200, response.text
    run = wait_until(
        lambda: (run := get_run(team, run_id))["status"] != "running" and run, 5, "the cancel"
    )
    took = time.monotonic() - asked

    assert run["status"] == "cancelled", run
    assert took < 2, f"cancelled after {took:.2f}s"
    assert run["error"] == "Cancelled; the text so far is kept."
    text = answer_text(run_id)
    assert text and LONG_TEXT.startswith(text) and text != LONG_TEXT, text
    request = rig.model.only_request()
    assert request.disconnected.wait(2), "the model server never saw the client go"
    type_, data = stream_entries(rig, run_id)[-1]
    assert (type_, data["status"]) == ("done", "cancelled")


def test_cancelling_a_run_that_waits_for_a_slot_ends_it_at_once_and_it_never_runs(rig, team):
    set_max_concurrency(team.endpoint_id, 1)
    rig.model.on(CHAT, answer(LONG_TEXT, pause=0.1))
    rig.worker(concurrency=2)  # a free worker process: only the endpoint's limit holds one back
    started = start_task(team, team.agents)
    run_ids = [run["id"] for run in started["runs"]]
    # Each of the worker's processes takes a run; one streams, the other waits for the slot.
    streaming, waiting = wait_until(lambda: slot_holder_and_waiter(team, run_ids), 30, "a wait")

    response = team.api.post(f"/api/v1/runs/{waiting}/cancel")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert get_run(team, waiting)["status"] == "cancelled"
    assert wait_finished(team, streaming)["status"] == "succeeded"
    time.sleep(1)  # time enough for the slot to pass on, were the cancelled run to take it
    assert len(rig.model.received) == 1, "the cancelled run reached the model"
    run = get_run(team, waiting)
    assert run["status"] == "cancelled" and run["attempts"] == 0 and run["started_at"] is None
    assert run["error"] == "Cancelled before it started."


# --- 6. an endpoint's concurrency limit across workers ------------------------------------


def test_an_endpoints_limit_holds_across_workers_and_the_waiting_run_shows_its_place(rig, team):
    set_max_concurrency(team.endpoint_id, 1)
    rig.model.on(CHAT, answer(LONG_TEXT, pause=0.15))
    rig.worker()
    rig.worker()
    started = start_task(team, team.agents)
    run_ids = [run["id"] for run in started["runs"]]

    # Each worker takes one run (one process each): one streams, the other waits for the slot.
    streaming, waiting = wait_until(lambda: slot_holder_and_waiter(team, run_ids), 30, "a wait")
    assert get_run(team, waiting)["queue_position"] == 1
    assert get_run(team, streaming)["queue_position"] is None
    workers = {str(run_row(run_id).claimed_by).partition(":")[0] for run_id in run_ids}
    assert len(workers) == 2, workers

    finished = [wait_finished(team, run_id) for run_id in run_ids]
    assert [run["status"] for run in finished] == ["succeeded", "succeeded"]
    assert [run["attempts"] for run in finished] == [1, 1]
    assert len(rig.model.received) == 2
    assert rig.watched.peak == 1, "the model server saw two requests at once"
    assert [answer_text(run_id) for run_id in run_ids] == [LONG_TEXT, LONG_TEXT]


# --- 7. a dead worker's run is taken over within a minute, on the default settings --------


def test_a_run_whose_worker_process_is_killed_is_taken_over_within_a_minute(rig, team):
    rig.model.on(CHAT, answer(LONG_TEXT, pause=0.2))
    workers = [rig.worker(env=DEFAULT_LIMITS), rig.worker(env=DEFAULT_LIMITS)]
    started = start_task(team)
    run_id = started["runs"][0]["id"]
    wait_until(lambda: len(streamed_text(rig, run_id).split()) >= 3, 90, "a few tokens")
    holder = str(run_row(run_id).claimed_by)  # "node@host:pid:thread"
    pid = int(holder.split(":")[1])
    (streaming,) = (w for w in workers if w.process is not None and w.process.pid == pid)

    # SIGKILL the worker process that streams (an OOM kill, every thread of it): its message
    # stays unacknowledged until the visibility timeout (30 min), so the sweep that Celery
    # beat sends every 15 s finds the run's holder dead — it ran on this machine — and sends
    # it again at once; the other worker takes it over without waiting for its lease.
    streaming.kill()
    rig.sweep()

    try:
        run = wait_until(
            lambda: (run := get_run(team, run_id))["status"] in FINISHED and run,
            60,
            "another worker process to take the run over and finish it",
            every=0.2,
        )
    except AssertionError as timed_out:
        row = run_row(run_id)
        raise AssertionError(
            f"{timed_out}: {row.status}, claimed by {row.claimed_by} until {row.lease_until}, "
            f"dispatched at {row.dispatched_at}; queues {rig.redis.client.keys('runs.*')}"
        ) from None
    assert run["status"] == "succeeded", run
    assert run["attempts"] == 2
    assert run_row(run_id).claimed_by != holder
    (message,) = answers_to(started["message"]["id"])  # exactly one answer
    assert message.content == LONG_TEXT
    types = [type_ for type_, _ in stream_entries(rig, run_id)]
    assert types.count("reset") == 1 and types[-1] == "done"
    assert streamed_text(rig, run_id) == LONG_TEXT


# --- 7b. an endpoint whose model hangs cannot starve another endpoint ---------------------


def test_an_endpoint_whose_model_hangs_cannot_starve_another_endpoints_run(rig, team, session):
    from app.config import Settings

    # One worker process as shipped: its default number of threads.
    threads = Settings.model_fields["worker_concurrency"].default
    hung_limit = 4
    set_max_concurrency(team.endpoint_id, hung_limit)
    rig.model.on(CHAT, Stream([Pause(600)]))  # it takes the request and never sends a token
    other = ScriptedServer()
    other.on(CHAT, answer(TEXT))
    other_thread = ServerThread(other)
    other_thread.start()
    try:
        elsewhere = make_agent(
            session, workspace=team.workspace, name="Elsewhere",
            model=make_model(session, base_url=other.base_url),
        )  # fmt: skip
        rig.worker(concurrency=threads, env=DEFAULT_LIMITS)
        # More runs of the hung endpoint than the worker has threads.
        hung = [
            run["id"]
            for _ in range(threads // len(team.agents) + 1)
            for run in start_task(team, team.agents)["runs"]
        ]
        wait_until(lambda: rig.watched.in_flight == hung_limit, 60, "every slot of it to hang")

        served = start_task(team, [elsewhere])["runs"][0]["id"]
        run = wait_finished(team, served, timeout=60)  # A's first-token timeout is 120 s

        assert run["status"] == "succeeded", run
        assert answer_text(served) == TEXT
        # All the while the hung endpoint kept its limit, and its requests still hang.
        assert rig.watched.peak == hung_limit and rig.watched.in_flight == hung_limit
        assert len(rig.model.received) == hung_limit
        assert not any(request.disconnected.is_set() for request in rig.model.received)
        assert all(get_run(team, run_id)["status"] in ("queued", "running") for run_id in hung)
    finally:
        rig.kill_workers()
        other_thread.stop()


# --- 8. the time limit keeps the text streamed so far -------------------------------------


def test_a_run_stopped_by_its_time_limit_keeps_its_streamed_text(rig, team):
    # Two tokens, then silence past the 5 s soft limit (and short of the between-tokens
    # timeout, so that it is the time limit that stops it).
    rig.model.on(CHAT, Stream([sse(chunk("Hello")), sse(chunk(" there")), Pause(20)]))
    rig.worker(crash_limits=True)
    started = start_task(team)
    run_id = started["runs"][0]["id"]

    run = wait_finished(team, run_id, timeout=60)

    assert run["status"] == "failed", run
    assert "longer than the 10s limit" in run["error"], run["error"]
    assert run["attempts"] == 1
    assert answer_text(run_id) == "Hello there"

    def stream_end() -> tuple[str, dict] | None:  # appended just after the SQL write
        last = stream_entries(rig, run_id)[-1]
        return last if last[0] in ("done", "error") else None

    type_, data = wait_until(stream_end, 10, "the run's stream to end")
    assert (type_, data["status"]) == ("error", "failed")


# --- 9. the endpoint's slot is held while a long prompt is evaluated ----------------------


def slot_expiry(rig, endpoint_id: int, run_id: int) -> float | None:
    """When the run's slot of the endpoint lapses unless renewed (None: it holds none)."""
    return rig.redis.client.zscore(f"sb:endpoint:{endpoint_id}:slots", run_id)


def test_an_endpoints_limit_holds_while_a_long_prompt_sends_no_token(rig, team):
    set_max_concurrency(team.endpoint_id, 1)
    # The model evaluates the first prompt (no token) until the test says so: only the
    # heartbeat keeps the slot past its lease, and with it the endpoint's limit of one.
    evaluating = Hold(threading.Event())
    rig.model.on(CHAT, Stream([evaluating, *answer("Read it all; here it is.").steps]))
    short_slot = {"SWITCHBOARD_ENDPOINT_SLOT_LEASE": "3"}
    rig.worker(env=short_slot)
    rig.worker(env=short_slot)
    started = start_task(team, team.agents)
    run_ids = [run["id"] for run in started["runs"]]
    wait_until(evaluating.reached.is_set, 60, "the first prompt to reach the model")
    first, waiting = wait_until(lambda: slot_holder_and_waiter(team, run_ids), 30, "a wait")
    taken_until = slot_expiry(rig, team.endpoint_id, first)
    assert taken_until is not None, "the evaluating run holds no slot"

    # Past the slot's first lease, the evaluating run still holds it, renewed.
    def renewed_past_its_lease() -> bool:
        now = slot_expiry(rig, team.endpoint_id, first)
        assert len(rig.model.received) == 1, "the waiting run reached the model"
        return time.time() > taken_until and now is not None and now > taken_until

    wait_until(renewed_past_its_lease, 30, "the slot to be renewed while the prompt is read")
    evaluating.gate.set()
    finished = [wait_finished(team, run_id, timeout=60) for run_id in run_ids]

    assert [run["status"] for run in finished] == ["succeeded", "succeeded"], finished
    assert len(rig.model.received) == 2
    assert rig.watched.peak == 1, "the model server saw two requests at once"


# --- 10. a cancel survives Redis being down -----------------------------------------------


def test_cancelling_while_redis_is_down_is_kept_and_stops_the_run(rig, team):
    rig.model.on(CHAT, answer(LONG_TEXT, pause=0.2))
    rig.worker()
    started = start_task(team)
    run_id = started["runs"][0]["id"]
    wait_until(lambda: len(streamed_text(rig, run_id).split()) >= 3, 90, "a few tokens")

    rig.redis.crash()  # the Redis flag cannot be raised, and nothing in Redis survives
    response = team.api.post(f"/api/v1/runs/{run_id}/cancel")

    assert response.status_code == 200, response.text
    run = wait_finished(team, run_id)
    assert run["status"] == "cancelled", run
    assert run["error"] == "Cancelled; the text so far is kept."
    text = answer_text(run_id)
    assert text and LONG_TEXT.startswith(text) and text != LONG_TEXT, text
