"""The model client against a scripted server on loopback: happy paths and injected faults."""

from __future__ import annotations

import gc
import time
from collections.abc import Generator, Iterable, Iterator
from typing import Any

import pytest

from app.llm import (
    ErrorKind,
    Finish,
    ModelError,
    ModelHTTPClient,
    ModelInfo,
    TextDelta,
    Timeouts,
    check_health,
    list_models,
    stream_chat,
    validate_base_url,
)
from tests.scripted_server import (
    DONE,
    Drop,
    Pause,
    Reply,
    ScriptedServer,
    Send,
    Stream,
    chunk,
    comment,
    sse,
    unused_port,
)

CHAT = "/v1/chat/completions"
MODELS = "/v1/models"
FAST = Timeouts(connect=1.0, first_token=0.5, between_tokens=0.5)
# Sanity bound on top of a configured timeout: generous, only there to catch a hang.
SLACK = 3.0
# How long a scripted stall lasts: far beyond every timeout under test.
STALL = 10.0


Events = Generator[TextDelta | Finish, None, None]


def chat(server: ScriptedServer, **overrides: Any) -> Events:
    arguments: dict[str, Any] = {
        "base_url": server.base_url,
        "api_key": None,
        "model": "tiny",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 16,
        "temperature": 0.0,
        "timeouts": FAST,
    }
    arguments.update(overrides)
    return stream_chat(**arguments)


def collect(events: Iterable[TextDelta | Finish]) -> tuple[str, Finish]:
    """The concatenated text and the Finish, checking the Finish comes once and last."""
    *deltas, last = list(events)
    assert all(isinstance(event, TextDelta) for event in deltas), deltas
    assert isinstance(last, Finish), last
    return "".join(delta.text for delta in deltas if isinstance(delta, TextDelta)), last


def fail(server: ScriptedServer, **overrides: Any) -> tuple[ModelError, str, float]:
    """The ModelError a stream ends in, the text before it, and the seconds it took."""
    texts: list[str] = []
    started = time.monotonic()
    with pytest.raises(ModelError) as caught:
        for event in chat(server, **overrides):
            assert isinstance(event, TextDelta), f"no Finish expected, got {event}"
            texts.append(event.text)
    return caught.value, "".join(texts), time.monotonic() - started


def tokens(*pieces: str, finish: str = "stop", usage: dict[str, int] | None = None) -> list[Send]:
    steps = [sse(chunk(piece)) for piece in pieces]
    return [*steps, sse(chunk(finish=finish, usage=usage)), DONE]


# --- happy paths -----------------------------------------------------------------------------


def test_deltas_concatenate_and_usage_comes_from_the_last_chunk(
    model_server: ScriptedServer,
) -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    model_server.on(CHAT, Stream(tokens("Hel", "lo", " wörld", usage=usage)))

    text, finish = collect(chat(model_server))

    assert text == "Hello wörld"
    assert finish == Finish(reason="stop", prompt_tokens=12, completion_tokens=3)


def test_the_chunks_one_read_brings_come_as_one_delta(model_server: ScriptedServer) -> None:
    # Fifty chunks in one write arrive in one read (or a few): the caller's per-delta work
    # (loop guard, publishing) is paid a read, not a token, when the server outruns it.
    words = [f"w{index} " for index in range(50)]
    burst = b"".join(sse(chunk(word)).data for word in words)
    model_server.on(CHAT, Stream([Send(burst), sse(chunk(finish="stop")), DONE]))

    *deltas, finish = list(chat(model_server))

    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == "".join(words)
    assert 1 <= len(deltas) < 5, [d for d in deltas if isinstance(d, TextDelta)]
    assert finish == Finish("stop", None, None)


def test_text_read_together_with_an_error_still_comes_before_it(
    model_server: ScriptedServer,
) -> None:
    error = b'data: {"error": {"code": 500, "message": "slot crashed"}}\n\n'
    burst = sse(chunk("one ")).data + sse(chunk("two")).data + error
    model_server.on(CHAT, Stream([Send(burst)]))

    failure, text, _ = fail(model_server)

    assert text == "one two"
    assert "slot crashed" in str(failure)


def test_usage_in_a_separate_chunk_with_empty_choices(model_server: ScriptedServer) -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 7}
    steps = [
        sse(chunk("abc")),
        sse(chunk(finish="length")),
        sse(chunk(empty_choices=True, usage=usage)),
        DONE,
    ]
    model_server.on(CHAT, Stream(steps))

    assert collect(chat(model_server)) == ("abc", Finish("length", 5, 7))


