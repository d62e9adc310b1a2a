"""Signing in and out: password, one-time link, and the first-run page that creates the admin."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from app.services import ServiceError
from app.services.accounts import (
    authenticate,
    create_user,
    end_session,
    has_users,
    redeem_sign_in_link,
)
from app.services.setup_token import discard_setup_token, setup_token_matches
from app.web import ratelimit
from app.web.deps import SESSION_COOKIE, OptionalUser, SessionDep, SettingsDep
from app.web.sessions import signed_in_redirect
from app.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


def safe_next(target: str | None) -> str:
    """A same-site path to go to after signing in; anything else becomes the dashboard."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@router.get("/signin")
def signin_page(
    request: Request, session: SessionDep, user: OptionalUser, next: str | None = None
) -> Response:
    """The sign-in form (or the first-run page while there is no account)."""
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    if not has_users(session=session):
        return RedirectResponse("/setup", status_code=303)
    return render(request, "signin.html", {"next": safe_next(next)})


@router.post("/signin")
def signin(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    address = request.client.host if request.client else "unknown"
    context = {"next": safe_next(next), "email": email}
    if not ratelimit.take_attempt(email=email, address=address):
        context["error"] = "Too many failed sign-ins; wait a quarter of an hour and try again."
        return render(request, "signin.html", context, status_code=429)
    user = authenticate(session=session, email=email, password=password)
    if user is None:
        context["error"] = "Wrong email or password."
        return render(request, "signin.html", context, status_code=400)
    ratelimit.succeeded(email=email, address=address)
    return signed_in_redirect(session, settings, user, safe_next(next), request)


@router.get("/signin/link/{token}")
def signin_with_link(
    request: Request, token: str, session: SessionDep, settings: SettingsDep
) -> Response:
    """A one-time link (printed by ``switchboard up``) signs its user in once."""
    user = redeem_sign_in_link(session=session, token=token)
    if user is None:
        session.rollback()
        raise ServiceError(
            "This sign-in link was used already or has expired. "
            "Restart `switchboard up` for a fresh one, or sign in with your password."
        )
    return signed_in_redirect(session, settings, user, "/", request)


@router.post("/signout")
def signout(request: Request, session: SessionDep) -> Response:
    if token := request.cookies.get(SESSION_COOKIE):
        end_session(session=session, token=token)
        session.commit()
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/setup")
def setup_page(request: Request, session: SessionDep, token: str = "") -> Response:
    """First run: create the admin account (needs the token printed in the server log)."""
    if has_users(session=session):
        return RedirectResponse("/signin", status_code=303)
    return render(request, "setup.html", {"token": token})


@router.post("/setup")
def setup(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str, Form(max_length=200)],
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    display_name: Annotated[str, Form(max_length=120)] = "",
) -> Response:
    if has_users(session=session):
        return RedirectResponse("/signin", status_code=303)
    context = {"token": token, "email": email, "display_name": display_name}
    if not setup_token_matches(settings, token):
        context["error"] = (
            "This page needs the setup link printed in the server log when it started."
        )
        return render(request, "setup.html", context, status_code=403)
    try:
        user = create_user(
            session=session,
            email=email,
            password=password,
            display_name=display_name,
            is_admin=True,
        )
    except ServiceError as exc:
        session.rollback()
        context["error"] = exc.message
        return render(request, "setup.html", context, status_code=400)
    response = signed_in_redirect(session, settings, user, "/", request)
    discard_setup_token(settings)
    return response
