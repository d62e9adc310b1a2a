"""Admin pages: model endpoints (add, check, change, disable, delete) and their models."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from app.config import get_settings
from app.engine.starting import starting_notes
from app.models import Model, ModelEndpoint
from app.redis_conn import get_redis
from app.services import ServiceError
from app.services import endpoints as service
from app.services.discovery import find_local_servers
from app.web.deps import AdminUser, SessionDep
from app.web.templating import render

router = APIRouter(prefix="/admin", tags=["pages"], include_in_schema=False)


def _listing(session: Session) -> list[tuple[ModelEndpoint, list[Model]]]:
    return [
        (endpoint, service.models_of(session=session, endpoint=endpoint))
        for endpoint in service.list_endpoints(session=session)
    ]


def _page(request: Request, session: Session, *, status_code: int = 200, **form: Any) -> Response:
    found = find_local_servers(session=session, ports=get_settings().discovery_port_list)
    listing = _listing(session)
    starting = starting_notes(get_redis(), [e.id for e, _ in listing if e.id is not None])
    context = {"endpoints": listing, "form": form, "found": found, "starting": starting}
    return render(
        request, "admin_endpoints.html", context, block="endpoints", status_code=status_code
    )


def _listed() -> Response:
    """After a change: post/redirect/get (a reload shows the list, and repeats nothing)."""
    return RedirectResponse("/admin/endpoints", status_code=303)


@router.get("/endpoints")
def endpoints_page(request: Request, session: SessionDep, _admin: AdminUser) -> Response:
    return _page(request, session)


@router.post("/endpoints")
def add_endpoint(
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    name: Annotated[str, Form(max_length=200)],
    base_url: Annotated[str, Form(max_length=500)],
    api_key: Annotated[str, Form(max_length=500)] = "",
    max_concurrency: Annotated[int, Form(ge=1, le=256)] = 4,
) -> Response:
    form = {"name": name, "base_url": base_url, "max_concurrency": max_concurrency}
    try:
        endpoint = service.create_endpoint(
            session=session, actor=admin, name=name, base_url=base_url, api_key=api_key,
            max_concurrency=max_concurrency,
        )  # fmt: skip
        session.commit()
    except ServiceError as exc:
        session.rollback()
        return _page(request, session, status_code=exc.status_code, error=exc.message, **form)
    service.check_endpoint(session=session, endpoint=endpoint)
    session.commit()
    return _listed()


@router.post("/endpoints/{endpoint_id}/check")
def check_endpoint(
    request: Request, endpoint_id: int, session: SessionDep, _admin: AdminUser
) -> Response:
    service.check_endpoint(
        session=session, endpoint=service.endpoint_for(session=session, endpoint_id=endpoint_id)
    )
    session.commit()
    return _listed()


@router.post("/endpoints/{endpoint_id}")
def change_endpoint(
    request: Request,
    endpoint_id: int,
    session: SessionDep,
    _admin: AdminUser,
    max_concurrency: Annotated[int, Form(ge=1, le=256)],
    enabled: Annotated[bool, Form()] = False,
    api_key: Annotated[str, Form(max_length=500)] = "",
    clear_api_key: Annotated[bool, Form()] = False,
) -> Response:
    endpoint = service.endpoint_for(session=session, endpoint_id=endpoint_id)
    service.update_endpoint(
        session=session, endpoint=endpoint, max_concurrency=max_concurrency, enabled=enabled,
        api_key=api_key or None, clear_api_key=clear_api_key,
    )  # fmt: skip
    session.commit()
    return _listed()


@router.post("/endpoints/{endpoint_id}/delete")
def delete_endpoint(
    request: Request, endpoint_id: int, session: SessionDep, _admin: AdminUser
) -> Response:
    service.delete_endpoint(
        session=session, endpoint=service.endpoint_for(session=session, endpoint_id=endpoint_id)
    )
    session.commit()
    return _listed()


@router.post("/models/{model_id}")
def change_model(
    request: Request,
    model_id: int,
    session: SessionDep,
    _admin: AdminUser,
    parameter_count: Annotated[str, Form(max_length=20)] = "",
    context_length: Annotated[str, Form(max_length=12)] = "",
    prompt_format: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    model = service.model_for(session=session, model_id=model_id)
    try:
        service.set_model_details(
            session=session,
            model=model,
            parameter_count=parse_count(parameter_count, "parameter count"),
            context_length=parse_count(context_length, "context length"),
            prompt_format=prompt_format or None,
        )
    except ServiceError as exc:
        session.rollback()
        return _page(request, session, status_code=400, model_error=exc.message, model_id=model_id)
    session.commit()
    return _listed()


def parse_count(text: str, what: str) -> int | None:
    """A whole number as a person types it: ``270M``, ``1.5B``, ``8192`` or empty."""
    text = text.strip().replace(",", "").replace("_", "").upper()
    if not text:
        return None
    scale = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}.get(text[-1], 1)
    number = text[:-1] if scale != 1 else text
    try:
        value = round(float(number) * scale)
    except ValueError:
        raise ServiceError(f"Enter the {what} as a number such as 270M, 1.5B or 8192.") from None
    if value <= 0 or value > 10**13:
        raise ServiceError(f"The {what} must be a positive number.")
    return value
