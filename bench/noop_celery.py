"""A bare Celery app with one no-op task: the baseline of ``bench.queue_latency``.

Configured like Switchboard's worker where it matters for the hop from the queue to a pool
(Redis broker, late acks, no prefetch, json) and nothing else: no heartbeat, no database, no
sweeper. The task records when its body started, for the benchmark to read from Redis.

    BENCH_BROKER_URL=redis+socket://… celery --app bench.noop_celery worker --queues bench-noop
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

QUEUE = "bench-noop"
NOOP = "bench.noop"
STARTED_KEY = "bench:noop:started"

app = Celery("bench-noop", set_as_current=False)
app.conf.update(
    broker_url=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"),
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_disable_prefetch=True,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    timezone="UTC",
)
_results: redis.Redis | None = None


@app.task(name=NOOP)
def noop(number: int) -> None:
    """Nothing but the time its body started, pushed as ``number time``."""
    started = time.time()
    global _results
    if _results is None:
        _results = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    _results.rpush(STARTED_KEY, f"{number} {started}")
