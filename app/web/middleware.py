"""Response headers that keep pages safe, and refusal of cross-site form posts."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def is_cross_origin(request: Request) -> bool:
    """Whether a browser sent this request from another site.

    Browsers mark every request with Sec-Fetch-Site, and every POST with Origin; clients that
    send neither are not browsers and carry no cookies a third-party page could ride on.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    if origin == "null":
        return True
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


class SecurityMiddleware:
    """Adds the security headers to every response and refuses cross-site writes.

    Plain ASGI (not BaseHTTPMiddleware, which runs the app in a task of its own and passes the
    body through a stream: a real share of a small page's CPU)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        has_bearer = request.headers.get("authorization", "").lower().startswith("bearer ")
        if request.method not in SAFE_METHODS and not has_bearer and is_cross_origin(request):
            message = "Cross-site request refused: send it from Switchboard's own pages."
            response: Response
            if request.url.path.startswith("/api/"):
                response = JSONResponse({"detail": message}, status_code=403)
            else:
                response = PlainTextResponse(message, status_code=403)
            await response(scope, receive, self._with_headers(send))
            return
        await self.app(scope, receive, self._with_headers(send))

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        return send_with_headers
