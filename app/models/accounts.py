"""People and their credentials: users, sign-in sessions, one-time sign-in links, API tokens."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.common import UTCDateTime, utcnow


class User(SQLModel, table=True):
    """An account. ``password_hash`` is empty for the local admin until a password is set."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_type=sa.String(254), unique=True, index=True)
    display_name: str = Field(sa_type=sa.String(120))
    password_hash: str | None = Field(default=None, sa_type=sa.String(255))
    is_admin: bool = Field(default=False)
    is_active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class UserPublic(SQLModel):
    """A user as the API shows them (never the password hash)."""

    id: int
    email: str
    display_name: str
    is_admin: bool


class LoginSession(SQLModel, table=True):
    """A server-side sign-in: the cookie carries a random token, only its hash is stored."""

    __tablename__ = "login_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_type=sa.String(64), unique=True)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class SignInLink(SQLModel, table=True):
    """A one-time link that signs a user in (printed by ``switchboard up``)."""

    __tablename__ = "sign_in_link"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_type=sa.String(64), unique=True)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ApiToken(SQLModel, table=True):
    """A personal token for the JSON API (``Authorization: Bearer``); only its hash is stored."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE", index=True)
    name: str = Field(sa_type=sa.String(120))
    token_hash: str = Field(sa_type=sa.String(64), unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
