"""Page latency with a big workspace, under concurrent clients, against /healthz.

    python -m bench.ui_latency [--clients 20] [--requests 200]

Seeds a throwaway install (SQLite and the embedded Redis in a temporary folder) with a
workspace of 1,000 tasks and one task of 500 messages (100 questions, each fanned out to four
agents), starts the web app under uvicorn, and measures the board, the task page and the compare
page with ``--clients`` clients at once. Prints p50 and p95 of each and their ratio to the
latency of ``/healthz`` measured in the same run. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx

from bench.report import emit, row
from bench.stack import process_cpu_seconds

# Issue 14's targets.
TARGET_P95_RATIO = 3.0
TARGET_CPU_MS = 8.0


def seed(data_dir: Path) -> tuple[str, int, int, str]:
    """The workspace slug, the big task's id, a comparison id, and a session token."""
    from sqlmodel import Session

    from app.db import create_db_engine
    from app.models import Agent, Message, Run, Task
    from app.runtime.migrate import upgrade_to_head
    from app.services.accounts import create_user, start_session
    from app.services.comparisons import create_comparison
    from app.services.workspaces import create_workspace

    url = f"sqlite:///{data_dir / 'switchboard.db'}"
    upgrade_to_head(url)
    engine = create_db_engine(url)
    with Session(engine) as session:
        user = create_user(session=session, email="bench@example.com", password="benchmark-pw")
        workspace = create_workspace(session=session, name="Big", owner=user)
        agents = [Agent(workspace_id=workspace.id, name=f"Agent {n}") for n in range(4)]
        session.add_all(agents)
        statuses = ["backlog", "running", "review", "done"]
        session.add_all(
            Task(workspace_id=workspace.id, title=f"Task {n}", status=statuses[n % 4], position=n)
            for n in range(999)
        )
        big = Task(workspace_id=workspace.id, title="The long one", status="review", position=1e6)
        session.add(big)
        session.flush()
        parent = None
        last_answers: list[Message] = []
        for round_ in range(100):
            question = Message(task_id=big.id, parent_id=parent, role="user",
                               content=f"Question {round_}: " + "why? " * 40)  # fmt: skip
            session.add(question)
            session.flush()
            last_answers = []
            for agent in agents:
                reply = Message(task_id=big.id, parent_id=question.id, role="assistant",
                                agent_id=agent.id, content=f"Answer {round_} by {agent.name}. "
                                + "Because **reasons** and `code`. " * 30)  # fmt: skip
                session.add(reply)
                session.flush()
                session.add(Run(task_id=big.id, agent_id=agent.id, input_message_id=question.id,
                                output_message_id=reply.id, status="succeeded"))  # fmt: skip
                last_answers.append(reply)
            parent = last_answers[-1].id
        comparison = create_comparison(session=session, task=big, author=user,
                                       message_ids=[m.id for m in last_answers])  # fmt: skip
        token = start_session(session=session, user=user, lifetime=timedelta(hours=1))
        session.commit()
        return workspace.slug, big.id, comparison.id, token  # type: ignore[return-value]


async def measure(base: str, path: str, token: str, clients: int, requests: int) -> list[float]:
    latencies: list[float] = []
    per_client = max(requests // clients, 1)

    async def client_loop() -> None:
        async with httpx.AsyncClient(base_url=base, cookies={"switchboard_session": token},
                                     timeout=60) as client:  # fmt: skip
            for _ in range(per_client):
                started = time.perf_counter()
                response = await client.get(path)
                latencies.append(time.perf_counter() - started)
                assert response.status_code in (200, 503), (path, response.status_code)

    await asyncio.gather(*(client_loop() for _ in range(clients)))
    return latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    from app.runtime import embedded_redis
    from app.runtime.preflight import free_loopback_port

    data_dir = Path(tempfile.mkdtemp(prefix="sbu-", dir="/tmp"))
    redis_process = embedded_redis.start(data_dir)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SWITCHBOARD_")}
    env.update(SWITCHBOARD_DATA_DIR=str(data_dir), SWITCHBOARD_LOG_LEVEL="warning")
    os.environ.update(env)
    slug, task_id, comparison_id, token = seed(data_dir)
    port = free_loopback_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.web.app:create_app", "--factory",
         "--port", str(port), "--log-level", "warning"], env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        pages = {
            "/healthz": "/healthz",
            "board": f"/w/{slug}",
            "task (500 messages)": f"/t/{task_id}",
            "compare (4 branches)": f"/c/{comparison_id}",
        }
        results, cpu_ms = {}, {}
        for name, path in pages.items():
            asyncio.run(measure(base, path, token, 2, 10))  # warm-up
            used = process_cpu_seconds(server.pid)
            results[name] = asyncio.run(measure(base, path, token, args.clients, args.requests))
            cpu_ms[name] = (process_cpu_seconds(server.pid) - used) / args.requests * 1000
    finally:
        server.terminate()
        server.wait(20)
        embedded_redis.stop(redis_process)
        shutil.rmtree(data_dir, ignore_errors=True)
    base_p50 = statistics.median(results["/healthz"])
    base_p95 = percentile(results["/healthz"], 0.95)
    print(f"{args.clients} clients, {args.requests} requests per page, one uvicorn worker")
    print(f"  {'page':24} {'p50 ms':>8} {'p95 ms':>8} {'p50 / healthz':>14} {'p95 / healthz':>14}"
          f" {'CPU ms / request':>17}")  # fmt: skip
    rows, figures = [], {"clients": args.clients, "requests": args.requests}
    for name, values in results.items():
        p50, p95 = statistics.median(values), percentile(values, 0.95)
        print(f"  {name:24} {p50 * 1000:8.1f} {p95 * 1000:8.1f} {p50 / base_p50:14.2f}"
              f" {p95 / base_p95:14.2f} {cpu_ms[name]:17.1f}")  # fmt: skip
        figures[name] = {"p50_ms": round(p50 * 1000, 1), "p95_ms": round(p95 * 1000, 1),
                         "cpu_ms": round(cpu_ms[name], 2)}  # fmt: skip
        if name == "/healthz":
            continue
        rows += [
            row(f"{name}: p95 with {args.clients} clients", f"{base_p95 * 1000:.0f} ms (/healthz)",
                f"{p95 * 1000:.0f} ms", p95 / base_p95, f"≤ {TARGET_P95_RATIO:.0f}×",
                p95 / base_p95 <= TARGET_P95_RATIO),
            row(f"{name}: web CPU per request", f"{cpu_ms['/healthz']:.1f} ms (/healthz)",
                f"{cpu_ms[name]:.1f} ms", cpu_ms[name] / cpu_ms["/healthz"],
                f"≤ {TARGET_CPU_MS:.0f} ms", cpu_ms[name] <= TARGET_CPU_MS),
        ]  # fmt: skip
    emit("ui_latency", figures, rows)


if __name__ == "__main__":
    main()
