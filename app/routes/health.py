"""``GET /healthz``: each part's state as JSON; 200 when all are up, 503 otherwise."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from app.db import get_engine
from app.redis_conn import get_redis
from app.services import health

router = APIRouter(tags=["health"])


def _check_all() -> dict[str, Any]:
    engine = get_engine()
    client = get_redis()
    parts: dict[str, dict[str, Any]] = {
        "database": health.check_database(engine),
        "redis": health.check_redis(client),
        "worker": health.check_workers(client),
    }
    if parts["database"]["ok"]:
        with Session(engine) as session:
            parts["models"] = health.check_models(session)
    else:
        parts["models"] = {"ok": False, "error": "Database unreachable."}
    return {"status": health.overall(parts), **parts}


@router.get("/healthz", summary="Health of every part")
async def healthz() -> JSONResponse:
    """Database, Redis, worker heartbeat and model endpoints, each with ``ok`` and details."""
    report = await run_in_threadpool(_check_all)
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)
