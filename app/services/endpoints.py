"""Model endpoints: registering model servers, checking their health, discovering models.

Only admins reach these (routes use ``AdminUser``). A check is one ``GET /v1/models``: it
proves the server answers and lists what it serves, so health and discovery cost one request,
plus one short probe per model for its prompt format (llama-server's ``/props``, Ollama's
``/api/show``): a model without a chat template is a base model, prompted as a transcript.
"""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlsplit

from sqlmodel import Session, col, select

from app.llm.client import ModelInfo, list_models, probe_prompt_format, validate_base_url
from app.llm.errors import ModelError
from app.models import Model, ModelEndpoint, User
from app.models.common import utcnow
from app.models.endpoints import PROMPT_FORMATS
from app.services import Conflict, NotFound, ServiceError

MAX_CONCURRENCY_LIMIT = 256
CHECK_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 2.0  # per model: its chat template and parameter count


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ServiceError("Give the endpoint a name.")
    if len(name) > 120:
        raise ServiceError("Keep the endpoint name under 120 characters.")
    return name


def _clean_url(base_url: str) -> str:
    try:
        return validate_base_url(base_url.strip())
    except ModelError as exc:
        raise ServiceError(exc.message) from None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _check_concurrency(max_concurrency: int) -> int:
    if not 1 <= max_concurrency <= MAX_CONCURRENCY_LIMIT:
        raise ServiceError(f"Concurrent runs must be between 1 and {MAX_CONCURRENCY_LIMIT}.")
    return max_concurrency


def _ensure_unique_name(session: Session, name: str, exclude_id: int | None = None) -> None:
    query = select(ModelEndpoint.id).where(ModelEndpoint.name == name)
    if exclude_id is not None:
        query = query.where(ModelEndpoint.id != exclude_id)
    if session.exec(query).first() is not None:
        raise Conflict(f"An endpoint named {name!r} exists already.")