def test_missing_usage_is_none(model_server: ScriptedServer) -> None:
    model_server.on(CHAT, Stream(tokens("ok")))

    assert collect(chat(model_server)) == ("ok", Finish("stop", None, None))


def test_comments_blank_lines_crlf_and_multiline_events(model_server: ScriptedServer) -> None:
    steps = [
        comment(),
        Send(b"\n\n"),
        sse(chunk("one ")),
        comment("still working"),
        # One event split over two data lines (joined with a newline, still valid JSON).
        Send(b'data: {"choices": [{"index": 0,\ndata: "delta": {"content": "two "}}]}\n\n'),
        Send(b'data: {"choices": [{"index": 0, "delta": {"content": "three"}}]}\r\n\r\n'),
        sse(chunk(finish="stop")),
        DONE,
    ]
    model_server.on(CHAT, Stream(steps))

    assert collect(chat(model_server)) == ("one two three", Finish("stop", None, None))


def test_done_ends_the_stream_while_the_connection_stays_open(
    model_server: ScriptedServer,
) -> None:
    model_server.on(CHAT, Stream([*tokens("done"), Pause(STALL)]))
    patient = Timeouts(connect=1.0, first_token=5.0, between_tokens=5.0)

    started = time.monotonic()
    assert collect(chat(model_server, timeouts=patient)) == ("done", Finish("stop", None, None))

    assert time.monotonic() - started < patient.between_tokens
    assert model_server.only_request().disconnected.wait(SLACK)


def test_a_stream_that_ends_after_the_finish_without_done_is_complete(
    model_server: ScriptedServer,
) -> None:
    model_server.on(CHAT, Stream([sse(chunk("x")), sse(chunk(finish="stop"))]))

    assert collect(chat(model_server)) == ("x", Finish("stop", None, None))


def test_a_finish_counts_even_if_the_server_then_hangs(model_server: ScriptedServer) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 1}
    model_server.on(
        CHAT, Stream([sse(chunk("x")), sse(chunk(finish="stop", usage=usage)), Pause(STALL)])
    )

    started = time.monotonic()
    assert collect(chat(model_server)) == ("x", Finish("stop", 3, 1))

    assert time.monotonic() - started < FAST.between_tokens + SLACK


def test_a_slow_but_steady_stream_is_not_a_timeout(model_server: ScriptedServer) -> None:
    steps: list[Send | Pause] = []
    for piece in "abcdefgh":
        steps += [Pause(0.25), sse(chunk(piece))]
    model_server.on(CHAT, Stream([*steps, sse(chunk(finish="stop")), DONE]))
    # The whole stream (~2 s) outlasts both timeouts; no single gap does.
    timeouts = Timeouts(connect=1.0, first_token=1.0, between_tokens=0.75)

    assert collect(chat(model_server, timeouts=timeouts))[0] == "abcdefgh"


