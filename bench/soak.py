"""A soak of the run engine under faults: many runs against a scripted model while worker
processes are SIGKILLed at random and Redis restarts once.

    python -m bench.soak [--runs 1000] [--minutes 10] [--kill-every 15] [--database-url URL]

Starts a throwaway stack of its own on a fresh folder under /tmp — a private ``redis-server``
on a free loopback port (append-only file, as the compose stack runs it; never the machine's
Redis), SQLite (or ``--database-url``, e.g. a PostgreSQL database), the web app under uvicorn,
two Celery workers of four threads each (the run pool ``switchboard worker`` runs) and one
``switchboard beat`` — with the shipped defaults for leases and time limits. A scripted
OpenAI-compatible model answers every request with the same 20 words, 0.1 s apart.

Tasks of four agents each are posted through the API at a steady pace, ``--runs`` runs over
``--minutes``. Meanwhile every ``--kill-every`` seconds (on average) a worker process that is
streaming a run is SIGKILLed (an OOM kill: every run of its threads is orphaned, and the
sweeper sends them again), and once, half-way, Redis is stopped and started again. A run is
*orphaned* from the moment its process is killed until another process claims it (or it is
finished).

Like compose's ``restart: unless-stopped``, a process of the stack that exits is started again
(a Celery worker exits when Redis refuses connections at the moment it notices the outage).

At the end: every run final? each succeeded run has exactly one answer, with the whole text,
once? Prints the counts, the longest time a run stayed orphaned, and a last line of JSON.
Nothing is asserted here; the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis
import uvicorn

from app.runtime.embedded_redis import redis_server_binary
from app.runtime.preflight import free_loopback_port
from bench.report import emit, row

REPO = Path(__file__).resolve().parents[1]
WORDS = [f"w{i}" if i == 0 else f" w{i}" for i in range(20)]
TEXT = "".join(WORDS)
AGENTS = ("Coder", "Tester", "Reviewer", "Explorer")
FINAL = ("succeeded", "failed", "cancelled")


# --- the scripted model, in a child process -----------------------------------------------


def _chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {"id": "soak", "object": "chat.completion.chunk", "model": "scripted",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def _model_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/v1/models":
        body = json.dumps({"object": "list", "data": [{"id": "scripted", "object": "model"}]})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body.encode()})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})  # fmt: skip
    try:
        for word in WORDS:
            await send({"type": "http.response.body", "body": _chunk(word), "more_body": True})
            await asyncio.sleep(0.1)
        usage = {"prompt_tokens": 10, "completion_tokens": len(WORDS), "total_tokens": 30}
        tail = (
            _chunk(finish="stop")
            + b"data: "
            + json.dumps(
                {"id": "soak", "object": "chat.completion.chunk", "choices": [], "usage": usage}
            ).encode()
            + b"\n\ndata: [DONE]\n\n"
        )
        await send({"type": "http.response.body", "body": tail, "more_body": False})
    except OSError:
        pass  # the worker went away (killed): nothing to finish


def _serve_model(port: int) -> None:
    config = uvicorn.Config(
        _model_app, host="127.0.0.1", port=port, http="h11", loop="asyncio", lifespan="off",
        log_config=None, access_log=False, timeout_graceful_shutdown=1,
    )  # fmt: skip
    uvicorn.Server(config).run()


# --- the stack ----------------------------------------------------------------------------


@dataclass
class Soak:
    directory: Path
    env: dict[str, str]
    redis_port: int
    web_port: int
    redis_process: subprocess.Popen[bytes] | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    argv: dict[str, list[str]] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    restarts: int = 0

    def log(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        self.events.append(line)
        print(line, flush=True)

    # redis-server of our own, with an append-only file (a restart keeps the queues)
    def start_redis(self) -> None:
        self.redis_process = subprocess.Popen(
            [
                redis_server_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "yes", "--dir", str(self.directory),
                "--logfile", str(self.directory / "redis.log"),
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.redis_port, socket_timeout=1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    return
            time.sleep(0.05)
        raise RuntimeError("the soak's redis-server did not start")

    def stop_redis(self) -> None:
        if self.redis_process is not None and self.redis_process.poll() is None:
            self.redis_process.terminate()
            self.redis_process.wait(30)

    def spawn(self, name: str, argv: list[str]) -> None:
        log = (self.directory / f"{name}.log").open("ab")
        self.argv[name] = argv
        self.processes[name] = subprocess.Popen(
            argv, cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )

    def restart_exited(self) -> None:
        """What compose's ``restart: unless-stopped`` does: start again what exited."""
        for name, process in list(self.processes.items()):
            if process.poll() is not None:
                self.restarts += 1
                self.log(f"{name} exited with status {process.returncode}; starting it again")
                self.spawn(name, self.argv[name])

    def worker_pids(self) -> dict[int, str]:
        """Pid of a process that carries out runs (a threaded worker, or a prefork pool's
        child) → worker name, for the workers alive now."""
        found = {}
        for name, process in self.processes.items():
            if name.startswith("worker") and process.poll() is None:
                found[process.pid] = name
                with contextlib.suppress(psutil.Error):
                    for child in psutil.Process(process.pid).children(recursive=True):
                        found[child.pid] = name
        return found

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(process.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        child.kill()
                process.kill()
                process.wait()
        self.stop_redis()


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def prepare(soak: Soak, model_url: str) -> tuple[str, list[int], str]:
    """Accounts, a workspace, the scripted endpoint and four agents; (slug, agent ids, token)."""
    from sqlmodel import Session

    from app.db import get_engine
    from app.models import Agent, Model, ModelEndpoint
    from app.services.accounts import create_user, start_session
    from app.services.workspaces import create_workspace

    with Session(get_engine(), expire_on_commit=False) as session:
        user = create_user(session=session, email="soak@example.com", password=None)
        workspace = create_workspace(session=session, name="Soak", owner=user)
        endpoint = ModelEndpoint(name="scripted", base_url=model_url, max_concurrency=8)
        session.add(endpoint)
        session.flush()
        model = Model(endpoint_id=endpoint.id, name="scripted", context_length=4096)  # type: ignore[arg-type]
        session.add(model)
        session.flush()
        agents = []
        for name in AGENTS:
            agent = Agent(
                workspace_id=workspace.id, name=name, role_prompt=f"You are {name}.",  # type: ignore[arg-type]
                model_id=model.id, max_tokens=64, temperature=0.0,
            )  # fmt: skip
            session.add(agent)
            agents.append(agent)
        token = start_session(session=session, user=user, lifetime=timedelta(days=1))
        session.commit()
        return workspace.slug, [a.id for a in agents], token  # type: ignore[misc]


# --- watching: which runs a kill orphaned, and for how long ------------------------------


@dataclass
class Orphan:
    run_id: int
    holder: str
    since: float
    until: float | None = None


def run_rows() -> list[tuple[int, str, str | None]]:
    import sqlalchemy as sa

    from app.db import get_engine
    from app.models import Run

    with get_engine().connect() as connection:
        return [
            (int(r[0]), str(r[1]), r[2])
            for r in connection.execute(sa.select(Run.id, Run.status, Run.claimed_by)).all()
        ]


def holder_pid(holder: str) -> int:
    """The process of a claim holder, "node@host:pid:thread" (or "node@host:pid")."""
    return int(holder.split(":")[1])


def chaos(soak: Soak, stop: threading.Event, every: float, orphans: list[Orphan],
          redis_at: float, started: float) -> None:  # fmt: skip
    """SIGKILL a pool process that streams a run every ``every`` s or so; restart Redis once."""
    rng = random.Random(20261130)
    restarted = False
    while not stop.wait(rng.uniform(every * 0.5, every * 1.5)):
        if not restarted and time.monotonic() - started >= redis_at:
            restarted = True
            soak.log("redis: stopping")
            soak.stop_redis()
            time.sleep(2)
            soak.start_redis()
            soak.log("redis: started again")
            continue
        pids = soak.worker_pids()
        streaming = [
            (run_id, holder)
            for run_id, status, holder in run_rows()
            if status == "running" and holder and holder_pid(holder) in pids
        ]
        if not streaming:
            continue
        _, holder = rng.choice(streaming)
        pid = holder_pid(holder)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        now = time.monotonic()
        hit = [
            Orphan(run_id, claimed, now)
            for run_id, status, claimed in run_rows()
            if claimed and holder_pid(claimed) == pid and status in ("queued", "running")
        ]
        orphans.extend(hit)
        soak.log(f"killed worker process {pid} ({pids[pid]}): runs {[o.run_id for o in hit]}")


def keep_running(soak: Soak, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        soak.restart_exited()


def watch_orphans(stop: threading.Event, orphans: list[Orphan]) -> None:
    while not stop.wait(0.25):
        open_ = [o for o in orphans if o.until is None]
        if not open_:
            continue
        rows = {run_id: (status, claimed) for run_id, status, claimed in run_rows()}
        now = time.monotonic()
        for orphan in open_:
            status, claimed = rows.get(orphan.run_id, ("gone", None))
            if status in FINAL or (claimed is not None and claimed != orphan.holder):
                orphan.until = now


# --- the soak -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs in all (4 per task)")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to post them")
    parser.add_argument("--kill-every", type=float, default=15.0, help="seconds between kills")
    parser.add_argument("--database-url", default="", help="default: SQLite in the folder")
    parser.add_argument("--keep", action="store_true", help="keep the folder and its logs")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="sbsoak-", dir="/tmp"))
    redis_port, web_port, model_port = (free_loopback_port() for _ in range(3))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(
        {
            "SWITCHBOARD_ENVIRONMENT": "development",
            "SWITCHBOARD_DATA_DIR": str(directory),
            "SWITCHBOARD_DATABASE_URL": args.database_url or f"sqlite:///{directory}/soak.db",
            "SWITCHBOARD_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "SWITCHBOARD_EMBEDDED_MODEL": "false",
            "SWITCHBOARD_LOG_LEVEL": "warning",
            "PYTHONUNBUFFERED": "1",
        }
    )
    os.environ.update(env)  # this process reads the same database
    soak = Soak(directory, env, redis_port, web_port)
    model = multiprocessing.get_context("spawn").Process(
        target=_serve_model, args=(model_port,), daemon=True
    )
    model.start()
    stop = threading.Event()
    orphans: list[Orphan] = []
    try:
        soak.start_redis()
        subprocess.run(_python("-m", "app.runtime.cli", "migrate"), cwd=REPO, env=env, check=True)
        slug, agent_ids, token = prepare(soak, f"http://127.0.0.1:{model_port}/v1")
        for number in (1, 2):
            soak.spawn(f"worker{number}", _python(
                "-m", "celery", "--app", "workers.celery_app", "worker", "--pool", "threads",
                "--concurrency", "4", "--loglevel", "WARNING",
                "--hostname", f"soak{number}@%h",
            ))  # fmt: skip
        soak.spawn("beat", _python("-m", "app.runtime.cli", "beat"))
        soak.spawn("web", _python(
            "-m", "uvicorn", "app.web.app:create_app", "--factory", "--host", "127.0.0.1",
            "--port", str(web_port), "--log-level", "warning",
        ))  # fmt: skip
        api = httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=30)
        api.cookies.set("switchboard_session", token)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if api.get("/api/v1/me").is_success:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the web app did not start")
            time.sleep(0.2)

        tasks = max(args.runs // len(AGENTS), 1)
        pace = args.minutes * 60 / tasks
        started = time.monotonic()
        threads = [
            threading.Thread(target=chaos, args=(soak, stop, args.kill_every, orphans,
                                                 args.minutes * 30, started), daemon=True),
            threading.Thread(target=watch_orphans, args=(stop, orphans), daemon=True),
        ]  # fmt: skip
        keeper_stop = threading.Event()
        keeper = threading.Thread(target=keep_running, args=(soak, keeper_stop), daemon=True)
        keeper.start()
        for thread in threads:
            thread.start()
        soak.log(f"posting {tasks} tasks × {len(AGENTS)} agents, one every {pace:.2f}s")
        refused = 0
        for number in range(tasks):
            body = {"title": f"Soak {number}", "brief": f"Question {number}?",
                    "agent_ids": agent_ids}  # fmt: skip
            try:
                response = api.post(f"/api/v1/workspaces/{slug}/tasks", json=body)
                refused += not response.is_success
            except httpx.HTTPError:
                refused += 1
            time.sleep(max(0.0, started + (number + 1) * pace - time.monotonic()))
        soak.log("all posted; the kills stop, waiting for every run to finish")
        stop.set()
        for thread in threads:
            thread.join(30)
        stop.clear()
        watcher = threading.Thread(target=watch_orphans, args=(stop, orphans), daemon=True)
        watcher.start()
        settle_deadline = time.monotonic() + 300
        while time.monotonic() < settle_deadline:
            if all(status in FINAL for _, status, _ in run_rows()):
                break
            time.sleep(1)
        time.sleep(1)
        stop.set()
        watcher.join(10)
        keeper_stop.set()
        keeper.join(10)
        report(soak, orphans, refused, time.monotonic() - started)
    finally:
        stop.set()
        soak.stop()
        model.terminate()
        model.join(10)
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


def report(soak: Soak, orphans: list[Orphan], refused: int, elapsed: float) -> None:
    import sqlalchemy as sa

    from app.db import get_engine
    from app.models import Message, Run

    with get_engine().connect() as connection:
        runs = connection.execute(
            sa.select(
                Run.id,
                Run.status,
                Run.attempts,
                Run.input_message_id,
                Run.agent_id,
                Run.output_message_id,
                Run.error,
            )  # fmt: skip
        ).all()
        contents = dict(connection.execute(sa.select(Message.id, Message.content)).all())
        answers = connection.execute(
            sa.select(Message.parent_id, Message.agent_id, sa.func.count())
            .where(Message.role == "assistant")
            .group_by(Message.parent_id, Message.agent_id)
        ).all()
    by_status: dict[str, int] = {}
    for run in runs:
        by_status[run.status] = by_status.get(run.status, 0) + 1
    succeeded = [run for run in runs if run.status == "succeeded"]
    wrong_text = [run.id for run in succeeded if contents.get(run.output_message_id) != TEXT]
    duplicated = sum(count - 1 for _, _, count in answers if count > 1)
    stuck = [run.id for run in runs if run.status not in FINAL]
    lost = [run.id for run in runs if run.status != "succeeded"]
    retaken = sum(1 for run in runs if run.attempts > 1)
    durations = [(o.until or time.monotonic()) - o.since for o in orphans]
    never = sum(1 for o in orphans if o.until is None)
    figures = {
        "runs": len(runs),
        "succeeded": len(succeeded),
        "failed": by_status.get("failed", 0),
        "cancelled": by_status.get("cancelled", 0),
        "stuck": len(stuck),
        "lost": len(lost),
        "duplicated": duplicated,
        "wrong_text": len(wrong_text),
        "posts_refused": refused,
        "processes_restarted": soak.restarts,
        "kills": len({holder_pid(o.holder) for o in orphans}),
        "orphaned_runs": len(orphans),
        "orphans_never_taken_over": never,
        "runs_taken_over": retaken,
        "longest_orphaned_s": round(max(durations, default=0.0), 1),
        "median_orphaned_s": round(sorted(durations)[len(durations) // 2], 1) if durations else 0,
        "elapsed_s": round(elapsed, 1),
    }
    errors = sorted({run.error for run in runs if run.status == "failed" and run.error})
    print()
    print(f"runs {figures['runs']}: succeeded {figures['succeeded']}, failed {figures['failed']}, "
          f"cancelled {figures['cancelled']}, stuck {figures['stuck']}")  # fmt: skip
    print(f"answers: duplicated {duplicated}, wrong or partial text {len(wrong_text)}")
    print(f"kills {figures['kills']} (runs orphaned {len(orphans)}, taken over {retaken}); "
          f"longest orphaned {figures['longest_orphaned_s']} s, median "
          f"{figures['median_orphaned_s']} s; never taken over {never}")  # fmt: skip
    for orphan in sorted(orphans, key=lambda o: o.since):
        took = (orphan.until or time.monotonic()) - orphan.since
        print(f"  run {orphan.run_id}: orphaned {took:.1f} s (its process {orphan.holder})")
    if soak.restarts:
        print(f"processes that exited and were started again: {soak.restarts}")
    if errors:
        print("failure reasons:", *errors[:5], sep="\n  ")
    bad = figures["lost"] + figures["duplicated"] + figures["wrong_text"]
    emit("soak", figures, [
        row(f"{figures['runs']:,} runs while pool processes are killed and Redis restarts",
            "—", f"{figures['succeeded']:,} succeeded, {bad} lost, duplicated or wrong; longest "
            f"orphaned {figures['longest_orphaned_s']} s", None,
            "none lost, duplicated or wrong", bad == 0),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
