"""``/healthz`` against the real database and Redis, with and without a real Celery worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from app.models import ModelEndpoint
from app.paths import PROJECT_ROOT
from app.redis_conn import WORKER_HEARTBEAT_PREFIX, get_redis


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def test_without_a_worker_health_is_degraded_and_says_why(client, no_worker):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"]["ok"] and body["redis"]["ok"]
    assert not body["worker"]["ok"] and "switchboard worker" in body["worker"]["error"]
    assert body["models"]["state"] == "not_configured"


def test_model_endpoints_are_listed_without_their_keys(client, session):
    session.add(
        ModelEndpoint(
            name="local", base_url="http://127.0.0.1:9/v1", api_key="sk-hidden", health_ok=False
        )
    )
    session.commit()
    response = client.get("/healthz")
    assert "sk-hidden" not in response.text
    models = response.json()["models"]
    assert models["state"] == "configured" and models["endpoints"][0]["name"] == "local"
    assert not models["ok"]


def test_a_real_worker_reports_its_heartbeat(client, no_worker):
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "--app", "workers.celery_app", "worker",
            "--concurrency", "1", "--loglevel", "WARNING", "--hostname", "healthtest@%h",
        ],
        cwd=PROJECT_ROOT,
        env=os.environ.copy(),
    )  # fmt: skip
    try:
        wait_for(lambda: client.get("/healthz").json()["worker"]["ok"])
        worker_part = client.get("/healthz").json()["worker"]
        assert worker_part["count"] == 1 and worker_part["workers"][0].startswith("healthtest@")
    finally:
        worker.terminate()
        # A warm shutdown on a loaded CI machine has been seen to take over 30 s.
        worker.wait(120)
    # A clean stop withdraws the heartbeat at once instead of waiting for it to expire.
    assert not list(get_redis().scan_iter(match=f"{WORKER_HEARTBEAT_PREFIX}*"))
