"""A new secret (a link's address, an API token), shown again when its page is reloaded
(post/redirect/get).

Only a token's hash is stored, so the secret lives for a few minutes in a cookie of the browser
that made it (HttpOnly, scoped to the page that shows it); the page shows it only while the
cookie's token still matches the stored hash and the secret is not revoked.
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
    remember_secret(response, request, _cookie(link_id), token, path)


def remember_secret(response: Response, request: Request, name: str, token: str, path: str) -> None:
    response.set_cookie(
        name,
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
    return recall_secret(request, _cookie(link.id), link.token_hash, link.revoked_at is not None)


def recall_secret(request: Request, name: str, token_hash: str, revoked: bool) -> str | None:
    """The secret in cookie ``name``, while it still matches ``token_hash`` and works."""
    token = request.cookies.get(name)
    if not token or revoked or hash_token(token) != token_hash:
        return None
    return token
