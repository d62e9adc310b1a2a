"""Signing a person in: a server-side session and its cookie."""

from __future__ import annotations

from datetime import timedelta

from fastapi import Request
from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from app.config import Settings
from app.models import User
from app.services.accounts import start_session
from app.web.deps import SESSION_COOKIE


def signed_in_redirect(
    session: Session, settings: Settings, user: User, target: str, request: Request
) -> Response:
    """Start a session for ``user`` and send them to ``target`` with the cookie set."""
    token = start_session(
        session=session, user=user, lifetime=timedelta(days=settings.session_days)
    )
    session.commit()
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_days * 86400,
        httponly=True,
        samesite="lax",
        # Secure whenever the page came over https (directly or through a proxy uvicorn trusts).
        secure=settings.secure_cookies or request.url.scheme == "https",
    )
    return response
