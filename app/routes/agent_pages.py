"""The Agents page of a workspace: create (from a starter role), edit, delete.

Agents are listed compactly, each one's form opened on demand; a mistake reopens the form it was
made in with what was typed and the message beside it; a save redirects (post/redirect/get)
to the list with ``?saved=<id>``, which the page confirms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from app.models import Agent, AgentCreate, AgentUpdate, Role, Workspace
from app.services import ServiceError
from app.services.access import agent_for, require_role
from app.services.agents import (
    PALETTE,
    agent_fields,
    agents_of,
    create_agent,
    delete_agent,
    next_colour,
    update_agent,
)
from app.services.demo import STARTER_AGENTS
from app.services.endpoints import available_models
from app.web.deps import Access, CurrentUser, EditableWorkspace, SessionDep, ViewableWorkspace
from app.web.forms import form_id
from app.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


def _context(session: Session, access: Access) -> dict[str, Any]:
    workspace, role = access
    agents = agents_of(session=session, workspace_id=workspace.id)  # type: ignore[arg-type]
    return {
        "workspace": workspace,
        "agents": agents,
        "models": available_models(session=session),
        "can_edit": role.allows(Role.editor),
        "starters": STARTER_AGENTS,
        "starter": None,
        "palette": PALETTE,
        "new_colour": next_colour(session=session, workspace_id=workspace.id),  # type: ignore[arg-type]
        "saved": None,
        "error_for": None,
        "posted": None,
    }


def _refused(
    request: Request,
    session: Session,
    access: Access,
    exc: ServiceError,
    error_for: str,
    posted: dict[str, object],
) -> Response:
    """The page again, the form that was sent open with what was typed and why it was refused."""
    session.rollback()
    context = {**_context(session, access), "error": exc.message, "error_for": error_for,
               "posted": posted}  # fmt: skip
    return render(request, "agents.html", context, status_code=exc.status_code)


def _posted(
    name: str, role_prompt: str, model_id: str, temperature: str, max_tokens: str, colour: str,
    extras: AgentExtras,
) -> dict[str, object]:  # fmt: skip
    """The form as typed, to show it again."""
    return {
        "name": name, "role_prompt": role_prompt, "model_id": model_id.strip(),
        "temperature": temperature, "max_tokens": max_tokens, "colour": colour,
        "examples": extras.examples, "loop_guard": bool(extras.loop_guard),
    }  # fmt: skip


def _form(
    name: str,
    role_prompt: str,
    model_id: str,
    temperature: str,
    max_tokens: str,
    colour: str,
    extras: AgentExtras,
) -> dict[str, object]:
    """The agent form as it was posted; an empty model means "no model", an empty colour the
    next unused one (a new agent) or the one it has (an edit)."""
    model = form_id(model_id, "Pick a model from the list.") if model_id.strip() else None
    form: dict[str, object] = {
        "name": name, "role_prompt": role_prompt, "model_id": model,
        "temperature": temperature, "max_tokens": max_tokens, "colour": colour.strip() or None,
        "examples": extras.examples,
    }  # fmt: skip
    # A checkbox says nothing when unticked; the form marks that it showed one.
    if extras.loop_guard_shown:
        form["loop_guard"] = bool(extras.loop_guard)
    return form


@dataclass(frozen=True)
class AgentExtras:
    """The agent form's fields for small models: worked examples and the loop guard."""

    examples: str
    loop_guard: str
    loop_guard_shown: str


@router.get("/w/{slug}/agents")
def agents_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    access: ViewableWorkspace,
    starter: str = "",
    saved: str = "",
) -> Response:
    workspace = access.workspace
    context = _context(session, access)
    context["saved"] = next((a for a in context["agents"] if str(a.id) == saved), None)
    chosen = next((s for s in STARTER_AGENTS if s["name"] == starter), None)
    if chosen:
        model = context["models"][0][0] if context["models"] else None
        context["starter"] = Agent(
            workspace_id=workspace.id,  # type: ignore[arg-type]
            name=chosen["name"],
            role_prompt=chosen["role_prompt"],
            examples=chosen["examples"],
            max_tokens=chosen["max_tokens"],
            temperature=chosen["temperature"],
            colour=next_colour(session=session, workspace_id=workspace.id),  # type: ignore[arg-type]
            model_id=model.id if model else None,
        )
    return render(request, "agents.html", context)


@router.post("/w/{slug}/agents")
def create_agent_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    access: EditableWorkspace,
    name: Annotated[str, Form(max_length=80)],
    role_prompt: Annotated[str, Form(max_length=20_000)] = "",
    model_id: Annotated[str, Form()] = "",
    temperature: Annotated[str, Form()] = "0.7",
    max_tokens: Annotated[str, Form()] = "512",
    colour: Annotated[str, Form(max_length=16)] = "",
    examples: Annotated[str, Form(max_length=20_000)] = "",
    loop_guard: Annotated[str, Form(max_length=8)] = "",
    loop_guard_shown: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    extras = AgentExtras(examples, loop_guard, loop_guard_shown)
    workspace = access.workspace
    try:
        form = _form(name, role_prompt, model_id, temperature, max_tokens, colour, extras)
        fields = agent_fields(AgentCreate, form)
        agent = create_agent(session=session, workspace_id=workspace.id, actor=user, fields=fields)  # type: ignore[arg-type]
    except ServiceError as exc:
        posted = _posted(name, role_prompt, model_id, temperature, max_tokens, colour, extras)
        return _refused(request, session, access, exc, "new", posted)
    session.commit()
    return RedirectResponse(f"/w/{workspace.slug}/agents?saved={agent.id}", status_code=303)


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
    colour: Annotated[str, Form(max_length=16)] = "",
    examples: Annotated[str, Form(max_length=20_000)] = "",
    loop_guard: Annotated[str, Form(max_length=8)] = "",
    loop_guard_shown: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    extras = AgentExtras(examples, loop_guard, loop_guard_shown)
    agent = agent_for(session=session, agent_id=agent_id, user=user, min_role=Role.editor)
    workspace = session.get(Workspace, agent.workspace_id)
    assert workspace is not None
    try:
        form = _form(name, role_prompt, model_id, temperature, max_tokens, colour, extras)
        changes = agent_fields(AgentUpdate, form)
        update_agent(session=session, agent=agent, actor=user, changes=changes)
    except ServiceError as exc:
        session.rollback()
        role = require_role(session=session, workspace_id=workspace.id, user=user,  # type: ignore[arg-type]
                            min_role=Role.editor)  # fmt: skip
        posted = _posted(name, role_prompt, model_id, temperature, max_tokens, colour, extras)
        return _refused(request, session, Access(workspace, role), exc, str(agent_id), posted)
    session.commit()
    return RedirectResponse(f"/w/{workspace.slug}/agents?saved={agent_id}", status_code=303)


@router.post("/agents/{agent_id}/delete")
def delete_agent_page(agent_id: int, session: SessionDep, user: CurrentUser) -> Response:
    agent = agent_for(session=session, agent_id=agent_id, user=user, min_role=Role.editor)
    slug = session.get(Workspace, agent.workspace_id).slug  # type: ignore[union-attr]
    delete_agent(session=session, agent=agent, actor=user)
    session.commit()
    return RedirectResponse(f"/w/{slug}/agents", status_code=303)
