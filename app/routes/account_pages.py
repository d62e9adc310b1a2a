"""Your account: change the password, create and revoke personal API tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from app.models import User
from app.services import ServiceError
from app.services.accounts import change_password
from app.services.tokens import create_token, revoke_token, tokens_of
from app.web.deps import CurrentUser, SessionDep, SessionToken
from app.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


def _page(request: Request, session: Session, user: User, status_code: int = 200,
          **extra: Any) -> Response:  # fmt: skip
    context = {"tokens": tokens_of(session=session, user=user), **extra}
    return render(request, "account.html", context, status_code=status_code)


@router.get("/account")
def account_page(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    return _page(request, session, user)


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
    notice = "Password changed; you were signed out everywhere else."
    if revoked:
        notice += f" {revoked} API token{'s were' if revoked != 1 else ' was'} revoked."
    return _page(request, session, user, notice=notice)


@router.post("/account/tokens")
def create_token_page(
    request: Request, session: SessionDep, user: CurrentUser, _signed_in: SessionToken,
    name: Annotated[str, Form(max_length=120)],
) -> Response:  # fmt: skip
    try:
        _, token = create_token(session=session, user=user, name=name)
    except ServiceError as exc:
        session.rollback()
        return _page(request, session, user, exc.status_code, error=exc.message)
    session.commit()
    return _page(request, session, user, new_token=token)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token_page(token_id: int, session: SessionDep, user: CurrentUser) -> Response:
    revoke_token(session=session, user=user, token_id=token_id)
    session.commit()
    return RedirectResponse("/account", status_code=303)
