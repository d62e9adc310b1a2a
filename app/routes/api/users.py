"""The signed-in user."""

from fastapi import APIRouter

from app.models import UserPublic
from app.web.deps import CurrentUser

router = APIRouter(prefix="/me", tags=["users"])


@router.get("", response_model=UserPublic)
def read_me(user: CurrentUser) -> UserPublic:
    """Who the session or API token belongs to."""
    return UserPublic.model_validate(user, from_attributes=True)
