"""Model servers (OpenAI-compatible endpoints) and the models they serve."""

from __future__ import annotations

from datetime import datetime

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
    discovered_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