def test_request_body_has_streaming_fields_and_extra_fields(
    model_server: ScriptedServer,
) -> None:
    model_server.on(CHAT, Stream(tokens("ok")))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    extra = {"id_slot": 2, "cache_prompt": True, "stream": False, "model": "other"}

    collect(chat(model_server, model="qwen", messages=messages, max_tokens=64, extra=extra))

    request = model_server.only_request()
    assert (request.method, request.path) == ("POST", CHAT)
    assert request.json == {
        "id_slot": 2,
        "cache_prompt": True,
        "model": "qwen",
        "messages": messages,
        "max_tokens": 64,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_authorization_header_only_when_an_api_key_is_given(
    model_server: ScriptedServer,
) -> None:
    model_server.on(CHAT, Stream(tokens("ok")))

    collect(chat(model_server, api_key="sk-local-123"))
    collect(chat(model_server, api_key=None))

    with_key, without_key = model_server.received
    assert with_key.headers["authorization"] == "Bearer sk-local-123"
    assert "authorization" not in without_key.headers


def _close(events: Events) -> None:
    assert next(events) == TextDelta("Hi")
    events.close()


def _abandon(events: Events) -> None:
    for event in events:
        assert event == TextDelta("Hi")
        break
    del events
    gc.collect()


def _raise_in_caller(events: Events) -> None:
    def consume(stream: Iterator[TextDelta | Finish]) -> None:
        for _ in stream:
            raise RuntimeError("the caller gave up")

    with pytest.raises(RuntimeError):
        consume(events)
    del events
    gc.collect()


@pytest.mark.parametrize("stop", [_close, _abandon, _raise_in_caller])
def test_stopping_early_closes_the_connection(model_server: ScriptedServer, stop: Any) -> None:
    model_server.on(CHAT, Stream([sse(chunk("Hi")), Pause(STALL)]))
    patient = Timeouts(connect=1.0, first_token=STALL, between_tokens=STALL)

    stop(chat(model_server, timeouts=patient))

    assert model_server.only_request().disconnected.wait(SLACK)


def test_a_shared_client_is_disconnected_on_close_and_stays_usable(
    model_server: ScriptedServer,
) -> None:
    model_server.on(CHAT, Stream([sse(chunk("Hi")), Pause(STALL)]))
    patient = Timeouts(connect=1.0, first_token=STALL, between_tokens=STALL)
    with ModelHTTPClient(connect_timeout=1.0) as client:
        _close(chat(model_server, timeouts=patient, client=client))
        assert model_server.only_request().disconnected.wait(SLACK)

        model_server.on(CHAT, Stream(tokens("again")))
        assert collect(chat(model_server, client=client))[0] == "again"


# --- faults: timeouts --------------------------------------------------------------------------


def test_stall_before_the_first_token(model_server: ScriptedServer) -> None:
    model_server.on(CHAT, Stream([Pause(STALL)]))
    timeouts = Timeouts(connect=1.0, first_token=0.5, between_tokens=STALL)

    error, text, took = fail(model_server, timeouts=timeouts)

    assert error.kind is ErrorKind.TIMEOUT
    assert "No first token within 0.5 s" in str(error)
    assert text == ""
    assert took < timeouts.first_token + SLACK
    assert model_server.only_request().disconnected.wait(SLACK)


def test_stall_before_the_response_headers(model_server: ScriptedServer) -> None:
    # llama-server holds the headers back until the first result is ready.
    model_server.on(CHAT, Stream([*tokens("late")], headers_after=STALL))
    timeouts = Timeouts(connect=1.0, first_token=0.5, between_tokens=STALL)

    error, _, took = fail(model_server, timeouts=timeouts)

    assert error.kind is ErrorKind.TIMEOUT
    assert "first token" in str(error)
    assert took < timeouts.first_token + SLACK


def test_keepalives_do_not_count_as_a_first_token(model_server: ScriptedServer) -> None:
    # A read timeout alone would be reset by every comment and never fire.
    model_server.on(CHAT, Stream([comment(), Pause(0.1)] * int(STALL / 0.1)))
    timeouts = Timeouts(connect=1.0, first_token=0.5, between_tokens=STALL)

    error, _, took = fail(model_server, timeouts=timeouts)

    assert error.kind is ErrorKind.TIMEOUT
    assert took < timeouts.first_token + SLACK


def test_role_only_chunks_do_not_count_as_a_first_token(model_server: ScriptedServer) -> None:
    role = {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
    model_server.on(CHAT, Stream([sse(role), Pause(0.2)] * int(STALL / 0.2)))
    timeouts = Timeouts(connect=1.0, first_token=0.5, between_tokens=STALL)

    error, _, took = fail(model_server, timeouts=timeouts)

    assert error.kind is ErrorKind.TIMEOUT
    assert "first token" in str(error)
    assert took < timeouts.first_token + SLACK


def test_stall_mid_stream(model_server: ScriptedServer) -> None:
    model_server.on(CHAT, Stream([sse(chunk("a")), sse(chunk("b")), Pause(STALL)]))
    timeouts = Timeouts(connect=1.0, first_token=STALL, between_tokens=0.5)

    error, text, took = fail(model_server, timeouts=timeouts)

    assert error.kind is ErrorKind.TIMEOUT
    assert "No new token for 0.5 s" in str(error)
    assert text == "ab"
    assert took < timeouts.between_tokens + SLACK
    assert model_server.only_request().disconnected.wait(SLACK)


# --- faults: broken streams --------------------------------------------------------------------


def test_malformed_chunk(model_server: ScriptedServer) -> None:
    model_server.on(CHAT, Stream([sse(chunk("a")), Send(b"data: {not json\n\n"), *tokens()]))

    error, text, _ = fail(model_server)

    assert error.kind is ErrorKind.BAD_RESPONSE
    assert "{not json" in str(error)
    assert text == "a"


def test_connection_dropped_mid_stream(model_server: ScriptedServer) -> None:
    model_server.on(CHAT, Stream([sse(chunk("partial")), Drop()]))

    error, text, took = fail(model_server)

    assert error.kind is ErrorKind.INCOMPLETE_STREAM
    assert str(error).startswith("The model stream ended without a finish")
    assert text == "partial"
    assert took < FAST.between_tokens  # a drop is noticed at once, not by timing out


@pytest.mark.parametrize(
    "steps",
    [[sse(chunk("x")), DONE], [sse(chunk("x"))]],
    ids=["done-without-finish", "eof-without-finish"],
)
def test_stream_ending_without_a_finish(model_server: ScriptedServer, steps: list[Send]) -> None:
    model_server.on(CHAT, Stream(steps))

    error, text, _ = fail(model_server)

    assert error.kind is ErrorKind.INCOMPLETE_STREAM
    assert str(error) == "The model stream ended without a finish"
    assert text == "x"


@pytest.mark.parametrize(
    ("event", "kind", "says"),
    [
        (
            sse({"error": {"code": 500, "message": "slot was killed", "type": "server_error"}}),
            ErrorKind.SERVER_ERROR,
            "slot was killed",
        ),
        (
            sse({"error": {"message": "Context size has been exceeded.", "code": 500}}),
            ErrorKind.CONTEXT_TOO_LONG,
            "Context size has been exceeded.",
        ),
        # Ollama writes a mid-stream error as bare JSON, without "data: ".
        (
            Send(b'{"error":{"message":"model runner has unexpectedly stopped"}}\n'),
            ErrorKind.SERVER_ERROR,
            "model runner has unexpectedly stopped",
        ),
    ],
    ids=["llama-server", "context", "ollama-bare-json"],
)
def test_error_event_inside_the_stream(
    model_server: ScriptedServer, event: Send, kind: ErrorKind, says: str
) -> None:
    model_server.on(CHAT, Stream([sse(chunk("a")), event]))

    error, text, _ = fail(model_server)

    assert error.kind is kind
    assert says in str(error)
    assert text == "a"


# --- faults: error answers ---------------------------------------------------------------------


def test_http_500_with_a_body(model_server: ScriptedServer) -> None:
    body = "upstream exploded: CUDA error 700 " + "x" * 400
    model_server.on(CHAT, Reply(500, body))

    error, _, _ = fail(model_server)

    assert error.kind is ErrorKind.SERVER_ERROR
    assert str(error).startswith("Model server answered 500: upstream exploded: CUDA error 700")
    assert "x" * 200 not in str(error)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, {"error": {"message": 'model "nope" not found, try pulling it first'}}),
        (404, "Not Found"),
        (400, {"object": "error", "message": "The model `nope` does not exist.", "code": 404}),
        (400, {"error": {"message": "model not found", "type": "invalid_request_error"}}),
    ],
    ids=["ollama-404", "bare-404", "vllm-400", "llama-router-400"],
)
def test_model_not_found(model_server: ScriptedServer, status: int, body: object) -> None:
    model_server.on(CHAT, Reply(status, body))

    error, _, _ = fail(model_server, model="nope")

    assert error.kind is ErrorKind.MODEL_NOT_FOUND
    assert str(error).startswith(f"Model 'nope' is not served by {model_server.base_url}")


