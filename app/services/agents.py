"""Agents of a workspace: a role prompt and settings bound to a model."""

from __future__ import annotations

from sqlmodel import Session, col, select

from app.models import Agent, Model, User
from app.services import Conflict, NotFound, ServiceError
from app.services.workspaces import record_event

EDITABLE = ("name", "role_prompt", "model_id", "temperature", "max_tokens", "colour")


def _check_model(session: Session, model_id: int | None) -> None:
    if model_id is not None and session.get(Model, model_id) is None:
        raise NotFound("No such model; pick one listed under Model endpoints.")


def _check_name(session: Session, workspace_id: int, name: str, exclude: int | None) -> str:
    name = name.strip()
    if not name:
        raise ServiceError("Give the agent a name.")
    query = select(Agent.id).where(Agent.workspace_id == workspace_id, Agent.name == name)
    if exclude is not None:
        query = query.where(col(Agent.id) != exclude)
    if session.exec(query).first() is not None:
        raise Conflict(f"This workspace has an agent named {name!r} already.")
    return name


def create_agent(*, session: Session, workspace_id: int, actor: User, **fields: object) -> Agent:
    """A new agent; ``fields`` are those of AgentCreate."""
    name = _check_name(session, workspace_id, str(fields.get("name", "")), None)
    _check_model(session, fields.get("model_id"))  # type: ignore[arg-type]
    agent = Agent(workspace_id=workspace_id, **{**fields, "name": name})  # type: ignore[arg-type]
    session.add(agent)
    session.flush()
    record_event(
        session=session, workspace_id=workspace_id, actor=actor, verb="created",
        subject_type="agent", subject_id=agent.id, data={"name": name},
    )  # fmt: skip
    return agent


def update_agent(*, session: Session, agent: Agent, actor: User, **fields: object) -> Agent:
    """Change the given fields (None leaves a field as it is)."""
    for field in EDITABLE:
        value = fields.get(field)
        if value is None:
            continue
        if field == "name":
            value = _check_name(session, agent.workspace_id, str(value), agent.id)
        if field == "model_id":
            _check_model(session, value)  # type: ignore[arg-type]
        setattr(agent, field, value)
    session.add(agent)
    session.flush()
    return agent


def delete_agent(*, session: Session, agent: Agent, actor: User) -> None:
    record_event(
        session=session, workspace_id=agent.workspace_id, actor=actor, verb="deleted",
        subject_type="agent", subject_id=agent.id, data={"name": agent.name},
    )  # fmt: skip
    session.delete(agent)
    session.flush()
