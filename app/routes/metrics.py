"""``GET /metrics``: Prometheus's text format, for admins or a scraper holding the token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app.security import tokens_equal
from app.services import NotFound
from app.web.deps import OptionalUser, SettingsDep, SignInRequired
from app.web.metrics import exposition

router = APIRouter(tags=["metrics"], include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request, settings: SettingsDep, user: OptionalUser) -> Response:
    """Every metric; other people get 404, as for other admin pages."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    scraper = bool(token and scheme.lower() == "bearer" and tokens_equal(credentials, token))
    if not scraper and user is None:
        raise SignInRequired()  # like every page: sign in first (a scraper sends the token)
    if not scraper and not (user is not None and user.is_admin):
        raise NotFound("Not found.")
    return Response(await run_in_threadpool(exposition), media_type=CONTENT_TYPE_LATEST)
