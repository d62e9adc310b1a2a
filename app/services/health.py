"""Health of each part: database, Redis, workers, model endpoints; cheap enough for a probe."""

from __future__ import annotations

import time
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.models import ModelEndpoint
from app.redis_conn import WORKER_HEARTBEAT_PREFIX


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def check_database(engine: Engine) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc.__cause__ or exc}"[:300]}
    return {"ok": True, "dialect": engine.dialect.name, "latency_ms": _elapsed_ms(started)}


def check_redis(client: redis.Redis) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        client.ping()
    except redis.RedisError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "latency_ms": _elapsed_ms(started)}


def check_workers(client: redis.Redis) -> dict[str, Any]:
    """Workers alive: those whose heartbeat key has not expired."""
    try:
        keys = list(client.scan_iter(match=f"{WORKER_HEARTBEAT_PREFIX}*", count=100))
    except redis.RedisError as exc:
        return {"ok": False, "count": 0, "error": f"Redis unreachable: {exc}"[:300]}
    names = sorted(key.removeprefix(WORKER_HEARTBEAT_PREFIX) for key in keys)
    result: dict[str, Any] = {"ok": bool(names), "count": len(names), "workers": names}
    if not names:
        result["error"] = "No worker heartbeat: start one with `switchboard worker`."
    return result


def check_models(session: Session) -> dict[str, Any]:
    """The registered endpoints and their last known health."""
    endpoints = session.exec(select(ModelEndpoint).order_by(col(ModelEndpoint.id))).all()
    if not endpoints:
        return {
            "ok": False,
            "state": "not_configured",
            "error": "No model endpoint is configured yet.",
            "endpoints": [],
        }
    listed = [
        {
            "id": endpoint.id,
            "name": endpoint.name,
            "enabled": endpoint.enabled,
            "ok": bool(endpoint.health_ok),
            "latency_ms": endpoint.health_latency_ms,
            "error": endpoint.health_error,
        }
        for endpoint in endpoints
    ]
    return {
        "ok": any(item["ok"] for item in listed if item["enabled"]),
        "state": "configured",
        "endpoints": listed,
    }


def overall(parts: dict[str, dict[str, Any]]) -> str:
    """``ok`` when everything needed to run agents answers; ``degraded`` otherwise."""
    return "ok" if all(part["ok"] for part in parts.values()) else "degraded"
