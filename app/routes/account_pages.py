"""Your account: change the password, create and revoke personal API tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from app.models import ApiToken, User
from app.services import ServiceError
from app.services.accounts import change_password
from app.services.tokens import create_token, revoke_token, tokens_of
from app.web.deps import CurrentUser, SessionDep, SessionToken
from app.web.new_links import recall_secret, remember_secret
from app.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


def _page(request: Request, session: Session, user: User, status_code: int = 200,
          **extra: Any) -> Response:  # fmt: skip
    context = {"tokens": tokens_of(session=session, user=user), **extra}
    return render(request, "account.html", context, status_code=status_code)


NEW_TOKEN_COOKIE = "sb_new_api_token"


@router.get("/account")
def account_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    changed: bool = False,
    revoked: Annotated[int, Query(ge=0, le=10_000)] = 0,
    new: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """The page; after a change (post/redirect/get) it says what happened, and shows a token
    just made to the browser that made it, for a few minutes, reloads included."""
    extra: dict[str, Any] = {}
    if changed:
        notice = "Password changed; you were signed out everywhere else."
        if revoked:
            notice += f" {revoked} API token{'s were' if revoked != 1 else ' was'} revoked."
        extra["notice"] = notice
    if new is not None:
        token = session.get(ApiToken, new)
        if token is not None and token.user_id == user.id:
            extra["new_token"] = recall_secret(
                request, NEW_TOKEN_COOKIE, token.token_hash, token.revoked_at is not None
            )
            if extra["new_token"] is None:
                extra["notice"] = "That token is no longer shown: revoke it and make another."
    return _page(request, session, user, **extra)


@router.post("/account/password")
def change_password_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    session_token: SessionToken,
    new_password: Annotated[str, Form(max_length=1024)],
    current_password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    try:
        revoked = change_password(session=session, user=user, current=current_password,
                                  new=new_password, session_token=session_token)  # fmt: skip
    except ServiceError as exc:
        session.rollback()
        return _page(request, session, user, exc.status_code, error=exc.message)
    session.commit()
    return RedirectResponse(f"/account?changed=1&revoked={revoked}", status_code=303)


@router.post("/account/tokens")
def create_token_page(
    request: Request, session: SessionDep, user: CurrentUser, _signed_in: SessionToken,
    name: Annotated[str, Form(max_length=120)],
) -> Response:  # fmt: skip
    try:
        created, token = create_token(session=session, user=user, name=name)
    except ServiceError as exc:
        session.rollback()
        return _page(request, session, user, exc.status_code, error=exc.message)
    session.commit()
    response = RedirectResponse(f"/account?new={created.id}", status_code=303)
    remember_secret(response, request, NEW_TOKEN_COOKIE, token, "/account")
    return response


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token_page(token_id: int, session: SessionDep, user: CurrentUser) -> Response:
    revoke_token(session=session, user=user, token_id=token_id)
    session.commit()
    return RedirectResponse("/account", status_code=303)