def test_redirect_is_not_followed(model_server: ScriptedServer) -> None:
    elsewhere = f"http://127.0.0.1:{model_server.port}/v2/chat/completions"
    model_server.on(CHAT, Reply(302, "", {"location": elsewhere}))
    model_server.on("/v2/chat/completions", Stream(tokens("followed")))

    error, _, _ = fail(model_server)

    assert error.kind is ErrorKind.REDIRECT
    assert str(error) == f"Model server redirected to {elsewhere}; redirects are not followed"
    assert [request.path for request in model_server.received] == [CHAT]


@pytest.mark.parametrize(
    ("status", "error_body"),
    [
        (
            400,
            {
                "code": 400,
                "message": "request (4390 tokens) exceeds the available context size "
                "(4096 tokens), try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 4390,
                "n_ctx": 4096,
            },
        ),
        (500, {"code": 500, "message": "Context size has been exceeded.", "type": "server_error"}),
        (
            400,
            {
                "message": "This model's maximum context length is 4096 tokens.",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            },
        ),
    ],
    ids=["llama-server-400", "llama-server-500", "openai"],
)
def test_context_too_long(
    model_server: ScriptedServer, status: int, error_body: dict[str, Any]
) -> None:
    model_server.on(CHAT, Reply(status, {"error": error_body}))

    error, _, _ = fail(model_server)

    assert error.kind is ErrorKind.CONTEXT_TOO_LONG
    assert str(error).startswith("The conversation is too long for the model's context (")
    assert error_body["message"][:30] in str(error)


