"""The FastAPI application: middleware, error handlers, routers and static files."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlmodel import Session
from starlette.staticfiles import StaticFiles

from app.config import get_settings
from app.db import get_engine
from app.errors import install_error_handlers
from app.middleware import SecurityMiddleware
from app.paths import STATIC_DIR
from app.routes import auth, docs, health, pages
from app.routes.api import router as api_router
from app.services.accounts import has_users
from app.setup_token import ensure_setup_token

log = logging.getLogger("switchboard")


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


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    announce_setup_link()
    yield


def create_app() -> FastAPI:
    app = FastAPI(
        title="Switchboard",
        summary="Delegate work to AI agents on small local models.",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.add_middleware(SecurityMiddleware)
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in (health.router, auth.router, docs.router, pages.router, api_router):
        app.include_router(router)
    return app
