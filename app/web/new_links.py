"""A new link's address, shown again when its page is reloaded (post/redirect/get).

Only a token's hash is stored, so the address lives for a few minutes in a cookie of the
browser that made the link (HttpOnly, scoped to the page that shows it); the page shows it only
while the cookie's token still matches the link and the link is not revoked.
"""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from app.config import get_settings
from app.models import ShareLink
from app.security import hash_token

SHOWN_FOR_S = 600


def _cookie(link_id: int) -> str:
    return f"sb_new_link_{link_id}"


def remember(response: Response, request: Request, link_id: int, token: str, path: str) -> None:
    response.set_cookie(
        _cookie(link_id),
        token,
        max_age=SHOWN_FOR_S,
        path=path,
        httponly=True,
        samesite="strict",
        secure=get_settings().secure_cookies or request.url.scheme == "https",
    )


def recall(request: Request, link: ShareLink) -> str | None:
    """The link's token from its cookie, while it still matches a link that works."""
    assert link.id is not None
    token = request.cookies.get(_cookie(link.id))
    if not token or link.revoked_at is not None or hash_token(token) != link.token_hash:
        return None
    return token
