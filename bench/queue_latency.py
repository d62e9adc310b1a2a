"""Queue latency: from a run entering the queue to a worker starting it, against a bare Celery
no-op task on the same broker in the same run.

    python -m bench.queue_latency [--runs 1000]

Starts a throwaway stack (``switchboard up`` without the embedded model) and a scripted model
that answers three words at once, and beside it a bare Celery worker (``bench.noop_celery``)
on the stack's Redis with the same pool options as Switchboard's worker. Then, interleaved and
one at a time (nothing waits behind anything):

* Switchboard: ``POST`` a task for one agent and follow its run until ``done``; the latency is
  the run's ``queued_at`` (the row is made in the request) → ``started_at`` (a worker claimed
  it, took a slot of its model server and began), both from the server's clock;
* baseline: ``send_task`` of the no-op task → the moment its body started.

Prints p50 and p95 of each and their ratio (target: Switchboard's p95 ≤ 20 ms), and the JSON
line ``make bench`` reads. Nothing is asserted: machines here are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import redis
import sqlalchemy as sa
from celery import Celery

from app.config import get_settings
from app.redis_conn import celery_broker_url
from app.runtime.cli import worker_argv
from app.runtime.console import QUIET_WARNINGS
from bench import noop_celery
from bench.report import emit, row
from bench.stack import REPO, ScriptedModel, Stack, follow_run, load_note, stack, terminal

TARGET_P95_MS = 20.0


def pool_options() -> list[str]:
    """Switchboard's worker options that shape its pool (concurrency, pool kind, scheduling),
    without its app, name and log level."""
    argv = worker_argv(get_settings())
    options = argv[argv.index("worker") + 1 :]
    kept: list[str] = []
    skip_next = False
    for item in options:
        if skip_next:
            skip_next = False
        elif item in ("--loglevel", "--hostname", "--queues", "-Q", "-n", "-l"):
            skip_next = True
        else:
            kept.append(item)
    return kept


def start_noop_worker(redis_url: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "celery", "--app", "bench.noop_celery", "--quiet", "worker",
            "--loglevel", "WARNING", *pool_options(), "--queues", noop_celery.QUEUE,
            "--hostname", "bench-noop@%h", "--without-mingle", "--without-gossip"]  # fmt: skip
    env = {
        "BENCH_BROKER_URL": celery_broker_url(redis_url),
        "BENCH_REDIS_URL": redis_url,
        "PYTHONWARNINGS": QUIET_WARNINGS,
    }  # as `switchboard up` starts its worker
    return subprocess.Popen(argv, cwd=REPO, env={**os.environ, **env})


class Baseline:
    """Sends the no-op task and waits for its body to start."""

    def __init__(self, redis_url: str) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.client.delete(noop_celery.STARTED_KEY)
        self.app = Celery("bench-noop-producer", set_as_current=False)
        self.app.conf.update(
            broker_url=celery_broker_url(redis_url), task_serializer="json", task_ignore_result=True
        )
        self.sent = 0

    def once(self, timeout: float = 120) -> float:
        """Seconds from sending to the task's start."""
        self.sent += 1
        sent_at = time.time()
        self.app.send_task(noop_celery.NOOP, args=[self.sent], queue=noop_celery.QUEUE)
        got = self.client.blpop([noop_celery.STARTED_KEY], timeout=timeout)
        if got is None:
            raise RuntimeError(f"the no-op task did not start within {timeout:.0f}s")
        number, started = got[1].decode().split()
        assert int(number) == self.sent, (number, self.sent)
        return float(started) - sent_at


def through_switchboard(sb: Stack, slug: str, agent: int, number: int) -> tuple[int, float]:
    """Run one task to its end: (its run's id, when the POST was sent)."""
    sent_at = time.time()
    created = sb.post(f"/workspaces/{slug}/tasks",
                      {"title": f"ping {number}", "brief": "Say three words.",
                       "agent_ids": [agent]})  # fmt: skip
    run_id = int(created["started"]["runs"][0]["id"])
    done = terminal(follow_run(sb.client, run_id))
    if done.type != "done":
        raise RuntimeError(f"run {run_id} did not succeed: {done}")
    sb.wait_finished(run_id)
    return run_id, sent_at


