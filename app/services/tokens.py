"""Personal API tokens: created once (the token is shown then and never again), listed with
when they were last used, revoked."""

from __future__ import annotations

from sqlmodel import Session, col, select

from app.models import ApiToken, User
from app.models.common import utcnow
from app.security import hash_token, new_token
from app.services import NotFound, ServiceError

MAX_TOKENS = 20


def create_token(*, session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    name = name.strip()
    if not name:
        raise ServiceError("Name the token after what will use it, e.g. 'nightly script'.")
    active = session.exec(
        select(ApiToken.id).where(ApiToken.user_id == user.id, col(ApiToken.revoked_at).is_(None))
    ).all()
    if len(active) >= MAX_TOKENS:
        raise ServiceError(f"You have {MAX_TOKENS} tokens already; revoke one first.")
    token = new_token()
    row = ApiToken(user_id=user.id, name=name[:120], token_hash=hash_token(token))  # type: ignore[arg-type]
    session.add(row)
    session.flush()
    return row, token


def tokens_of(*, session: Session, user: User) -> list[ApiToken]:
    return list(
        session.exec(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(col(ApiToken.id).desc())
        ).all()
    )


def revoke_token(*, session: Session, user: User, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFound("No such token.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        session.flush()
    return row
