"""Client for OpenAI-compatible model servers: streaming chat, model listing, health checks."""

from app.llm.client import (
    Finish,
    HealthResult,
    ModelHTTPClient,
    ModelInfo,
    TextDelta,
    Timeouts,
    check_health,
    list_models,
    stream_chat,
    validate_base_url,
)
from app.llm.errors import ErrorKind, ModelError

__all__ = [
    "ErrorKind",
    "Finish",
    "HealthResult",
    "ModelError",
    "ModelHTTPClient",
    "ModelInfo",
    "TextDelta",
    "Timeouts",
    "check_health",
    "list_models",
    "stream_chat",
    "validate_base_url",
]
