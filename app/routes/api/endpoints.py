"""Model endpoints and their models (admins only; everyone else gets 404)."""

from __future__ import annotations

from fastapi import APIRouter, status
from starlette.responses import Response

from app.models import (
    ModelEndpoint,
    ModelEndpointCreate,
    ModelEndpointPublic,
    ModelEndpointUpdate,
    ModelPublic,
    ModelUpdate,
)
from app.services import endpoints as service
from app.web.deps import AdminUser, SessionDep

router = APIRouter(tags=["model endpoints"])


def public(session: SessionDep, endpoint: ModelEndpoint) -> ModelEndpointPublic:
    models = service.models_of(session=session, endpoint=endpoint)
    return ModelEndpointPublic.model_validate(
        {
            **endpoint.model_dump(exclude={"api_key"}),
            "has_api_key": bool(endpoint.api_key),
            "models": [ModelPublic.model_validate(m, from_attributes=True) for m in models],
        }
    )


@router.get("/endpoints", response_model=list[ModelEndpointPublic])
def list_endpoints(session: SessionDep, _admin: AdminUser) -> list[ModelEndpointPublic]:
    """Every registered model server with its last health check and models."""
    return [public(session, e) for e in service.list_endpoints(session=session)]


@router.post("/endpoints", response_model=ModelEndpointPublic, status_code=status.HTTP_201_CREATED)
def create_endpoint(
    body: ModelEndpointCreate, session: SessionDep, admin: AdminUser
) -> ModelEndpointPublic:
    """Register an OpenAI-compatible server, then check it and discover its models."""
    endpoint = service.create_endpoint(session=session, actor=admin, **body.model_dump())
    session.commit()
    service.check_endpoint(session=session, endpoint=endpoint)
    session.commit()
    return public(session, endpoint)


@router.get("/endpoints/{endpoint_id}", response_model=ModelEndpointPublic)
def read_endpoint(endpoint_id: int, session: SessionDep, _admin: AdminUser) -> ModelEndpointPublic:
    """One endpoint."""
    return public(session, service.endpoint_for(session=session, endpoint_id=endpoint_id))


@router.patch("/endpoints/{endpoint_id}", response_model=ModelEndpointPublic)
def update_endpoint(
    endpoint_id: int, body: ModelEndpointUpdate, session: SessionDep, _admin: AdminUser
) -> ModelEndpointPublic:
    """Rename, re-point, change the key or the concurrency limit, enable or disable."""
    endpoint = service.endpoint_for(session=session, endpoint_id=endpoint_id)
    service.update_endpoint(session=session, endpoint=endpoint, **body.model_dump())
    session.commit()
    return public(session, endpoint)


@router.delete("/endpoints/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_endpoint(endpoint_id: int, session: SessionDep, _admin: AdminUser) -> Response:
    """Remove an endpoint and its models."""
    service.delete_endpoint(
        session=session, endpoint=service.endpoint_for(session=session, endpoint_id=endpoint_id)
    )
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/endpoints/{endpoint_id}/check", response_model=ModelEndpointPublic)
def check_endpoint(endpoint_id: int, session: SessionDep, _admin: AdminUser) -> ModelEndpointPublic:
    """Check health now and refresh the list of models."""
    endpoint = service.endpoint_for(session=session, endpoint_id=endpoint_id)
    service.check_endpoint(session=session, endpoint=endpoint)
    session.commit()
    return public(session, endpoint)


@router.get("/endpoints/{endpoint_id}/models", response_model=list[ModelPublic])
def list_models(endpoint_id: int, session: SessionDep, _admin: AdminUser) -> list[ModelPublic]:
    """The models the endpoint served at its last check."""
    endpoint = service.endpoint_for(session=session, endpoint_id=endpoint_id)
    models = service.models_of(session=session, endpoint=endpoint)
    return [ModelPublic.model_validate(m, from_attributes=True) for m in models]


@router.patch("/models/{model_id}", response_model=ModelPublic)
def update_model(
    model_id: int, body: ModelUpdate, session: SessionDep, _admin: AdminUser
) -> ModelPublic:
    """Enter a parameter count or context length the server does not report; set the prompt
    format ("chat", "transcript", or "auto" for what discovery detected)."""
    model = service.model_for(session=session, model_id=model_id)
    service.set_model_details(session=session, model=model, **body.model_dump())
    session.commit()
    return ModelPublic.model_validate(model, from_attributes=True)
