"""The Agents page of a workspace: create (from a starter role), edit, delete."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from sqlmodel import Session, col, select
from starlette.responses import RedirectResponse, Response

from app.deps import CurrentUser, EditableWorkspace, SessionDep, ViewableWorkspace
from app.models import Agent, Model, ModelEndpoint, Role, User, Workspace
from app.services import ServiceError
from app.services.access import agent_for
from app.services.agents import create_agent, delete_agent, update_agent
from app.services.demo import STARTER_AGENTS
from app.services.workspaces import role_in
from app.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


def _context(session: Session, workspace: Workspace, user: User) -> dict[str, Any]:
    role = role_in(session=session, workspace=workspace, user=user)
    models = session.exec(
        select(Model, ModelEndpoint)
        .join(ModelEndpoint, col(ModelEndpoint.id) == col(Model.endpoint_id))
        .where(col(Model.available), col(ModelEndpoint.enabled))
        .order_by(col(ModelEndpoint.name), col(Model.name))
    ).all()
    agents = session.exec(
        select(Agent).where(Agent.workspace_id == workspace.id).order_by(col(Agent.name))
    ).all()
    return {
        "workspace": workspace,
        "agents": agents,
        "models": models,
        "can_edit": bool(role and role.allows(Role.editor)),
        "starters": [SimpleNamespace(**s) for s in STARTER_AGENTS],
        "starter": None,
    }


def _fields(
    name: str, role_prompt: str, model_id: str, temperature: str, max_tokens: str, colour: str
) -> dict[str, Any]:
    """Form strings to agent fields, with a clear message for each mistake."""
    try:
        temperature_value = float(temperature)
        tokens = int(max_tokens)
    except ValueError:
        raise ServiceError("Temperature and max tokens must be numbers.") from None
    if not 0 <= temperature_value <= 2:
        raise ServiceError("Temperature goes from 0 to 2.")
    if not 1 <= tokens <= 32_768:
        raise ServiceError("Max tokens goes from 1 to 32768.")
    if len(colour) != 7 or not colour.startswith("#"):
        raise ServiceError("Pick a colour.")
    return {
        "name": name,
        "role_prompt": role_prompt,
        "model_id": int(model_id) if model_id.isdigit() else None,
        "temperature": temperature_value,
        "max_tokens": tokens,
        "colour": colour,
    }


@router.get("/w/{slug}/agents")
def agents_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    workspace: ViewableWorkspace,
    starter: str = "",
) -> Response:
    context = _context(session, workspace, user)
    chosen = next((s for s in STARTER_AGENTS if s["name"] == starter), None)
    if chosen:
        model = context["models"][0][0] if context["models"] else None
        context["starter"] = SimpleNamespace(
            **chosen, model_id=model.id if model else None, temperature=0.7, max_tokens=512
        )
    return render(request, "agents.html", context)


@router.post("/w/{slug}/agents")
def create_agent_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    workspace: EditableWorkspace,
    name: Annotated[str, Form(max_length=80)],
    role_prompt: Annotated[str, Form(max_length=20_000)] = "",
    model_id: Annotated[str, Form()] = "",
    temperature: Annotated[str, Form()] = "0.7",
    max_tokens: Annotated[str, Form()] = "512",
    colour: Annotated[str, Form()] = "#4f6bed",
) -> Response:
    try:
        fields = _fields(name, role_prompt, model_id, temperature, max_tokens, colour)
        create_agent(session=session, workspace_id=workspace.id, actor=user, **fields)  # type: ignore[arg-type]
    except ServiceError as exc:
        session.rollback()
        context = {**_context(session, workspace, user), "error": exc.message}
        return render(request, "agents.html", context, status_code=exc.status_code)
    session.commit()
    return RedirectResponse(f"/w/{workspace.slug}/agents", status_code=303)


@router.post("/agents/{agent_id}")
def update_agent_page(
    request: Request,
    agent_id: int,
    session: SessionDep,
    user: CurrentUser,
    name: Annotated[str, Form(max_length=80)],
    role_prompt: Annotated[str, Form(max_length=20_000)] = "",
    model_id: Annotated[str, Form()] = "",
    temperature: Annotated[str, Form()] = "0.7",
    max_tokens: Annotated[str, Form()] = "512",
    colour: Annotated[str, Form()] = "#4f6bed",
) -> Response:
    agent = agent_for(session=session, agent_id=agent_id, user=user, min_role=Role.editor)
    workspace = session.get(Workspace, agent.workspace_id)
    assert workspace is not None
    try:
        fields = _fields(name, role_prompt, model_id, temperature, max_tokens, colour)
        update_agent(session=session, agent=agent, actor=user, **fields)
        if fields["model_id"] is None:
            agent.model_id = None  # "none" is a choice here, not "unchanged"
    except ServiceError as exc:
        session.rollback()
        context = {**_context(session, workspace, user), "error": exc.message}
        return render(request, "agents.html", context, status_code=exc.status_code)
    session.commit()
    return RedirectResponse(f"/w/{workspace.slug}/agents", status_code=303)


@router.post("/agents/{agent_id}/delete")
def delete_agent_page(agent_id: int, session: SessionDep, user: CurrentUser) -> Response:
    agent = agent_for(session=session, agent_id=agent_id, user=user, min_role=Role.editor)
    slug = session.get(Workspace, agent.workspace_id).slug  # type: ignore[union-attr]
    delete_agent(session=session, agent=agent, actor=user)
    session.commit()
    return RedirectResponse(f"/w/{slug}/agents", status_code=303)
