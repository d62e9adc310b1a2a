"""The one exception the model client raises, and its kinds.

Every failure talking to a model server surfaces as a :class:`ModelError` whose ``kind``
says what went wrong and whose message a person can act on. The kinds, by when they happen::

    ModelError (.kind)
    ├── before the request is sent
    │   └── invalid_url         the base URL is not http(s)://host[:port][/path], or
    │                           carries credentials, a query or a fragment
    ├── connecting
    │   └── unreachable         refused, DNS failure, TLS failure, no connection in time
    ├── the server answered with an error
    │   ├── redirect            3xx: redirects are never followed
    │   ├── unauthorized        401 / 403: missing or wrong API key
    │   ├── model_not_found     404, or an error saying the model does not exist
    │   ├── context_too_long    an error saying the prompt exceeds the context window
    │   │                       (llama-server: 400 exceed_context_size_error)
    │   └── server_error        any other non-2xx answer, an error event inside the stream,
    │                           or a connection closed before any answer
    └── while streaming
        ├── timeout             no first token in time, or too long a gap between tokens
        ├── incomplete_stream   the stream ended or dropped without a finish reason
        └── bad_response        not JSON, or not shaped like an OpenAI-compatible answer

Messages never contain the API key.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    INVALID_URL = "invalid_url"
    UNREACHABLE = "unreachable"
    REDIRECT = "redirect"
    UNAUTHORIZED = "unauthorized"
    MODEL_NOT_FOUND = "model_not_found"
    CONTEXT_TOO_LONG = "context_too_long"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    INCOMPLETE_STREAM = "incomplete_stream"
    BAD_RESPONSE = "bad_response"


class ModelError(Exception):
    """A failure talking to a model server; ``str(error)`` is meant for people."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __repr__(self) -> str:
        return f"ModelError({self.kind.value!r}, {self.message!r})"