def run_times(sb: Stack, run_ids: list[int]) -> dict[int, tuple[float, float]]:
    """Each run's (queued_at, started_at) from the stack's database, as epoch seconds."""
    from app.db import create_db_engine
    from app.models import Run

    engine = create_db_engine(f"sqlite:///{sb.data_dir / 'switchboard.db'}")
    query = sa.select(Run.id, Run.queued_at, Run.started_at).where(  # type: ignore[call-overload]
        Run.id.in_(run_ids)  # type: ignore[union-attr]
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    engine.dispose()
    return {row[0]: (row[1].timestamp(), row[2].timestamp()) for row in rows}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()

    note = load_note()
    model = ScriptedModel(3)
    with model.running(), stack(embedded_model=False) as sb:
        redis_url = f"unix://{sb.data_dir / 'redis.sock'}"
        noop_worker = start_noop_worker(redis_url)
        try:
            endpoint = sb.post("/endpoints", {"name": "Scripted", "base_url": model.base_url,
                                              "max_concurrency": 4})  # fmt: skip
            slug = sb.workspace("bench queue latency")
            agent = sb.agent(slug, name="Pinger", model_id=endpoint["models"][0]["id"],
                             role_prompt="You answer.", max_tokens=16)  # fmt: skip
            baseline = Baseline(redis_url)
            for number in range(5):  # warm-up: imports, connections, the endpoint's queue
                baseline.once()
                through_switchboard(sb, slug, agent, number)
            bare: list[float] = []
            sent: dict[int, float] = {}
            for number in range(args.runs):
                bare.append(baseline.once())
                run_id, sent_at = through_switchboard(sb, slug, agent, number)
                sent[run_id] = sent_at
            times = run_times(sb, list(sent))
        finally:
            noop_worker.terminate()
            noop_worker.wait(60)

    queued = [started - queued for queued, started in times.values()]
    posted = [times[run_id][1] - sent_at for run_id, sent_at in sent.items()]

    def ms(values: list[float], share: float) -> float:
        return (statistics.median(values) if share == 0.5 else percentile(values, share)) * 1000

    base_p50, base_p95 = ms(bare, 0.5), ms(bare, 0.95)
    sb_p50, sb_p95 = ms(queued, 0.5), ms(queued, 0.95)
    post_p50, post_p95 = ms(posted, 0.5), ms(posted, 0.95)
    print(f"{args.runs} runs one at a time, interleaved with the baseline; pool options "
          f"{' '.join(pool_options())}; at start: {note}")  # fmt: skip
    print(f"  {'':44}{'p50 ms':>8}{'p95 ms':>8}")
    print(f"  {'bare Celery: send_task → task body starts':44}{base_p50:8.1f}{base_p95:8.1f}")
    print(f"  {'Switchboard: queued_at → started_at':44}{sb_p50:8.1f}{sb_p95:8.1f}")
    print(f"  {'Switchboard: POST sent → started_at':44}{post_p50:8.1f}{post_p95:8.1f}")
    print(f"  Switchboard / bare Celery: p50 {sb_p50 / base_p50:.2f}x, p95 {sb_p95 / base_p95:.2f}x"
          f"   (target: Switchboard p95 ≤ {TARGET_P95_MS:.0f} ms)")  # fmt: skip
    figures = {
        "runs": args.runs,
        "baseline_p50_ms": round(base_p50, 2), "baseline_p95_ms": round(base_p95, 2),
        "queued_to_started_p50_ms": round(sb_p50, 2), "queued_to_started_p95_ms": round(sb_p95, 2),
        "post_to_started_p50_ms": round(post_p50, 2), "post_to_started_p95_ms": round(post_p95, 2),
    }  # fmt: skip
    emit("queue_latency", figures, [
        row("queue → worker start, p50", f"{base_p50:.1f} ms (bare Celery no-op)",
            f"{sb_p50:.1f} ms", sb_p50 / base_p50),
        row(f"queue → worker start, p95 ({args.runs} runs)",
            f"{base_p95:.1f} ms (bare Celery no-op)",
            f"{sb_p95:.1f} ms", sb_p95 / base_p95, f"≤ {TARGET_P95_MS:.0f} ms",
            sb_p95 <= TARGET_P95_MS),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
