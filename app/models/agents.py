"""Agents: a role prompt and settings bound to a model, per workspace."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from pydantic import StringConstraints
from sqlmodel import Field, SQLModel

from app.models.common import UTCDateTime, utcnow


class Agent(SQLModel, table=True):
    """A named role in a workspace that answers with one model."""

    __table_args__ = (
        sa.UniqueConstraint("workspace_id", "name"),
        sa.CheckConstraint("temperature >= 0 AND temperature <= 2", name="temperature_range"),
        sa.CheckConstraint("max_tokens > 0", name="max_tokens_positive"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", ondelete="CASCADE", index=True)
    name: str = Field(sa_type=sa.String(80))
    role_prompt: str = Field(default="", sa_type=sa.Text)
    model_id: int | None = Field(default=None, foreign_key="model.id", ondelete="SET NULL")
    temperature: float = Field(default=0.7)
    max_tokens: int = Field(default=512)
    colour: str = Field(default="#4f6bed", sa_type=sa.String(16))
    # Worked examples for base models, as a transcript ("User: …" / "Assistant: …" turns);
    # empty: app/engine/conversation.py's general ones.
    examples: str = Field(default="", sa_type=sa.Text, sa_column_kwargs={"server_default": ""})
    # Stop a run that starts repeating itself (app/engine/loop_guard.py).
    loop_guard: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# SQLModel's Field(regex=…) is not enforced on plain models; pydantic's constraint is.
Colour = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]


class AgentCreate(SQLModel):
    name: str = Field(min_length=1, max_length=80)
    role_prompt: str = Field(default="", max_length=20_000)
    model_id: int | None = None
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_tokens: int = Field(default=512, ge=1, le=32_768)
    colour: Colour | None = None  # None: the next colour of the palette no agent wears yet
    examples: str = Field(default="", max_length=20_000)
    loop_guard: bool = True


class AgentUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=80)
    role_prompt: str | None = Field(default=None, max_length=20_000)
    model_id: int | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=32_768)
    colour: Colour | None = None
    examples: str | None = Field(default=None, max_length=20_000)
    loop_guard: bool | None = None


class AgentPublic(SQLModel):
    id: int
    workspace_id: int
    name: str
    role_prompt: str
    model_id: int | None
    temperature: float
    max_tokens: int
    colour: str
    examples: str
    loop_guard: bool
