"""The FastAPI application: middleware, error handlers, routers and static files."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from fastapi import FastAPI
from sqlmodel import Session
from starlette.staticfiles import StaticFiles

from app.config import get_settings
from app.db import get_engine, session_scope
from app.paths import STATIC_DIR
from app.routes import (
    account_pages,
    admin,
    agent_pages,
    auth,
    compare_pages,
    docs,
    health,
    leaderboard_pages,
    metrics,
    pages,
    pipeline_pages,
    suite_pages,
    tag_pages,
    task_pages,
    team_pages,
)
from app.routes.api import live_router as api_live_router
from app.routes.api import router as api_router
from app.services import ServiceError
from app.services.accounts import has_users
from app.services.endpoints import register_endpoint
from app.services.setup_token import ensure_setup_token
from app.web.errors import install_error_handlers
from app.web.metrics import MetricsMiddleware
from app.web.middleware import SecurityMiddleware

log = logging.getLogger("switchboard")

DEFAULT_ENDPOINT_NAME = "Default model server"


def announce_setup_link() -> None:
    """While no account exists, log the one link that may create the admin."""
    settings = get_settings()
    with Session(get_engine()) as session:
        if has_users(session=session):
            return
    token = ensure_setup_token(settings)
    log.warning(
        "No account yet. Create the admin at http://%s:%s/setup?token=%s",
        settings.host,
        settings.port,
        token,
    )


def register_default_model() -> None:
    """Register SWITCHBOARD_DEFAULT_MODEL_URL (the compose stack's llm) as an endpoint."""
    settings = get_settings()
    if not settings.default_model_url:
        return
    try:
        with session_scope() as session:
            register_endpoint(
                session=session,
                name=DEFAULT_ENDPOINT_NAME,
                base_url=settings.default_model_url,
                api_key=None,
                max_concurrency=4,
                is_embedded=False,
            )
    except sa.exc.IntegrityError:
        pass  # another web worker registered it at the same moment
    except ServiceError as exc:
        log.error("SWITCHBOARD_DEFAULT_MODEL_URL is not usable: %s", exc.message)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    announce_setup_link()
    register_default_model()
    yield


def create_app() -> FastAPI:
    app = FastAPI(
        title="Switchboard",
        summary="Delegate work to AI agents on small local models.",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # Switchboard's metrics are Prometheus's (app/web/metrics.py). FastAPI's own
        # OpenTelemetry looks up three global providers on every request to see whether it is
        # wanted (about 30 µs a request on a busy machine; a hundred viewers connect at once).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(SecurityMiddleware)
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in (
        api_live_router,  # first: see app/routes/api/__init__.py
        health.router,
        metrics.router,
        auth.router,
        docs.router,
        pages.router,
        admin.router,
        task_pages.router,
        tag_pages.router,
        agent_pages.router,
        compare_pages.router,
        leaderboard_pages.router,
        pipeline_pages.router,
        suite_pages.router,
        team_pages.router,
        account_pages.router,
        api_router,
    ):
        app.include_router(router)
    return app
