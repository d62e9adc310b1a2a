"""Agents of a workspace: a role prompt and settings bound to a model.

One set of field rules (``AgentCreate`` / ``AgentUpdate``) serves the page and the API; the
page turns form strings into those schemas with ``agent_fields``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel import Session, col, select

from app.models import Agent, AgentCreate, AgentUpdate, Model, User
from app.services import Conflict, NotFound, ServiceError
from app.services.workspaces import record_event

FieldsT = TypeVar("FieldsT", AgentCreate, AgentUpdate)

# A person-readable message for each field the schemas check.
FIELD_MESSAGES = {
    "name": "Give the agent a name (up to 80 characters).",
    "role_prompt": "Keep the role prompt under 20,000 characters.",
    "model_id": "Pick a model from the list.",
    "temperature": "Temperature goes from 0 to 2.",
    "max_tokens": "Max tokens goes from 1 to 32768.",
    "colour": "Pick a colour.",
}


# Distinct at a glance (and on a white or dark page); a new agent takes the first one unused.
PALETTE = (
    "#4f6bed",
    "#e8590c",
    "#2f9e44",
    "#c2255c",
    "#0c8599",
    "#7048e8",
    "#e67700",
    "#1971c2",
    "#a61e4d",
    "#5c940d",
)


def next_colour(*, session: Session, workspace_id: int) -> str:
    """The first palette colour no agent of the workspace wears (cycling once all are used)."""
    used = [
        c.lower()
        for c in session.exec(select(Agent.colour).where(Agent.workspace_id == workspace_id))
    ]
    for colour in PALETTE:
        if colour not in used:
            return colour
    return PALETTE[len(used) % len(PALETTE)]


# Built once: pages list the agents on every view.
_AGENTS_OF = (
    select(Agent)
    .where(Agent.workspace_id == sa.bindparam("workspace_id"))
    .order_by(col(Agent.name))
)


def agents_of(*, session: Session, workspace_id: int) -> list[Agent]:
    """The workspace's agents, by name."""
    return list(session.exec(_AGENTS_OF, params={"workspace_id": workspace_id}).all())


def agent_fields(schema: type[FieldsT], data: Mapping[str, object]) -> FieldsT:
    """Validate agent fields from a form; ServiceError with a readable message on a mistake."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        if field in ("temperature", "max_tokens") and first["type"].endswith("_parsing"):
            raise ServiceError("Temperature and max tokens must be numbers.") from None
        raise ServiceError(FIELD_MESSAGES.get(field, "Check the agent's fields.")) from None


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


def create_agent(*, session: Session, workspace_id: int, actor: User, fields: AgentCreate) -> Agent:
    """A new agent."""
    name = _check_name(session, workspace_id, fields.name, None)
    _check_model(session, fields.model_id)
    colour = fields.colour or next_colour(session=session, workspace_id=workspace_id)
    agent = Agent(
        workspace_id=workspace_id, **{**fields.model_dump(), "name": name, "colour": colour}
    )
    session.add(agent)
    session.flush()
    record_event(
        session=session, workspace_id=workspace_id, actor=actor, verb="created",
        subject_type="agent", subject_id=agent.id, data={"name": name},
    )  # fmt: skip
    return agent


def update_agent(*, session: Session, agent: Agent, actor: User, changes: AgentUpdate) -> Agent:
    """Change the fields set in ``changes``; a model of None unbinds the agent's model."""
    for field, value in changes.model_dump(exclude_unset=True).items():
        if field == "model_id":
            _check_model(session, value)
        elif value is None:
            continue  # the other fields cannot be empty; null leaves them as they are
        elif field == "name":
            value = _check_name(session, agent.workspace_id, str(value), agent.id)
        setattr(agent, field, value)
    session.add(agent)
    session.flush()
    return agent


def delete_agent(*, session: Session, agent: Agent, actor: User) -> None:
    """Delete an agent; its past answers stay."""
    record_event(
        session=session, workspace_id=agent.workspace_id, actor=actor, verb="deleted",
        subject_type="agent", subject_id=agent.id, data={"name": agent.name},
    )  # fmt: skip
    session.delete(agent)
    session.flush()


def named_in(text: str, agents: list[Agent]) -> list[int]:
    """The agents whose names appear in ``text`` as whole words ("Fan it out to Coder and
    Explorer" names Coder and Explorer)."""
    return [
        agent.id
        for agent in agents
        if agent.id is not None and re.search(rf"(?<!\w){re.escape(agent.name)}(?!\w)", text)
    ]
