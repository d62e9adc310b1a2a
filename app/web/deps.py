"""Dependencies every route uses: the database session, the signed-in user, workspace access."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, NamedTuple

import sqlalchemy as sa
from fastapi import Depends, Request
from sqlmodel import Session, col, select

from app.config import Settings, get_settings
from app.db import get_engine
from app.models import ApiToken, Role, User, Workspace
from app.models.common import utcnow
from app.security import hash_token
from app.services import Forbidden, NotFound
from app.services.accounts import user_for_session
from app.services.workspaces import workspace_for

SESSION_COOKIE = "switchboard_session"
LAST_USED_RESOLUTION = timedelta(minutes=1)


class SignInRequired(Exception):
    """No valid session or token: pages redirect to sign-in, the API answers 401."""


def get_session() -> Iterator[Session]:
    """A database session for one request; committed by the handler, closed after."""
    with Session(get_engine(), expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def _user_for_bearer(session: Session, token: str) -> User | None:
    now = utcnow()
    row = session.exec(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)  # type: ignore[arg-type]
        .where(ApiToken.token_hash == hash_token(token))
    ).first()
    if row is None:
        return None
    api_token, user = row
    if api_token.revoked_at or (api_token.expires_at and api_token.expires_at <= now):
        return None
    # "Last used" to the minute: one write a minute per token, not one per request (on SQLite
    # every write, even one that changes no row, takes the database's one write lock).
    if api_token.last_used_at is None or api_token.last_used_at < now - LAST_USED_RESOLUTION:
        session.execute(
            sa.update(ApiToken)
            .where(
                col(ApiToken.id) == api_token.id,
                sa.or_(
                    col(ApiToken.last_used_at).is_(None),
                    col(ApiToken.last_used_at) < now - LAST_USED_RESOLUTION,
                ),
            )
            .values(last_used_at=now)
        )
        session.commit()
    return user if user.is_active else None


def _bearer_token(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials else None


def session_cookie(request: Request) -> str | None:
    """The session cookie, when it is what signs the request in (a bearer token comes first)."""
    return None if _bearer_token(request) is not None else request.cookies.get(SESSION_COOKIE)


def user_from_request(request: Request, session: Session) -> User | None:
    """The user behind the request's bearer token or session cookie, if any."""
    token = _bearer_token(request)
    user: User | None = None
    request.state.signed_in_by = None
    if token is not None:
        user = _user_for_bearer(session, token)
        request.state.signed_in_by = "token"
    elif cookie := request.cookies.get(SESSION_COOKIE):
        user = user_for_session(session=session, token=cookie)
        request.state.signed_in_by = "session"
    return user


def get_optional_user(request: Request, session: SessionDep) -> User | None:
    user = user_from_request(request, session)
    request.state.user = user  # for templates: the navigation shows who is signed in
    return user


def get_current_user(user: Annotated[User | None, Depends(get_optional_user)]) -> User:
    if user is None:
        raise SignInRequired()
    return user


OptionalUser = Annotated[User | None, Depends(get_optional_user)]
CurrentUser = Annotated[User, Depends(get_current_user)]


def get_session_token(request: Request, user: CurrentUser) -> str:
    """The session cookie of a person signed in on the web; an API token is refused (a token
    must not mint tokens or set passwords, or one leaked token would be a permanent login)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if request.state.signed_in_by != "session" or not cookie:
        raise Forbidden(
            "An API token cannot create tokens or change a password; do it signed in on the "
            "web page."
        )
    return cookie


SessionToken = Annotated[str, Depends(get_session_token)]


def get_admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise NotFound("Not found.")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]


class Access(NamedTuple):
    """A workspace and the role the signed-in user holds in it."""

    workspace: Workspace
    role: Role


class WorkspaceAccess:
    """Resolves ``{slug}`` to a workspace the user holds at least ``min_role`` in, with that
    role; 404 otherwise."""

    def __init__(self, min_role: Role) -> None:
        self.min_role = min_role

    def __call__(self, slug: str, session: SessionDep, user: CurrentUser) -> Access:
        workspace, role = workspace_for(
            session=session, slug=slug, user=user, min_role=self.min_role
        )
        return Access(workspace, role)


ViewableWorkspace = Annotated[Access, Depends(WorkspaceAccess(Role.viewer))]
EditableWorkspace = Annotated[Access, Depends(WorkspaceAccess(Role.editor))]
OwnedWorkspace = Annotated[Access, Depends(WorkspaceAccess(Role.owner))]
