"""Your API tokens and your password."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import Field
from sqlmodel import SQLModel
from starlette.responses import Response

from app.services.accounts import change_password
from app.services.tokens import create_token, revoke_token, tokens_of
from app.web.deps import CurrentUser, SessionDep, SessionToken

router = APIRouter(prefix="/me", tags=["users"])


class TokenCreate(SQLModel):
    name: str = Field(min_length=1, max_length=120)


class TokenPublic(SQLModel):
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="Send as 'Authorization: Bearer …'; shown this once.")


class PasswordChange(SQLModel):
    current_password: str = Field(default="", max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


@router.get("/tokens", response_model=list[TokenPublic])
def list_tokens(session: SessionDep, user: CurrentUser) -> list[TokenPublic]:
    """Your tokens, newest first, with when each was last used."""
    return [
        TokenPublic.model_validate(t, from_attributes=True)
        for t in tokens_of(session=session, user=user)
    ]


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def create_token_api(
    body: TokenCreate, session: SessionDep, user: CurrentUser, _signed_in: SessionToken
) -> TokenCreated:
    """A new token (signed in with a session, never a token); shown this once."""
    row, token = create_token(session=session, user=user, name=body.name)
    session.commit()
    return TokenCreated.model_validate({**row.model_dump(), "token": token})


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token_api(token_id: int, session: SessionDep, user: CurrentUser) -> Response:
    """Revoke one of your tokens."""
    revoke_token(session=session, user=user, token_id=token_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password_api(
    body: PasswordChange, session: SessionDep, user: CurrentUser, session_token: SessionToken
) -> Response:
    """Change your password (signed in with a session); other sessions end, tokens are
    revoked."""
    change_password(session=session, user=user, current=body.current_password,
                    new=body.new_password, session_token=session_token)  # fmt: skip
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
