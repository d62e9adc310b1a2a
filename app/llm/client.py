"""Talk to OpenAI-compatible model servers (llama-server, Ollama, vLLM, …) over httpx.

``stream_chat`` streams ``POST {base_url}/chat/completions`` (and ``stream_completion``
``POST {base_url}/completions``, for base models) as :class:`TextDelta` events followed by
exactly one :class:`Finish`; every failure is a :class:`~app.llm.errors.ModelError`.

Timeouts. httpx's read timeout cannot express "first token within N s, then no gap longer
than M s": httpcore reads ``timeout["read"]`` once when it starts reading the headers and once
when it starts the body, and hands that fixed value to every ``recv`` — an idle timeout per
read that any keep-alive comment resets, and that cannot change phase in the middle of a body.
So the client carries a deadline instead: every connect, TLS handshake, socket read and write
goes through :class:`_DeadlineBackend` / :class:`_DeadlineStream`, which shorten httpx's
timeout to what is left of the deadline of the current step (a context variable, set only
around our own I/O, never while the generator is suspended). Nothing runs on another thread
and no socket is shut down from under a blocked ``recv``.

Closing the generator (``close()``, garbage collection, an exception in the caller) closes the
response before the body is complete, and httpcore then closes the connection rather than
pooling it; the model server sees the disconnect and frees its slot.
"""

from __future__ import annotations

import functools
import json
import ssl
import time
import unicodedata
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpcore
import httpx

from app.llm.errors import ErrorKind, ModelError

