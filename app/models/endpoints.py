"""Model servers (OpenAI-compatible endpoints) and the models they serve."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.common import UTCDateTime, utcnow


class ModelEndpoint(SQLModel, table=True):
    """An OpenAI-compatible server an admin registered; the API key is never rendered."""

    __tablename__ = "model_endpoint"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=sa.String(120), unique=True)
    base_url: str = Field(sa_type=sa.String(500))
    api_key: str | None = Field(default=None, sa_type=sa.String(500), repr=False)
    max_concurrency: int = Field(default=4, ge=1)
    enabled: bool = Field(default=True)
    is_embedded: bool = Field(default=False)
    # "llama.cpp" when the server said so at discovery: it then gets cache_prompt hints.
    server_kind: str = Field(default="openai", sa_type=sa.String(32))
    health_ok: bool | None = Field(default=None)
    health_latency_ms: float | None = Field(default=None)
    health_error: str | None = Field(default=None, sa_type=sa.Text)
    health_checked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Model(SQLModel, table=True):
    """A model served by an endpoint, as listed by its ``GET /v1/models``."""

    __table_args__ = (sa.UniqueConstraint("endpoint_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int = Field(foreign_key="model_endpoint.id", ondelete="CASCADE", index=True)
    name: str = Field(sa_type=sa.String(255))
    parameter_count: int | None = Field(default=None, sa_type=sa.BigInteger)
    context_length: int | None = Field(default=None)
    available: bool = Field(default=True)
    # How to prompt it: "chat" (the server's chat template) or "transcript" (a completion
    # prompt, for base models). An admin's choice wins over what discovery detected.
    prompt_format: str | None = Field(default=None, sa_type=sa.String(16))
    detected_prompt_format: str | None = Field(default=None, sa_type=sa.String(16))
    discovered_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    @property
    def effective_prompt_format(self) -> str:
        """The admin's choice, else what discovery detected, else chat."""
        return self.prompt_format or self.detected_prompt_format or "chat"


class ModelEndpointCreate(SQLModel):
    """What an admin gives to register a model server."""

    name: str = Field(min_length=1, max_length=120)
    base_url: str = Field(min_length=1, max_length=500, description="e.g. http://127.0.0.1:8080/v1")
    api_key: str | None = Field(default=None, max_length=500)
    max_concurrency: int = Field(default=4, ge=1, le=256)


class ModelEndpointUpdate(SQLModel):
    """Fields to change; an omitted field stays as it is."""

    name: str | None = Field(default=None, min_length=1, max_length=120)
    base_url: str | None = Field(default=None, min_length=1, max_length=500)
    api_key: str | None = Field(default=None, max_length=500)
    clear_api_key: bool = False
    max_concurrency: int | None = Field(default=None, ge=1, le=256)
    enabled: bool | None = None


PROMPT_FORMATS = ("chat", "transcript")
PromptFormat = Literal["chat", "transcript"]


class ModelPublic(SQLModel):
    id: int
    endpoint_id: int
    name: str
    parameter_count: int | None
    context_length: int | None
    available: bool
    prompt_format: str | None
    detected_prompt_format: str | None
    effective_prompt_format: str


class ModelUpdate(SQLModel):
    """Details an admin enters when the server does not report them, and the prompt format.

    ``prompt_format``: "chat" or "transcript" fixes it; "auto" goes back to what was detected.
    """

    parameter_count: int | None = Field(default=None, gt=0, le=10**13)
    context_length: int | None = Field(default=None, gt=0, le=10**8)
    prompt_format: Literal["chat", "transcript", "auto"] | None = None


class ModelEndpointPublic(SQLModel):
    """An endpoint as the API shows it: never its API key, only whether it has one."""

    id: int
    name: str
    base_url: str
    has_api_key: bool
    max_concurrency: int
    enabled: bool
    is_embedded: bool
    health_ok: bool | None
    health_latency_ms: float | None
    health_error: str | None
    health_checked_at: datetime | None
    models: list[ModelPublic] = []
