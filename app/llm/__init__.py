"""Client for OpenAI-compatible model servers: chat and completion streams, models, health."""

from app.llm.client import (
    Finish,
    HealthResult,
    ModelHTTPClient,
    ModelInfo,
    PromptFacts,
    TextDelta,
    Timeouts,
    check_health,
    list_models,
    probe_prompt_format,
    stream_chat,
    stream_completion,
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
    "PromptFacts",
    "TextDelta",
    "Timeouts",
    "check_health",
    "list_models",
    "probe_prompt_format",
    "stream_chat",
    "stream_completion",
    "validate_base_url",
]
