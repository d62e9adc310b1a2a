"""``switchboard model test``: one short chat against an endpoint, timed."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlmodel import Session, col, select

from app.config import Settings
from app.db import get_engine
from app.llm.client import Finish, Timeouts, list_models, stream_chat, validate_base_url
from app.llm.errors import ModelError
from app.models import Model, ModelEndpoint
from app.services import ServiceError


@dataclass(frozen=True)
class Target:
    base_url: str
    api_key: str | None
    model: str


@dataclass(frozen=True)
class ChatReport:
    text: str
    first_token_s: float
    tokens_per_s: float | None
    completion_tokens: int | None
    finish_reason: str


def _first_listed_model(base_url: str, api_key: str | None) -> str:
    try:
        models = list_models(base_url=base_url, api_key=api_key, timeout=10)
    except ModelError as exc:
        raise ServiceError(exc.message) from None
    if not models:
        raise ServiceError(f"{base_url} lists no models; name one with --model.")
    return models[0].id


def resolve_target(
    settings: Settings, endpoint: str, *, model: str | None, api_key: str | None
) -> Target:
    """A base URL given as is, or a registered endpoint found by name or id."""
    if "://" in endpoint:
        try:
            base_url = validate_base_url(endpoint)
        except ModelError as exc:
            raise ServiceError(exc.message) from None
        return Target(base_url, api_key, model or _first_listed_model(base_url, api_key))
    with Session(get_engine()) as session:
        query = select(ModelEndpoint).where(ModelEndpoint.name == endpoint)
        if endpoint.isdigit():
            query = select(ModelEndpoint).where(ModelEndpoint.id == int(endpoint))
        found = session.exec(query).first()
        if found is None:
            raise ServiceError(
                f"No endpoint named {endpoint!r}; give a registered name or id, or a base URL."
            )
        if model is None:
            known = session.exec(
                select(Model.name)
                .where(Model.endpoint_id == found.id, col(Model.available))
                .order_by(col(Model.id))
            ).first()
            model = known or _first_listed_model(found.base_url, found.api_key)
        return Target(found.base_url, found.api_key, model)


def run_test_chat(
    settings: Settings, target: Target, *, prompt: str, max_tokens: int
) -> ChatReport:
    """Stream one reply and measure it."""
    timeouts = Timeouts(
        connect=settings.model_connect_timeout,
        first_token=settings.model_first_token_timeout,
        between_tokens=settings.model_between_tokens_timeout,
    )
    started = time.perf_counter()
    first_token_at: float | None = None
    parts: list[str] = []
    finish: Finish | None = None
    try:
        for event in stream_chat(
            base_url=target.base_url,
            api_key=target.api_key,
            model=target.model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=0.0,
            timeouts=timeouts,
        ):
            if isinstance(event, Finish):
                finish = event
            else:
                first_token_at = first_token_at or time.perf_counter()
                parts.append(event.text)
    except ModelError as exc:
        raise ServiceError(exc.message) from None
    ended = time.perf_counter()
    assert finish is not None  # stream_chat always ends with a Finish or raises
    first = (first_token_at or ended) - started
    decode_s = ended - (first_token_at or ended)
    tokens = finish.completion_tokens
    # The first token is counted in the time to first token, so it is left out of the rate.
    rate = (tokens - 1) / decode_s if tokens and tokens > 1 and decode_s > 0 else None
    return ChatReport(
        text="".join(parts),
        first_token_s=first,
        tokens_per_s=rate,
        completion_tokens=tokens,
        finish_reason=finish.reason,
    )
