"""Plain completions (for base models) and prompt-format probes, against a scripted server."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.llm import (
    ErrorKind,
    Finish,
    ModelError,
    PromptFacts,
    TextDelta,
    Timeouts,
    probe_prompt_format,
    stream_completion,
)
from tests.scripted_server import (
    DONE,
    Drop,
    Pause,
    Reply,
    ScriptedServer,
    Stream,
    completion,
    sse,
    text_chunk,
    unused_port,
)

COMPLETIONS = "/v1/completions"
FAST = Timeouts(connect=1.0, first_token=0.5, between_tokens=0.5)
SLACK = 3.0
STALL = 10.0


def complete(server: ScriptedServer | None, **overrides: Any) -> list[TextDelta | Finish]:
    arguments: dict[str, Any] = {
        "base_url": server.base_url if server else f"http://127.0.0.1:{unused_port()}/v1",
        "api_key": None,
        "model": "base",
        "prompt": "User: hi\n\nAssistant:",
        "stop": ["\nUser:"],
        "max_tokens": 16,
        "temperature": 0.0,
        "timeouts": FAST,
    }
    arguments.update(overrides)
    return list(stream_completion(**arguments))


def test_text_chunks_concatenate_and_the_finish_comes_last(model_server: ScriptedServer) -> None:
    model_server.on(COMPLETIONS, completion([" Par", "is", "."]))

    *deltas, finish = complete(model_server)

    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == " Paris."
    assert finish == Finish("stop", 40, 3)


def test_the_request_carries_prompt_stop_and_streaming_fields(model_server: ScriptedServer) -> None:
    model_server.on(COMPLETIONS, completion(["ok"]))

    complete(model_server, api_key="k", extra={"cache_prompt": True, "stream": False})

    request = model_server.only_request()
    assert (request.method, request.path) == ("POST", COMPLETIONS)
    assert request.headers["authorization"] == "Bearer k"
    assert request.json == {
        "cache_prompt": True,
        "model": "base",
        "prompt": "User: hi\n\nAssistant:",
        "stop": ["\nUser:"],
        "max_tokens": 16,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_stall_before_the_first_token(model_server: ScriptedServer) -> None:
    model_server.on(COMPLETIONS, Stream([Pause(STALL)]))

    started = time.monotonic()
    with pytest.raises(ModelError) as caught:
        complete(model_server)

    assert caught.value.kind == ErrorKind.TIMEOUT
    assert "No first token within 0.5 s" in caught.value.message
    assert time.monotonic() - started < FAST.first_token + SLACK


def test_stall_mid_stream(model_server: ScriptedServer) -> None:
    model_server.on(COMPLETIONS, Stream([sse(text_chunk("a")), Pause(STALL)]))

    with pytest.raises(ModelError) as caught:
        complete(model_server)

    assert caught.value.kind == ErrorKind.TIMEOUT
    assert "No new token for 0.5 s" in caught.value.message


def test_connection_dropped_mid_stream(model_server: ScriptedServer) -> None:
    model_server.on(COMPLETIONS, Stream([sse(text_chunk("a")), Drop()]))

    with pytest.raises(ModelError) as caught:
        complete(model_server)

    assert caught.value.kind == ErrorKind.INCOMPLETE_STREAM


def test_stream_ending_without_a_finish(model_server: ScriptedServer) -> None:
    model_server.on(COMPLETIONS, Stream([sse(text_chunk("a")), DONE]))

    with pytest.raises(ModelError) as caught:
        complete(model_server)

    assert caught.value.kind == ErrorKind.INCOMPLETE_STREAM


def test_context_too_long(model_server: ScriptedServer) -> None:
    error = {"error": {"code": 400, "message": "the request exceeds the available context size",
                       "type": "exceed_context_size_error"}}  # fmt: skip
    model_server.on(COMPLETIONS, Reply(400, error))

    with pytest.raises(ModelError) as caught:
        complete(model_server)

    assert caught.value.kind == ErrorKind.CONTEXT_TOO_LONG


def test_a_server_without_completions(model_server: ScriptedServer) -> None:
    with pytest.raises(ModelError) as caught:
        complete(model_server)  # nothing scripted: 404

    assert caught.value.kind == ErrorKind.MODEL_NOT_FOUND


def test_unauthorized_never_repeats_the_key(model_server: ScriptedServer) -> None:
    model_server.on(COMPLETIONS, Reply(401, {"error": {"message": "bad key sk-secret"}}))

    with pytest.raises(ModelError) as caught:
        complete(model_server, api_key="sk-secret")

    assert caught.value.kind == ErrorKind.UNAUTHORIZED
    assert "sk-secret" not in caught.value.message


def test_connection_refused() -> None:
    with pytest.raises(ModelError) as caught:
        complete(None)

    assert caught.value.kind == ErrorKind.UNREACHABLE


# --- probing the prompt format ---------------------------------------------------------------


def probe(server: ScriptedServer, server_kind: str, model: str = "m") -> PromptFacts:
    return probe_prompt_format(
        base_url=server.base_url, api_key="k", model=model, server_kind=server_kind, timeout=1.0
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [("{% for message in messages %}…{% endfor %}", "chat"), ("", "transcript")],
)
def test_llama_server_props_chat_template(
    model_server: ScriptedServer, template: str, expected: str
) -> None:
    model_server.on("/props", Reply(200, {"chat_template": template, "model_path": "m.gguf"}))

    assert probe(model_server, "llama.cpp") == PromptFacts(expected)
    request = model_server.only_request()
    assert (request.method, request.path) == ("GET", "/props")
    assert request.headers["authorization"] == "Bearer k"


@pytest.mark.parametrize(
    ("template", "expected"),
    [("{{ if .System }}<|system|>{{ .System }}{{ end }}{{ .Prompt }}", "chat"),
     ("{{ .Prompt }}", "transcript"), ("", "transcript")],
)  # fmt: skip
def test_ollama_show_template_and_parameter_count(
    model_server: ScriptedServer, template: str, expected: str
) -> None:
    show = {"template": template, "details": {"parameter_size": "270M"},
            "model_info": {"general.parameter_count": 268098176}}  # fmt: skip
    model_server.on("/api/show", Reply(200, show))

    assert probe(model_server, "openai", model="gemma3:270m") == PromptFacts(expected, 268098176)
    assert model_server.only_request().json == {"model": "gemma3:270m"}


@pytest.mark.parametrize(
    "reply",
    [Reply(404, {"error": "not found"}), Reply(200, "not json"), Reply(200, [1]),
     Reply(200, {"something": "else"}), Reply(500, "boom")],
)  # fmt: skip
def test_servers_that_say_nothing_leave_the_format_unknown(
    model_server: ScriptedServer, reply: Reply
) -> None:
    model_server.on("/props", reply)
    model_server.on("/api/show", reply)

    assert probe(model_server, "llama.cpp").prompt_format is None
    assert probe(model_server, "openai").prompt_format is None


def test_a_probe_that_stalls_gives_up_in_time(model_server: ScriptedServer) -> None:
    model_server.on("/props", Stream([Pause(STALL)]))

    started = time.monotonic()
    assert probe(model_server, "llama.cpp") == PromptFacts(None)
    assert time.monotonic() - started < 1.0 + SLACK