__all__ = [
    "Finish",
    "HealthResult",
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

_SNIPPET_CHARS = 200
_ERROR_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed to connect, to the first token, and between two chunks after it; and
    ``stop_at``, a ``time.monotonic()`` instant past which no step of the request waits (the
    caller's own time limit: it then ends with a TIMEOUT, whatever the other deadlines say)."""

    connect: float = 5.0
    first_token: float = 60.0
    between_tokens: float = 30.0
    stop_at: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "first_token", "between_tokens"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Timeouts.{name} must be a positive number of seconds")


@dataclass(frozen=True, slots=True)  # slots: one is made for every read of an answer
class TextDelta:
    """New text: that of every chunk one read of the stream brought (one token from a model
    that keeps up with its reader, many from one that outruns it)."""

    text: str


@dataclass(frozen=True)
class Finish:
    reason: str
    prompt_tokens: int | None
    completion_tokens: int | None


@dataclass(frozen=True)
class ModelInfo:
    id: str
    context_length: int | None
    parameter_count: int | None
    owned_by: str | None = None  # "llamacpp" from llama-server


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    latency_ms: float | None
    error: str | None


# --- deadlines -------------------------------------------------------------------------------

_active_deadline: ContextVar[float | None] = ContextVar("llm_active_deadline", default=None)


def _within_deadline(timeout: float | None, expired: type[Exception]) -> float | None:
    deadline = _active_deadline.get()
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise expired("deadline passed")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _within_deadline(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _within_deadline(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _within_deadline(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _within_deadline(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _within_deadline(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes milliseconds; one context serves every client in the process.
    return httpx.create_ssl_context()


class ModelHTTPClient(httpx.Client):
    """An httpx client whose reads and writes honour the deadlines of this module.

    Pass one to :func:`stream_chat` to reuse connections; a plain ``httpx.Client`` would ignore
    the first-token and between-token deadlines. Redirects are never followed and proxy or
    ``.netrc`` settings from the environment are ignored.
    """

    def __init__(self, *, connect_timeout: float = 5.0) -> None:
        ssl_context = _ssl_context()
        transport = httpx.HTTPTransport(verify=ssl_context, trust_env=False)
        # httpx (<= 0.28) has no public way to give HTTPTransport a network backend
        # (encode/httpx#3749), so swap in a pool that has ours.
        if not isinstance(getattr(transport, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError("This httpx version is not supported by app.llm.client")
        transport._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, network_backend=_DeadlineBackend()
        )
        super().__init__(
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(60.0, connect=connect_timeout),
        )


class _CallIO:
    """:meth:`_Call.io` (a class, not ``contextlib.contextmanager``: a stream enters it on
    every read, thousands of times an answer)."""

    __slots__ = ("_call", "_token")

    def __init__(self, call: _Call) -> None:
        self._call = call

    def __enter__(self) -> None:
        self._token = _active_deadline.set(self._call.deadline)

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        _active_deadline.reset(self._token)
        if isinstance(exc, httpx.HTTPError):
            raise self._call._transport_error(exc) from exc


class _Call:
    """One request: where it goes, its deadline, and how to say that the deadline passed."""

    def __init__(
        self, *, base: str, api_key: str | None, model: str | None, stop_at: float | None = None
    ) -> None:
        self.base = base
        self.api_key = api_key
        self.model = model
        self.stop_at = stop_at
        self.answered = False
        self.deadline = 0.0
        self.timeout_message = ""

    def expect_within(self, seconds: float, message: str) -> None:
        self.deadline = time.monotonic() + seconds
        self.timeout_message = message
        if self.stop_at is not None and self.stop_at < self.deadline:
            self.deadline = self.stop_at
            self.timeout_message = f"The request to model '{self.model}' ran out of time"

    def snippet(self, text: str) -> str:
        """Server-provided text, shortened and scrubbed of the API key."""
        if self.api_key:
            text = text.replace(self.api_key, "***")
        # Control and format characters (terminal escapes, bidi overrides) never reach a page
        # or a log line.
        text = "".join(
            ch for ch in text if ch.isspace() or not unicodedata.category(ch).startswith("C")
        )
        text = " ".join(text.split())
        return text[:_SNIPPET_CHARS] + ("…" if len(text) > _SNIPPET_CHARS else "")

    def io(self) -> _CallIO:
        """Run network I/O under the current deadline, turning httpx failures into ModelError."""
        return _CallIO(self)

    def _transport_error(self, exc: httpx.HTTPError) -> ModelError:
        at = f"Model server at {self.base}"
        if isinstance(exc, httpx.ConnectTimeout) and time.monotonic() >= self.deadline:
            return ModelError(ErrorKind.TIMEOUT, self.timeout_message)
        if isinstance(exc, httpx.ConnectTimeout):
            return ModelError(ErrorKind.UNREACHABLE, f"{at} is unreachable: no connection in time")
        if isinstance(exc, httpx.ConnectError):
            return ModelError(ErrorKind.UNREACHABLE, f"{at} is unreachable: {_reason(exc)}")
        if isinstance(exc, httpx.PoolTimeout):
            return ModelError(ErrorKind.TIMEOUT, f"No free connection to {self.base} in time")
        if isinstance(exc, httpx.TimeoutException):
            return ModelError(ErrorKind.TIMEOUT, self.timeout_message)
        if isinstance(exc, httpx.DecodingError):
            return ModelError(ErrorKind.BAD_RESPONSE, f"{at} sent a body that cannot be decoded")
        if isinstance(exc, httpx.TransportError) and self.answered:
            return ModelError(
                ErrorKind.INCOMPLETE_STREAM,
                f"The model stream ended without a finish: {at} closed the connection mid-stream",
            )
        if isinstance(exc, httpx.TransportError):
            return ModelError(
                ErrorKind.SERVER_ERROR, f"{at} closed the connection without answering"
            )
        return ModelError(ErrorKind.SERVER_ERROR, f"{at} failed: {_reason(exc)}")

    def answer_error(self, status: int | None, body: str) -> ModelError:
        """The ModelError for an error answer (``status`` None: an error event in the stream)."""
        message, type_, code = _error_fields(body)
        said = self.snippet(message or body)
        if status in (401, 403) or code in (401, 403):
            return self._unauthorized(status or code, said)
        if _mentions_context(message, type_, code):
            return ModelError(
                ErrorKind.CONTEXT_TOO_LONG,
                f"The conversation is too long for the model's context ({said})",
            )
        if self.model is not None and (status == 404 or _mentions_missing_model(message, code)):
            return ModelError(
                ErrorKind.MODEL_NOT_FOUND,
                f"Model '{self.model}' is not served by {self.base} ({said})",
            )
        if status is None:
            return ModelError(ErrorKind.SERVER_ERROR, f"Model server reported an error: {said}")
        if status == 404:  # listing: the path itself is missing
            return ModelError(
                ErrorKind.SERVER_ERROR,
                f"Model server answered 404 for {self.base}/models: {said} "
                "(an OpenAI-compatible base URL usually ends in /v1)",
            )
        return ModelError(
            ErrorKind.SERVER_ERROR, f"Model server answered {status}: {self.snippet(body)}"
        )

    def _unauthorized(self, status: object, said: str) -> ModelError:
        if not self.api_key:
            text = f"Model server at {self.base} requires an API key (HTTP {status}): {said}"
        else:
            text = f"Model server at {self.base} rejected the API key (HTTP {status}): {said}"
        return ModelError(ErrorKind.UNAUTHORIZED, text)


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused"
    # "[Errno -2] Name or service not known" reads better without the errno.
    return text.split("] ", 1)[1] if text.startswith("[Errno") and "] " in text else text


def _error_fields(body: str) -> tuple[str, str, str | int | None]:
    """(message, type, code) from the error shapes servers use, or ("", "", None)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return "", "", None
    if not isinstance(payload, dict):
        return "", "", None
    error = payload.get("error", payload)
    if isinstance(error, str):  # Ollama and LM Studio: {"error": "…"}
        return error, "", None
    if not isinstance(error, dict):
        return "", "", None
    message = error.get("message") or error.get("detail") or ""
    code = error.get("code")
    return (
        message if isinstance(message, str) else json.dumps(message),
        str(error.get("type") or ""),
        code if isinstance(code, str | int) and not isinstance(code, bool) else None,
    )


def _mentions_context(message: str, type_: str, code: str | int | None) -> bool:
    if type_ == "exceed_context_size_error" or code == "context_length_exceeded":
        return True
    text = message.lower()
    words = ("exceed", "too long", "too large", "maximum", "length", "size", "overflow")
    return "context" in text and any(word in text for word in words)


def _mentions_missing_model(message: str, code: str | int | None) -> bool:
    if code == "model_not_found":
        return True
    text = message.lower()
    phrases = ("not found", "does not exist", "no such model", "unknown model", "not served")
    return "model" in text and any(phrase in text for phrase in phrases)


# --- validation ------------------------------------------------------------------------------


def validate_base_url(url: str) -> str:
    """The base URL without its trailing slash, or ModelError(invalid_url).

    Messages never repeat the URL: it may carry a password.
    """
    candidate = url.strip()
    if not candidate:
        raise _invalid("The model server URL is empty.")
    if any(ch.isspace() or ord(ch) < 32 for ch in candidate):
        raise _invalid("The model server URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(candidate)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address
        raise _invalid("The model server URL cannot be parsed.") from None
    if parts.scheme.lower() not in ("http", "https"):
        scheme = f"'{parts.scheme}:'" if parts.scheme else "nothing"
        raise _invalid(f"The model server URL must start with http:// or https://, not {scheme}.")
    if "@" in parts.netloc:
        raise _invalid(
            "The model server URL must not contain a user name or password; "
            "put the API key in the API key field instead."
        )
    if not parts.hostname:
        raise _invalid("The model server URL has no host name.")
    try:
        _ = parts.port  # urlsplit only checks the port when it is read
    except ValueError:
        raise _invalid("The model server URL has an invalid port.") from None
    if parts.query or parts.fragment or "?" in candidate or "#" in candidate:
        raise _invalid("The model server URL must not have a query (?…) or a fragment (#…).")
    return candidate.rstrip("/")


def _invalid(message: str) -> ModelError:
    return ModelError(ErrorKind.INVALID_URL, message)


def _headers(api_key: str | None, *, accept: str) -> dict[str, str]:
    # identity: a compressing proxy or server could otherwise hold tokens back in its buffer.
    headers = {"Accept": accept, "Accept-Encoding": "identity"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


# --- streaming -------------------------------------------------------------------------------


def stream_chat(
    *,
    base_url: str,
    api_key: str | None,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    max_tokens: int,
    temperature: float,
    timeouts: Timeouts,
    extra: Mapping[str, Any] | None = None,
    client: ModelHTTPClient | None = None,
) -> Generator[TextDelta | Finish, None, None]:
    """Stream a chat completion: TextDelta events, then exactly one Finish.

    ``extra`` adds request fields (llama-server's ``id_slot``, ``cache_prompt``, …); it never
    overrides the named arguments or the streaming fields. Nothing is sent until the first
    ``next()``; ``close()`` (or dropping the generator) closes the connection at once, which is
    how a cancelled run frees the server's slot. Raises ModelError only.
    """
    body = {
        **(extra or {}),
        "model": model,
        "messages": [dict(message) for message in messages],
        "max_tokens": max_tokens,
        "temperature": temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return _stream_post(
        base_url=base_url, api_key=api_key, model=model, path="/chat/completions", body=body,
        timeouts=timeouts, client=client,
    )  # fmt: skip


def stream_completion(
    *,
    base_url: str,
    api_key: str | None,
    model: str,
    prompt: str,
    stop: Sequence[str],
    max_tokens: int,
    temperature: float,
    timeouts: Timeouts,
    extra: Mapping[str, Any] | None = None,
    client: ModelHTTPClient | None = None,
) -> Generator[TextDelta | Finish, None, None]:
    """Stream a plain completion of ``prompt`` (``POST /completions``), ending at ``stop``.

    For base models, which continue a pattern rather than follow a chat template. Same events,
    deadlines and errors as :func:`stream_chat`.
    """
    body = {
        **(extra or {}),
        "model": model,
        "prompt": prompt,
        "stop": list(stop),
        "max_tokens": max_tokens,
        "temperature": temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return _stream_post(
        base_url=base_url, api_key=api_key, model=model, path="/completions", body=body,
        timeouts=timeouts, client=client,
    )  # fmt: skip


def _stream_post(
    *,
    base_url: str,
    api_key: str | None,
    model: str,
    path: str,
    body: Mapping[str, Any],
    timeouts: Timeouts,
    client: ModelHTTPClient | None,
) -> Generator[TextDelta | Finish, None, None]:
    base = validate_base_url(base_url)
    http = client if client is not None else ModelHTTPClient(connect_timeout=timeouts.connect)
    call = _Call(base=base, api_key=api_key, model=model, stop_at=timeouts.stop_at)
    call.expect_within(
        timeouts.first_token,
        f"No first token within {timeouts.first_token:g} s from model '{model}' at {base}",
    )
    try:
        request = http.build_request(
            "POST",
            f"{base}{path}",
            json=body,
            headers=_headers(api_key, accept="text/event-stream"),
            # Reads and writes are bounded by the deadlines instead.
            timeout=httpx.Timeout(None, connect=timeouts.connect, pool=timeouts.connect),
        )
        with call.io():
            response = http.send(request, stream=True, follow_redirects=False)
        try:
            call.answered = True
            _check_answer(call, response)
            yield from _stream_events(call, response, timeouts)
        finally:
            response.close()
    finally:
        if client is None:
            http.close()


def _check_answer(call: _Call, response: httpx.Response) -> None:
    """Raise unless ``response`` is the start of a stream."""
    status = response.status_code
    _refuse_redirect(call, response)
    content_type = response.headers.get("content-type", "").lower()
    if 200 <= status < 300 and not content_type.startswith("application/json"):
        return
    body = _read_capped(call, response)
    if 200 <= status < 300:  # JSON where a stream was asked for, e.g. LM Studio's {"error": …}
        if _is_error_payload(body):
            raise call.answer_error(None, body)
        raise ModelError(
            ErrorKind.BAD_RESPONSE,
            f"Model server at {call.base} answered with JSON instead of a stream: "
            f"{call.snippet(body)}",
        )
    raise call.answer_error(status, body)


def _refuse_redirect(call: _Call, response: httpx.Response) -> None:
    if 300 <= response.status_code < 400:
        where = call.snippet(response.headers.get("location") or "another address")
        raise ModelError(
            ErrorKind.REDIRECT, f"Model server redirected to {where}; redirects are not followed"
        )


def _is_error_payload(body: str) -> bool:
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    return isinstance(payload, dict) and payload.get("error") is not None


def _read_capped(call: _Call, response: httpx.Response) -> str:
    chunks: list[bytes] = []
    size = 0
    with call.io():
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= _ERROR_BODY_LIMIT:
                break
    return b"".join(chunks)[:_ERROR_BODY_LIMIT].decode("utf-8", errors="replace")


@dataclass
class _Progress:
    """What the stream has said so far."""

    started: bool = False
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    done: bool = False


def _stream_events(
    call: _Call, response: httpx.Response, timeouts: Timeouts
) -> Iterator[TextDelta | Finish]:
    between_message = (
        f"No new token for {timeouts.between_tokens:g} s from model '{call.model}' at {call.base}"
    )
    reads = _sse_lines(call, response)
    parser = _SseParser()
    progress = _Progress()
    while not progress.done:
        try:
            lines = next(reads, None)
        except ModelError:
            # Some servers keep the connection open after the finish chunk; it still counts.
            if progress.finish_reason is None:
                raise
            break
        # The text of every chunk one read brought goes out as one delta: a reader that falls
        # behind a fast server then pays the caller's per-delta work (loop guard, publishing)
        # once a read, not once a token. A slow model brings one chunk a read.
        texts: list[str] = []
        failure: ModelError | None = None
        applied = False
        for line in lines if lines is not None else (None,):
            event = parser.feed(line) if line is not None else parser.flush()
            if event is None:
                continue
            try:
                texts += _apply_event(call, event, progress)
            except ModelError as exc:
                failure = exc  # the text before it still goes out first
                break
            applied = True
            if progress.done:
                break
        if applied and progress.started:  # from the first token on, every chunk restarts the clock
            call.expect_within(timeouts.between_tokens, between_message)
        if texts:
            yield TextDelta("".join(texts))
        if failure is not None:
            raise failure
        if lines is None:
            break
    if progress.finish_reason is None:
        raise ModelError(ErrorKind.INCOMPLETE_STREAM, "The model stream ended without a finish")
    yield Finish(progress.finish_reason, progress.prompt_tokens, progress.completion_tokens)


def _sse_lines(call: _Call, response: httpx.Response) -> Iterator[list[str]]:
    """The body's lines, the ones each read completes together (a read often brings many: the
    caller loops over them, not over one generator step a line), split as an event stream is
    (CRLF, LF or CR; not at the other line breaks of ``str.splitlines``, which a model's text
    may hold) and decoded from UTF-8 once whole. Only the reads run under the call's
    deadline."""
    chunks = response.iter_bytes()
    pending = b""
    while True:
        with call.io():
            chunk = next(chunks, None)
        if chunk is None:
            break
        pending += chunk
        if b"\r" in pending:
            # A CR at the end may be the first half of a CRLF: it waits for the next read.
            held = pending.endswith(b"\r")
            body = pending[:-1] if held else pending
            pending = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if held else b"")
        end = pending.rfind(b"\n")
        if end < 0:
            continue
        # A LF is never part of a longer UTF-8 sequence: decoding the whole lines at once is
        # decoding each.
        complete, pending = pending[:end], pending[end + 1 :]
        yield complete.decode("utf-8", "replace").split("\n")
    if pending:
        yield [pending.removesuffix(b"\r").decode("utf-8", "replace")]


class _SseEvent(NamedTuple):
    name: str
    data: str


class _SseParser:
    """Server-sent events, line by line, as the HTML standard interprets an event stream."""

    def __init__(self) -> None:
        self._name = ""
        self._data: list[str] = []

    def feed(self, line: str) -> _SseEvent | None:
        if line.startswith("data:"):  # nearly every line; the rest are handled below
            self._data.append(line[6:] if line.startswith("data: ") else line[5:])
            return None
        if not line:
            return self.flush()
        if line.startswith(":"):  # comment, used as keep-alive
            return None
        if line.startswith("{"):
            # Ollama writes mid-stream errors as bare JSON without "data: ".
            self._data.append(line)
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._name = value
        elif field == "error":  # older llama-server: "error: {…}"
            self._name = "error"
            self._data.append(value)
        return None

    def flush(self) -> _SseEvent | None:
        event = _SseEvent(self._name, "\n".join(self._data)) if self._data else None
        self._name = ""
        self._data = []
        return event


def _apply_event(call: _Call, event: _SseEvent, progress: _Progress) -> list[str]:
    """Fold one event into ``progress``; return the text it carries."""
    if event.data.strip() == "[DONE]":
        progress.done = True
        return []
    try:
        chunk = json.loads(event.data)
    except ValueError:
        raise ModelError(
            ErrorKind.BAD_RESPONSE,
            f"Model server sent a chunk that is not JSON: {call.snippet(event.data)}",
        ) from None
    if not isinstance(chunk, dict):
        raise ModelError(
            ErrorKind.BAD_RESPONSE,
            f"Model server sent a chunk that is not a JSON object: {call.snippet(event.data)}",
        )
    if event.name == "error" or chunk.get("error") is not None:
        raise call.answer_error(None, event.data)
    _apply_usage(chunk.get("usage"), progress)
    choices = chunk.get("choices")
    # Usage-only chunks have "choices": []; only the first choice is asked for (n = 1).
    return _apply_choice(choices[0], progress) if isinstance(choices, list) and choices else []


def _apply_choice(choice: object, progress: _Progress) -> list[str]:
    if not isinstance(choice, dict):
        return []
    delta = choice.get("delta")
    delta = delta if isinstance(delta, dict) else {}
    # Chat chunks carry delta.content; plain completions carry the text itself.
    content = delta.get("content", choice.get("text"))
    texts = [content] if isinstance(content, str) and content else []
    # Reasoning and tool-call deltas are not text, but they prove the model is generating.
    if texts or any(delta.get(key) for key in ("reasoning_content", "reasoning", "tool_calls")):
        progress.started = True
    reason = choice.get("finish_reason")
    if isinstance(reason, str) and reason:
        progress.finish_reason = reason
        progress.started = True
    return texts


def _apply_usage(usage: object, progress: _Progress) -> None:
    if not isinstance(usage, dict):
        return
    progress.prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
    progress.completion_tokens = _int_or_none(usage.get("completion_tokens"))


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --- listing and health ----------------------------------------------------------------------


def list_models(*, base_url: str, api_key: str | None, timeout: float) -> list[ModelInfo]:
    """The models ``GET {base_url}/models`` lists, within ``timeout`` seconds in all."""
    base = validate_base_url(base_url)
    call = _Call(base=base, api_key=api_key, model=None)
    with ModelHTTPClient(connect_timeout=timeout) as http:
        call.expect_within(timeout, f"Model server at {base} did not answer within {timeout:g} s")
        with call.io():
            response = http.get(
                f"{base}/models", headers=_headers(api_key, accept="application/json")
            )
    _refuse_redirect(call, response)
    if not 200 <= response.status_code < 300:
        raise call.answer_error(response.status_code, response.text[:_ERROR_BODY_LIMIT])
    try:
        payload = response.json()
    except ValueError:
        payload = None
    entries = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(entries, list):
        raise ModelError(
            ErrorKind.BAD_RESPONSE,
            f"Model server at {base} did not answer /models with a model list: "
            f"{call.snippet(response.text)}",
        )
    return [info for entry in entries if (info := _model_info(entry)) is not None]


def _model_info(entry: object) -> ModelInfo | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        return None
    meta = entry.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    return ModelInfo(
        id=entry["id"],
        # vLLM: max_model_len; LM Studio / OpenRouter style: *context_length;
        # llama-server: meta.n_ctx (if reported) or the training context meta.n_ctx_train.
        context_length=_first_count(
            entry.get("max_model_len"),
            entry.get("context_length"),
            entry.get("max_context_length"),
            meta.get("n_ctx"),
            meta.get("n_ctx_train"),
        ),
        parameter_count=_first_count(meta.get("n_params"), entry.get("parameter_count")),
        owned_by=str(entry["owned_by"]) if isinstance(entry.get("owned_by"), str) else None,
    )


def _first_count(*values: object) -> int | None:
    for value in values:
        number = _int_or_none(value)
        if number is not None and number > 0:
            return number
    return None


@dataclass(frozen=True)
class PromptFacts:
    """What a server says about how one model wants to be prompted (None: it did not say)."""

    prompt_format: str | None  # "chat" (has a chat template) or "transcript" (a base model)
    parameter_count: int | None = None


# Ollama's template for models without one: the prompt passed through as it is.
_BARE_TEMPLATES = {"", "{{ .Prompt }}", "{{.Prompt}}"}


def probe_prompt_format(
    *, base_url: str, api_key: str | None, model: str, server_kind: str, timeout: float
) -> PromptFacts:
    """Ask the server whether ``model`` has a chat template; never raises.

    llama-server: ``GET /props`` reports the loaded model's ``chat_template`` (empty for a GGUF
    without one). Ollama: ``POST /api/show`` reports its ``template`` and, in ``model_info``,
    ``general.parameter_count``. Anything else, or no answer in time: nothing is known.
    """
    try:
        base = validate_base_url(base_url)
    except ModelError:
        return PromptFacts(None)
    root = base.removesuffix("/v1")
    call = _Call(base=base, api_key=api_key, model=model)
    headers = _headers(api_key, accept="application/json")
    try:
        with ModelHTTPClient(connect_timeout=timeout) as http:
            call.expect_within(timeout, "no answer in time")
            with call.io():
                if server_kind == "llama.cpp":
                    response = http.get(f"{root}/props", headers=headers)
                else:
                    response = http.post(f"{root}/api/show", json={"model": model}, headers=headers)
                payload = response.json() if response.status_code == 200 else None
    except (ModelError, ValueError):
        return PromptFacts(None)
    if not isinstance(payload, dict):
        return PromptFacts(None)
    if server_kind == "llama.cpp":
        template = payload.get("chat_template")
        if not isinstance(template, str):
            return PromptFacts(None)
        return PromptFacts("chat" if template.strip() else "transcript")
    template = payload.get("template")
    info = payload.get("model_info")
    count = _first_count(info.get("general.parameter_count")) if isinstance(info, dict) else None
    if not isinstance(template, str):
        return PromptFacts(None, count)
    bare = template.strip() in _BARE_TEMPLATES
    return PromptFacts("transcript" if bare else "chat", count)


def check_health(*, base_url: str, api_key: str | None, timeout: float) -> HealthResult:
    """Whether the server answers ``GET /models`` (every OpenAI-compatible server has it)."""
    started = time.monotonic()
    try:
        list_models(base_url=base_url, api_key=api_key, timeout=timeout)
    except ModelError as exc:
        return HealthResult(ok=False, latency_ms=None, error=str(exc))
    return HealthResult(ok=True, latency_ms=(time.monotonic() - started) * 1000, error=None)
