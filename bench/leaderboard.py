"""The leaderboard page with 10,000 votes between 20 models, against /healthz.

    python -m bench.leaderboard [--votes 10000] [--models 20] [--requests 100]

Seeds a throwaway install (SQLite and the embedded Redis in a temporary folder) with a
workspace where 20 models of different sizes wrote answers and people cast ``--votes`` votes
(drawn from a Bradley–Terry model with known strengths), starts the web app under uvicorn and
measures: the first leaderboard request (the fit and its bootstrap), the page once cached, and
/healthz in the same run. Prints the times, their ratios to /healthz, and how well the fitted
order matches the true one; the last line is JSON. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
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
from bench.ui_latency import measure, percentile


def seed(data_dir: Path, models: int, votes: int) -> tuple[str, str, list[float]]:
    """The workspace slug, a session token, and the true strengths of the models."""
    from sqlmodel import Session

    from app.db import create_db_engine
    from app.models import (
        Agent,
        Comparison,
        ComparisonBranch,
        Message,
        Model,
        ModelEndpoint,
        Run,
        Task,
        Vote,
    )
    from app.runtime.migrate import upgrade_to_head
    from app.services.accounts import create_user, start_session
    from app.services.workspaces import create_workspace

    url = f"sqlite:///{data_dir / 'switchboard.db'}"
    upgrade_to_head(url)
    engine = create_db_engine(url)
    rng = random.Random(3)
    strengths = [rng.gauss(0, 1) for _ in range(models)]
    with Session(engine) as session:
        owner = create_user(session=session, email="bench@example.com", password="benchmark-pw")
        workspace = create_workspace(session=session, name="Arena", owner=owner)
        server = ModelEndpoint(name="local", base_url="http://127.0.0.1:9/v1")
        session.add(server)
        session.flush()
        sizes = [int(10 ** rng.uniform(8.3, 10.5)) for _ in range(models)]
        rows = [
            Model(endpoint_id=server.id, name=f"model-{n}", parameter_count=size)
            for n, size in enumerate(sizes)
        ]
        session.add_all(rows)
        session.flush()
        agents = [Agent(workspace_id=workspace.id, name=f"Agent {n}", model_id=m.id)
                  for n, m in enumerate(rows)]  # fmt: skip
        session.add_all(agents)
        session.flush()
        voters = [owner] + [
            create_user(session=session, email=f"v{n}@example.com", password="benchmark-pw")
            for n in range(9)
        ]
        task = Task(workspace_id=workspace.id, title="Arena")
        session.add(task)
        session.flush()
        question = Message(task_id=task.id, role="user", content="Which is better?")
        session.add(question)
        session.flush()
        comparisons = votes // len(voters)
        for _ in range(comparisons):
            i, j = rng.sample(range(models), 2)
            comparison = Comparison(task_id=task.id)
            session.add(comparison)
            session.flush()
            for position, index in enumerate((i, j)):
                answer = Message(task_id=task.id, parent_id=question.id, role="assistant",
                                 agent_id=agents[index].id, content="…")  # fmt: skip
                session.add(answer)
                session.flush()
                session.add(Run(task_id=task.id, agent_id=agents[index].id,
                                model_id=rows[index].id, input_message_id=question.id,
                                output_message_id=answer.id, status="succeeded",
                                tokens_per_second=rng.uniform(10, 80)))  # fmt: skip
                session.add(ComparisonBranch(comparison_id=comparison.id,
                                             message_id=answer.id, position=position))  # fmt: skip
            for voter in voters:
                p_first = 1 / (1 + math.exp(strengths[j] - strengths[i]))
                draw = rng.random()
                outcome = "tie" if draw < 0.1 else ("a" if draw < 0.1 + 0.9 * p_first else "b")
                session.add(Vote(comparison_id=comparison.id, voter_user_id=voter.id,
                                 outcome=outcome))  # fmt: skip
        token = start_session(session=session, user=owner, lifetime=timedelta(hours=1))
        session.commit()
        return workspace.slug, token, strengths


def spearman(order: list[int], strengths: list[float]) -> float:
    """Rank correlation between the fitted order and the true strengths."""
    truth = sorted(range(len(strengths)), key=lambda n: -strengths[n])
    rank = {model: position for position, model in enumerate(truth)}
    n = len(order)
    d2 = sum((position - rank[model]) ** 2 for position, model in enumerate(order))
    return 1 - 6 * d2 / (n * (n * n - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()

    from app.runtime import embedded_redis
    from app.runtime.preflight import free_loopback_port

    data_dir = Path(tempfile.mkdtemp(prefix="sbl-", dir="/tmp"))
    redis_process = embedded_redis.start(data_dir)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SWITCHBOARD_")}
    env.update(SWITCHBOARD_DATA_DIR=str(data_dir), SWITCHBOARD_LOG_LEVEL="warning")
    os.environ.update(env)
    slug, token, strengths = seed(data_dir, args.models, args.votes)
    port = free_loopback_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.web.app:create_app", "--factory",
         "--port", str(port), "--log-level", "warning"], env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    cookies = {"switchboard_session": token}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        started = time.perf_counter()
        first = httpx.get(f"{base}/api/v1/workspaces/{slug}/leaderboard", cookies=cookies,
                          timeout=120)  # fmt: skip
        cold = time.perf_counter() - started
        rows = first.json()["rows"]
        order = [int(row["name"].removeprefix("model-")) for row in rows]
        health = asyncio.run(measure(base, "/healthz", token, 1, args.requests))
        page = asyncio.run(measure(base, f"/w/{slug}/leaderboard", token, 1, args.requests))
    finally:
        server.terminate()
        server.wait(20)
        embedded_redis.stop(redis_process)
        shutil.rmtree(data_dir, ignore_errors=True)
    health_p50, page_p50 = statistics.median(health), statistics.median(page)
    result = {
        "metric": "leaderboard_page",
        "votes": first.json()["human_votes"],
        "models": args.models,
        "first_request_ms": round(cold * 1000, 1),
        "page_p50_ms": round(page_p50 * 1000, 1),
        "page_p95_ms": round(percentile(page, 0.95) * 1000, 1),
        "healthz_p50_ms": round(health_p50 * 1000, 1),
        "page_over_healthz": round(page_p50 / health_p50, 2),
        "first_over_healthz": round(cold / health_p50, 2),
        "rank_correlation_with_truth": round(spearman(order, strengths), 3),
    }
    print(f"{result['votes']} votes between {args.models} models, one client, one uvicorn worker")
    print(f"  first request (fit + bootstrap): {result['first_request_ms']:8.1f} ms"
          f"  ({result['first_over_healthz']}× /healthz)")  # fmt: skip
    print(f"  page, cached, p50 / p95:         {result['page_p50_ms']:8.1f} / "
          f"{result['page_p95_ms']} ms  ({result['page_over_healthz']}× /healthz)")  # fmt: skip
    print(f"  /healthz p50:                    {result['healthz_p50_ms']:8.1f} ms")
    print(f"  fitted order vs true strengths:  Spearman {result['rank_correlation_with_truth']}")
    emit("leaderboard", result, [
        row(f"leaderboard page, cached, p50 ({result['votes']:,} votes)",
            f"{result['healthz_p50_ms']:.0f} ms (/healthz)", f"{result['page_p50_ms']:.0f} ms",
            result["page_over_healthz"]),
        row("leaderboard: fitted order vs true strengths (Spearman)", "1 (the truth)",
            f"{result['rank_correlation_with_truth']}"),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