def endpoint_for(*, session: Session, endpoint_id: int) -> ModelEndpoint:
    """An endpoint by id; NotFound when there is none."""
    endpoint = session.get(ModelEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound("No such endpoint.")
    return endpoint


def model_for(*, session: Session, model_id: int) -> Model:
    """A model by id; NotFound when there is none."""
    model = session.get(Model, model_id)
    if model is None:
        raise NotFound("No such model.")
    return model


def available_models(*, session: Session) -> list[tuple[Model, ModelEndpoint]]:
    """Models an agent may use: available, on an enabled endpoint; by endpoint and name."""
    return list(
        session.exec(
            select(Model, ModelEndpoint)
            .join(ModelEndpoint, col(ModelEndpoint.id) == col(Model.endpoint_id))
            .where(col(Model.available), col(ModelEndpoint.enabled))
            .order_by(col(ModelEndpoint.name), col(Model.name))
        ).all()
    )


def list_endpoints(*, session: Session) -> list[ModelEndpoint]:
    return list(session.exec(select(ModelEndpoint).order_by(col(ModelEndpoint.id))).all())


def models_of(*, session: Session, endpoint: ModelEndpoint) -> list[Model]:
    return list(
        session.exec(
            select(Model).where(Model.endpoint_id == endpoint.id).order_by(col(Model.name))
        ).all()
    )


def create_endpoint(
    *,
    session: Session,
    actor: User,
    name: str,
    base_url: str,
    api_key: str | None = None,
    max_concurrency: int = 4,
) -> ModelEndpoint:
    """Register an OpenAI-compatible server (admins only; the caller checks)."""
    if not actor.is_admin:
        raise ServiceError("Only admins manage model endpoints.")
    name = _clean_name(name)
    _ensure_unique_name(session, name)
    endpoint = ModelEndpoint(
        name=name,
        base_url=_clean_url(base_url),
        api_key=(api_key or "").strip() or None,
        max_concurrency=_check_concurrency(max_concurrency),
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def update_endpoint(
    *,
    session: Session,
    endpoint: ModelEndpoint,
    name: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    clear_api_key: bool = False,
    max_concurrency: int | None = None,
    enabled: bool | None = None,
) -> ModelEndpoint:
    """Change what is given; ``api_key=None`` keeps the stored key, ``clear_api_key`` drops it,
    and so does a new server (scheme, host or port) unless a key comes with it."""
    if name is not None:
        endpoint.name = _clean_name(name)
        _ensure_unique_name(session, endpoint.name, exclude_id=endpoint.id)
    if base_url is not None:
        new_url = _clean_url(base_url)
        if new_url != endpoint.base_url:
            if _origin(new_url) != _origin(endpoint.base_url):
                # The key was given for the old server: never send it to a new one unasked.
                clear_api_key = clear_api_key or not (api_key and api_key.strip())
            endpoint.base_url = new_url
            endpoint.health_ok = None
            endpoint.health_checked_at = None
    if clear_api_key:
        endpoint.api_key = None
    elif api_key is not None and api_key.strip():
        endpoint.api_key = api_key.strip()
    if max_concurrency is not None:
        endpoint.max_concurrency = _check_concurrency(max_concurrency)
    if enabled is not None:
        endpoint.enabled = enabled
    session.add(endpoint)
    session.flush()
    return endpoint


def delete_endpoint(*, session: Session, endpoint: ModelEndpoint) -> None:
    """Remove the endpoint and its models; agents bound to them keep existing, unbound."""
    session.delete(endpoint)
    session.flush()


def set_model_details(
    *,
    session: Session,
    model: Model,
    parameter_count: int | None = None,
    context_length: int | None = None,
    prompt_format: str | None = None,
) -> Model:
    """Record what the server could not tell (entered by an admin), or fix the prompt format
    ("chat", "transcript"; "auto" goes back to what discovery detected)."""
    if prompt_format is not None:
        if prompt_format not in (*PROMPT_FORMATS, "auto"):
            raise ServiceError("The prompt format is chat, transcript or auto.")
        model.prompt_format = None if prompt_format == "auto" else prompt_format
    if parameter_count is not None:
        if parameter_count <= 0:
            raise ServiceError("The parameter count must be a positive number.")
        model.parameter_count = parameter_count
    if context_length is not None:
        if context_length <= 0:
            raise ServiceError("The context length must be a positive number of tokens.")
        model.context_length = context_length
    session.add(model)
    session.flush()
    return model


def _merge_models(session: Session, endpoint: ModelEndpoint, found: list[ModelInfo]) -> None:
    """Add newly listed models, refresh known ones, mark vanished ones unavailable."""
    known = {model.name: model for model in models_of(session=session, endpoint=endpoint)}
    listed = {info.id for info in found}
    for info in found:
        model = known.get(info.id) or Model(endpoint_id=endpoint.id, name=info.id)  # type: ignore[arg-type]
        model.available = True
        # What the server reports wins over nothing, but never erases an admin's entry.
        model.parameter_count = info.parameter_count or model.parameter_count
        model.context_length = info.context_length or model.context_length
        model.discovered_at = utcnow()
        if endpoint.is_embedded:
            # The bundled Gemma 3 270M is a base model. Its GGUF has no chat template; the
            # embedded llama-server is started with llama.cpp's built-in Gemma one (so chat
            # still works for comparison), which makes /props report a template it lacks.
            model.detected_prompt_format = "transcript"
        elif model.id is None or model.detected_prompt_format is None:
            # Once per model: a template rarely changes, and health checks run every few seconds.
            facts = probe_prompt_format(
                base_url=endpoint.base_url, api_key=endpoint.api_key, model=info.id,
                server_kind=endpoint.server_kind, timeout=PROBE_TIMEOUT_S,
            )  # fmt: skip
            model.detected_prompt_format = facts.prompt_format or model.detected_prompt_format
            model.parameter_count = model.parameter_count or facts.parameter_count
        session.add(model)
    for name, model in known.items():
        if name not in listed:
            model.available = False
            session.add(model)


def check_endpoint(
    *, session: Session, endpoint: ModelEndpoint, timeout: float = CHECK_TIMEOUT_S
) -> ModelEndpoint:
    """Ask the server for its models now; record health, latency, error and the models."""
    started = time.perf_counter()
    try:
        found = list_models(base_url=endpoint.base_url, api_key=endpoint.api_key, timeout=timeout)
    except ModelError as exc:
        endpoint.health_ok = False
        endpoint.health_error = exc.message
        endpoint.health_latency_ms = None
    else:
        endpoint.health_ok = True
        endpoint.health_error = None
        endpoint.health_latency_ms = round((time.perf_counter() - started) * 1000, 1)
        # llama-server names itself here; it then gets its prompt-cache hints (cache_prompt).
        if any(info.owned_by == "llamacpp" for info in found):
            endpoint.server_kind = "llama.cpp"
        _merge_models(session, endpoint, found)
    endpoint.health_checked_at = utcnow()
    session.add(endpoint)
    session.flush()
    return endpoint


def check_stale_endpoints(*, session: Session, max_age_s: float, timeout: float) -> None:
    """Re-check enabled endpoints whose last check is older than ``max_age_s`` (cheap cache)."""
    cutoff = utcnow() - timedelta(seconds=max_age_s)
    for endpoint in list_endpoints(session=session):
        checked = endpoint.health_checked_at
        if endpoint.enabled and (checked is None or checked < cutoff):
            check_endpoint(session=session, endpoint=endpoint, timeout=timeout)


def register_endpoint(
    *,
    session: Session,
    name: str,
    base_url: str,
    api_key: str | None,
    max_concurrency: int,
    is_embedded: bool,
) -> ModelEndpoint:
    """Create or refresh an endpoint the install provides itself (embedded or from settings)."""
    endpoint = session.exec(select(ModelEndpoint).where(ModelEndpoint.name == name)).first()
    if endpoint is None:
        endpoint = ModelEndpoint(name=name, base_url=_clean_url(base_url))
    elif endpoint.base_url != _clean_url(base_url):
        endpoint.base_url = _clean_url(base_url)
        endpoint.health_checked_at = None
    endpoint.api_key = api_key
    endpoint.max_concurrency = max_concurrency
    endpoint.is_embedded = is_embedded
    session.add(endpoint)
    session.flush()
    return endpoint