def test_connection_refused() -> None:
    base_url = f"http://127.0.0.1:{unused_port()}/v1"

    with pytest.raises(ModelError) as caught:
        list(
            stream_chat(
                base_url=base_url,
                api_key="sk-secret",
                model="tiny",
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=8,
                temperature=0.0,
                timeouts=FAST,
            )
        )

    assert caught.value.kind is ErrorKind.UNREACHABLE
    assert str(caught.value) == f"Model server at {base_url} is unreachable: connection refused"


@pytest.mark.parametrize("status", [401, 403])
def test_unauthorized_never_repeats_the_key(model_server: ScriptedServer, status: int) -> None:
    body = {"error": {"code": status, "message": "Invalid API Key sk-secret-42", "type": "x"}}
    model_server.on(CHAT, Reply(status, body))

    error, _, _ = fail(model_server, api_key="sk-secret-42")

    assert error.kind is ErrorKind.UNAUTHORIZED
    assert "rejected the API key" in str(error)
    assert "sk-secret-42" not in str(error)
    assert "sk-secret-42" not in repr(error)


def test_unauthorized_without_a_key_says_one_is_needed(model_server: ScriptedServer) -> None:
    model_server.on(CHAT, Reply(401, {"error": {"message": "Invalid API Key"}}))

    error, _, _ = fail(model_server, api_key=None)

    assert error.kind is ErrorKind.UNAUTHORIZED
    assert "requires an API key" in str(error)


def test_json_error_with_status_200(model_server: ScriptedServer) -> None:
    model_server.on(CHAT, Reply(200, {"error": "Unexpected endpoint or method."}))

    error, _, _ = fail(model_server)

    assert error.kind is ErrorKind.SERVER_ERROR
    assert "Unexpected endpoint or method." in str(error)


def test_invalid_base_url_is_refused_before_connecting() -> None:
    with pytest.raises(ModelError) as caught:
        next(
            stream_chat(
                base_url="ftp://127.0.0.1/v1",
                api_key=None,
                model="tiny",
                messages=[],
                max_tokens=8,
                temperature=0.0,
                timeouts=FAST,
            )
        )

    assert caught.value.kind is ErrorKind.INVALID_URL


# --- list_models and check_health ------------------------------------------------------------


LLAMA_SERVER_MODELS = {
    "models": [{"name": "gemma-3-270m-Q4_K_M.gguf", "model": "gemma-3-270m-Q4_K_M.gguf"}],
    "object": "list",
    "data": [
        {
            "id": "gemma-3-270m-Q4_K_M.gguf",
            "object": "model",
            "created": 1764000000,
            "owned_by": "llamacpp",
            "meta": {
                "vocab_type": 1,
                "n_vocab": 262144,
                "n_ctx_train": 32768,
                "n_embd": 640,
                "n_params": 268098176,
                "size": 241410624,
            },
        }
    ],
}


def test_list_models_llama_server(model_server: ScriptedServer) -> None:
    model_server.on(MODELS, Reply(200, LLAMA_SERVER_MODELS))

    models = list_models(base_url=model_server.base_url + "/", api_key="sk-1", timeout=2.0)

    assert models == [ModelInfo("gemma-3-270m-Q4_K_M.gguf", 32768, 268098176, "llamacpp")]
    request = model_server.only_request()
    assert (request.method, request.path) == ("GET", MODELS)
    assert request.headers["authorization"] == "Bearer sk-1"


