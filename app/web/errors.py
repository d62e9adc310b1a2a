"""Every failure becomes a clear 4xx (or a plain 500 page) — never a traceback in a page."""

from __future__ import annotations

import logging
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response

from app.services import ServiceError
from app.web.deps import SignInRequired
from app.web.templating import render

log = logging.getLogger(__name__)


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/healthz"


def error_response(request: Request, status_code: int, message: str) -> Response:
    """JSON ``{"detail": …}`` for the API, the error page for people."""
    if is_api(request):
        return JSONResponse({"detail": message}, status_code=status_code)
    return render(
        request,
        "error.html",
        {"status_code": status_code, "message": message},
        block="content",
        status_code=status_code,
    )


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"] if part not in ("body", "query"))
        problems.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(problems) or "The request was not understood."


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _exc: SignInRequired) -> Response:
        if is_api(request):
            return JSONResponse(
                {"detail": "Sign in, or send an API token as 'Authorization: Bearer …'."},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        target = f"/signin?next={quote(request.url.path)}"
        if request.headers.get("hx-request") == "true":
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> Response:
        return error_response(request, exc.status_code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        status = 422 if is_api(request) else 400
        return error_response(request, status, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "Not found.", 405: "That action is not allowed here."}
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code in messages and message in ("Not Found", "Method Not Allowed"):
            message = messages[exc.status_code]
        response = error_response(request, exc.status_code, message)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(sa.exc.DataError)
    @app.exception_handler(OverflowError)
    async def _out_of_range(request: Request, exc: Exception) -> Response:
        # The database refused a value no validation caught (an id past its integer range, a
        # NUL character in text for PostgreSQL): nothing was written, so it is the caller's 400.
        log.info("value refused by the database on %s: %s", request.url.path, exc)
        return error_response(
            request, 400, "A value is out of range or contains a character that is not allowed."
        )

    @app.exception_handler(sa.exc.IntegrityError)
    async def _conflict(request: Request, exc: Exception) -> Response:
        log.warning("integrity error on %s: %s", request.url.path, exc)
        return error_response(request, 409, "That conflicts with existing data; nothing changed.")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "Something went wrong on our side; it has been logged.")
