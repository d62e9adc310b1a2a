"""``GET /healthz``: each part's state as JSON; 200 when all are up, 503 otherwise."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from app.config import get_settings
from app.db import get_engine
from app.redis_conn import get_redis
from app.services import health
from app.services.endpoints import check_stale_endpoints

HEALTH_CHECK_TIMEOUT_S = 2.0

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
        settings = get_settings()
        with Session(engine, expire_on_commit=False) as session:
            # Cached: a server is asked again only when its last answer is older than the TTL.
            check_stale_endpoints(
                session=session,
                max_age_s=settings.model_health_ttl,
                timeout=HEALTH_CHECK_TIMEOUT_S,
            )
            session.commit()
            parts["models"] = health.check_models(session)
    else:
        parts["models"] = {"ok": False, "error": "Database unreachable."}
    return {"status": health.overall(parts), **parts}


@router.get("/healthz", summary="Health of every part")
async def healthz() -> JSONResponse:
    """Database, Redis, worker heartbeat and model endpoints, each with ``ok`` and details."""
    report = await run_in_threadpool(_check_all)
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)