def test_list_models_several(model_server: ScriptedServer) -> None:
    listing = {
        "object": "list",
        "data": [
            {"id": "qwen2.5:0.5b", "object": "model", "created": 1, "owned_by": "library"},
            {"id": "Qwen/Qwen2.5-1.5B-Instruct", "object": "model", "max_model_len": 8192},
            {"object": "model"},
            {"id": "phi", "meta": {"n_ctx_train": True, "n_params": "3B"}},
        ],
    }
    model_server.on(MODELS, Reply(200, listing))

    models = list_models(base_url=model_server.base_url, api_key=None, timeout=2.0)

    assert models == [
        ModelInfo("qwen2.5:0.5b", None, None, "library"),
        ModelInfo("Qwen/Qwen2.5-1.5B-Instruct", 8192, None),
        ModelInfo("phi", None, None),
    ]
    assert "authorization" not in model_server.only_request().headers


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (Reply(404, "Not Found"), ErrorKind.SERVER_ERROR),
        (Reply(200, "<html>not json</html>"), ErrorKind.BAD_RESPONSE),
        (Reply(200, {"models": []}), ErrorKind.BAD_RESPONSE),
        (Reply(401, {"error": {"message": "Invalid API Key"}}), ErrorKind.UNAUTHORIZED),
        (Reply(307, "", {"location": "https://elsewhere/v1/models"}), ErrorKind.REDIRECT),
    ],
    ids=["404", "not-json", "no-data", "401", "redirect"],
)
def test_list_models_failures(model_server: ScriptedServer, reply: Reply, kind: ErrorKind) -> None:
    model_server.on(MODELS, reply)

    with pytest.raises(ModelError) as caught:
        list_models(base_url=model_server.base_url, api_key=None, timeout=2.0)

    assert caught.value.kind is kind


def test_check_health_ok(model_server: ScriptedServer) -> None:
    model_server.on(MODELS, Reply(200, LLAMA_SERVER_MODELS))

    health = check_health(base_url=model_server.base_url, api_key=None, timeout=2.0)

    assert health.ok is True
    assert health.error is None
    assert health.latency_ms is not None and 0 < health.latency_ms < 2000


def test_check_health_loading_model(model_server: ScriptedServer) -> None:
    loading = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
    model_server.on(MODELS, Reply(503, loading))

    health = check_health(base_url=model_server.base_url, api_key=None, timeout=2.0)

    assert (health.ok, health.latency_ms) == (False, None)
    assert health.error is not None and health.error.startswith("Model server answered 503")


def test_check_health_unreachable_and_invalid() -> None:
    down = check_health(base_url=f"http://127.0.0.1:{unused_port()}/v1", api_key=None, timeout=1)
    invalid = check_health(base_url="file:///v1", api_key=None, timeout=1.0)

    assert down.ok is False and down.error is not None and "unreachable" in down.error
    assert invalid.ok is False and invalid.error is not None and "http://" in invalid.error


def test_check_health_times_out_as_a_whole(model_server: ScriptedServer) -> None:
    model_server.on(MODELS, Stream([], headers_after=STALL))

    started = time.monotonic()
    health = check_health(base_url=model_server.base_url, api_key=None, timeout=0.5)

    assert health.ok is False
    assert health.error == f"Model server at {model_server.base_url} did not answer within 0.5 s"
    assert time.monotonic() - started < 0.5 + SLACK


# --- validate_base_url -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://models.example/v1",
        "file:///etc/passwd",
        "http://user:hunter2@models.example/v1",
        "javascript:alert(1)",
        "http:///v1",
        "http://:8080/v1",
        "",
        "   ",
        "models.example:8080/v1",
        "http://models.example/v1?key=1",
        "http://models.example/v1#top",
        "http://models.example:99999/v1",
        "http://models example/v1",
        "http://[::1/v1",
    ],
)
def test_validate_base_url_rejects(url: str) -> None:
    with pytest.raises(ModelError) as caught:
        validate_base_url(url)

    assert caught.value.kind is ErrorKind.INVALID_URL
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1"),
        ("https://models.example/v1", "https://models.example/v1"),
        ("  http://[::1]:11434/v1  ", "http://[::1]:11434/v1"),
        ("HTTP://localhost:8000", "HTTP://localhost:8000"),
    ],
)
def test_validate_base_url_accepts(url: str, expected: str) -> None:
    assert validate_base_url(url) == expected


def test_the_callers_own_deadline_stops_a_stream_that_keeps_sending(
    model_server: ScriptedServer,
) -> None:
    # Tokens keep coming (no other deadline fires): only the caller's stop_at ends it, with
    # the text so far.
    model_server.on(CHAT, Stream([sse(chunk("a")), Pause(0.1)] * int(STALL / 0.1)))
    stop_at = time.monotonic() + 0.5
    timeouts = Timeouts(connect=1.0, first_token=STALL, between_tokens=STALL, stop_at=stop_at)

    error, text, _ = fail(model_server, timeouts=timeouts)

    assert error.kind is ErrorKind.TIMEOUT
    assert "ran out of time" in str(error)
    assert text and set(text) == {"a"}
    assert time.monotonic() < stop_at + SLACK
    assert model_server.only_request().disconnected.wait(SLACK)
