"""Accounts: creating users, signing in with a password or a one-time link, sessions."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.models import ApiToken, LoginSession, SignInLink, User
from app.models.common import utcnow
from app.security import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    hash_token,
    new_token,
    verify_password,
)
from app.services import Conflict, Forbidden, ServiceError

LOCAL_ADMIN_EMAIL = "admin@localhost"
SIGN_IN_LINK_LIFETIME = timedelta(hours=24)
# Setting a first password (there is no current one to ask for) needs a sign-in this recent.
FRESH_SIGN_IN = timedelta(minutes=10)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def validate_email(email: str) -> str:
    """The normalised email, or a ServiceError saying what is wrong with it."""
    email = normalise_email(email)
    local, _, domain = email.partition("@")
    if not local or not domain or " " in email or len(email) > 254:
        raise ServiceError("Enter an email address such as ada@example.com.")
    return email


def validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ServiceError(f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.")


def saved_id(user: User) -> int:
    """The id of a user already flushed to the database."""
    if user.id is None:
        raise ValueError("user has not been saved yet")
    return user.id


def has_users(*, session: Session) -> bool:
    return session.exec(select(User.id).limit(1)).first() is not None


def create_user(
    *,
    session: Session,
    email: str,
    password: str | None,
    display_name: str = "",
    is_admin: bool = False,
) -> User:
    """A new account; ``password=None`` makes one that signs in only by a one-time link."""
    email = validate_email(email)
    if password is not None:
        validate_password(password)
    if session.exec(select(User).where(User.email == email)).first():
        raise Conflict(f"An account for {email} already exists.")
    user = User(
        email=email,
        display_name=display_name.strip() or email.split("@")[0],
        password_hash=hash_password(password) if password is not None else None,
        is_admin=is_admin,
    )
    session.add(user)
    session.flush()
    return user


def authenticate(*, session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, or None."""
    user = session.exec(select(User).where(User.email == normalise_email(email))).first()
    ok = verify_password(password, user.password_hash if user else None)
    return user if ok and user is not None and user.is_active else None


def ensure_local_admin(*, session: Session) -> User:
    """The admin ``switchboard up`` signs in: the first admin, created when there is none."""
    admin = session.exec(select(User).where(col(User.is_admin)).order_by(col(User.id))).first()
    if admin is None:
        admin = create_user(
            session=session,
            email=LOCAL_ADMIN_EMAIL,
            password=None,
            display_name="Admin",
            is_admin=True,
        )
    return admin


def create_sign_in_link(*, session: Session, user: User) -> str:
    """A one-time sign-in token for ``user``; only its hash is kept."""
    token = new_token()
    session.add(
        SignInLink(
            token_hash=hash_token(token),
            user_id=saved_id(user),
            expires_at=utcnow() + SIGN_IN_LINK_LIFETIME,
        )
    )
    session.flush()
    return token


def redeem_sign_in_link(*, session: Session, token: str) -> User | None:
    """The user a valid, unused, unexpired link belongs to; the link is spent."""
    now = utcnow()
    # One conditional UPDATE, so two clicks racing each other cannot both succeed.
    result = session.execute(
        sa.update(SignInLink)
        .where(
            SignInLink.token_hash == hash_token(token),  # type: ignore[arg-type]
            SignInLink.used_at.is_(None),  # type: ignore[union-attr]
            SignInLink.expires_at > now,  # type: ignore[arg-type]
        )
        .values(used_at=now)
        .returning(col(SignInLink.user_id))
    )
    user_id = result.scalar_one_or_none()
    if user_id is None:
        return None
    user = session.get(User, user_id)
    return user if user is not None and user.is_active else None


def start_session(*, session: Session, user: User, lifetime: timedelta) -> str:
    """A new server-side session for ``user``; returns the token for the cookie."""
    token = new_token()
    session.add(
        LoginSession(
            token_hash=hash_token(token), user_id=saved_id(user), expires_at=utcnow() + lifetime
        )
    )
    session.flush()
    return token


# Built once: every signed-in request runs it.
_SESSION_USER = (
    select(LoginSession, User)
    .join(User, User.id == LoginSession.user_id)  # type: ignore[arg-type]
    .where(LoginSession.token_hash == sa.bindparam("token_hash"))
)


def user_for_session(*, session: Session, token: str) -> User | None:
    """The active user behind a session cookie, or None when it is unknown or expired."""
    row = session.exec(_SESSION_USER, params={"token_hash": hash_token(token)}).first()
    if row is None:
        return None
    login, user = row
    return user if session_is_valid(login.expires_at, user) else None


def session_is_valid(expires_at: datetime, user: User) -> bool:
    """Whether a sign-in that lasts until ``expires_at`` still signs ``user`` in."""
    return expires_at > utcnow() and user.is_active


def end_session(*, session: Session, token: str) -> None:
    session.execute(
        sa.delete(LoginSession).where(LoginSession.token_hash == hash_token(token))  # type: ignore[arg-type]
    )


def change_password(
    *, session: Session, user: User, current: str, new: str, session_token: str
) -> int:
    """Set a new password from the signed-in session ``session_token``: the current password is
    asked for, or (for a first password) a fresh sign-in. Every other session of the user ends
    and all their API tokens are revoked; returns how many tokens were."""
    login = session.exec(
        select(LoginSession).where(
            LoginSession.token_hash == hash_token(session_token),
            LoginSession.user_id == user.id,
        )
    ).first()
    if login is None:
        raise Forbidden("Change your password from a signed-in page, not with an API token.")
    if user.password_hash:
        if not verify_password(current, user.password_hash):
            raise ServiceError("Your current password is not right.")
    elif login.created_at < utcnow() - FRESH_SIGN_IN:
        raise Forbidden(
            "To set your first password, sign in again (with a fresh one-time link from "
            "`switchboard up`) and set it within ten minutes."
        )
    validate_password(new)
    user.password_hash = hash_password(new)
    session.add(user)
    session.execute(
        sa.delete(LoginSession).where(
            col(LoginSession.user_id) == user.id, col(LoginSession.id) != login.id
        )
    )
    revoked = session.execute(  # type: ignore[attr-defined]
        sa.update(ApiToken)
        .where(col(ApiToken.user_id) == user.id, col(ApiToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    ).rowcount
    session.flush()
    return int(revoked)
