"""Prompt formats and the loop guard end to end: the API, a real worker, a scripted model."""

from __future__ import annotations

import threading

import pytest
from sqlmodel import select

from app.engine.runner import LOOP_STOPPED
from app.models import Message, Model, ModelEndpoint
from tests.engine_helpers import start_task, wait_for_runs
from tests.factories import make_model, make_user, sign_in
from tests.scripted_server import Drop, Hold, Reply, Send, Stream, completion, sse, text_chunk

COMPLETIONS = "/v1/completions"


def as_transcript(session, agents) -> Model:
    model = session.get(Model, agents[0].model_id)
    model.detected_prompt_format = "transcript"
    session.add(model)
    session.commit()
    return model


def completion_bodies(model_server) -> list[dict]:
    return [r.json for r in model_server.received if r.path == COMPLETIONS]


def answer_of(session, run: dict) -> str:
    session.expire_all()
    return session.get(Message, run["output_message_id"]).content


def test_a_transcript_model_is_asked_for_a_completion_of_the_branch(
    client, session, team, model_server
):
    workspace, (coder, *_) = team
    as_transcript(session, [coder])
    model_server.on(COMPLETIONS, completion([" Par", "is."]))

    task = start_task(client, workspace, [coder], brief="Capital of France?")
    (run,) = wait_for_runs(client, task["id"], 1)

    assert run["status"] == "succeeded" and run["error"] is None
    assert answer_of(session, run) == "Paris."  # the space after "Assistant:" is not kept
    (body,) = completion_bodies(model_server)
    assert body["prompt"].startswith("You are Coder.\n\nUser: What is the capital of Italy?")
    assert body["prompt"].endswith("\n\nUser: Capital of France?\n\nAssistant:")
    assert body["stop"] == ["\nUser:", "\nAssistant:"]
    assert body["max_tokens"] == 64 and body["stream"] is True


def test_a_rerun_sends_the_same_bytes_and_a_follow_up_extends_them(
    client, session, team, model_server
):
    workspace, (coder, *_) = team
    as_transcript(session, [coder])
    model_server.on(COMPLETIONS, completion(["A1"]))
    task = start_task(client, workspace, [coder], brief="Q1")
    wait_for_runs(client, task["id"], 1)
    answer_id = client.get(f"/api/v1/tasks/{task['id']}").json()["messages"][1]["id"]

    assert client.post(f"/api/v1/messages/{answer_id}/reruns", json={}).status_code == 201
    wait_for_runs(client, task["id"], 2)
    follow = client.post(
        f"/api/v1/messages/{answer_id}/replies", json={"content": "Q2", "agent_ids": [coder.id]}
    )
    assert follow.status_code == 201
    wait_for_runs(client, task["id"], 3)

    first, rerun, follow_up = (body["prompt"] for body in completion_bodies(model_server))
    assert first.encode() == rerun.encode()
    assert follow_up == first + " A1\n\nUser: Q2\n\nAssistant:"


def test_a_chat_model_still_gets_chat(client, session, team, model_server):
    workspace, (coder, *_) = team
    task = start_task(client, workspace, [coder])
    (run,) = wait_for_runs(client, task["id"], 1)

    assert run["status"] == "succeeded"
    assert completion_bodies(model_server) == []


LOOP = ["Sure.\n"] + ["The answer is that it depends on the input. "] * 30


def test_a_looping_model_is_stopped_keeping_the_text_before_the_loop(
    client, session, team, model_server
):
    workspace, (coder, *_) = team
    as_transcript(session, [coder])
    model_server.on(COMPLETIONS, completion(LOOP, finish="length"))

    task = start_task(client, workspace, [coder])
    (run,) = wait_for_runs(client, task["id"], 1)

    assert run["status"] == "succeeded"
    assert run["error"] == LOOP_STOPPED == "stopped: the model was repeating itself"
    assert answer_of(session, run) == "Sure.\nThe answer is that it depends on the input."
    page = client.get(f"/t/{task['id']}")
    assert LOOP_STOPPED in page.text


def test_a_loop_is_stopped_while_the_model_goes_on(client, session, team, model_server):
    # Paced past the publisher's ~50 ms flushes, where the guard looks: the run ends, and the
    # connection is closed, before the model would ever finish (it holds until disconnected).
    workspace, (coder, *_) = team
    as_transcript(session, [coder])
    never = threading.Event()
    paced = completion(LOOP, pause=0.02, finish="length")
    model_server.on(COMPLETIONS, Stream([*paced.steps[:-2], Hold(never)]))

    task = start_task(client, workspace, [coder])
    (run,) = wait_for_runs(client, task["id"], 1)

    assert run["status"] == "succeeded" and run["error"] == LOOP_STOPPED
    assert answer_of(session, run) == "Sure.\nThe answer is that it depends on the input."
    assert model_server.received[-1].disconnected.wait(5)


def test_a_loop_that_ends_the_stream_is_stopped_even_if_the_model_then_fails(
    client, session, team, model_server
):
    # Every token before the first flush: the guard looks at them once the stream has ended,
    # here by the model dropping the connection.
    workspace, (coder, *_) = team
    as_transcript(session, [coder])
    burst = b"".join(sse(text_chunk(piece)).data for piece in LOOP)
    model_server.on(COMPLETIONS, Stream([Send(burst), Drop()]))

    task = start_task(client, workspace, [coder])
    (run,) = wait_for_runs(client, task["id"], 1)

    assert run["status"] == "succeeded" and run["error"] == LOOP_STOPPED
    assert answer_of(session, run) == "Sure.\nThe answer is that it depends on the input."


def test_the_loop_guard_is_off_for_an_agent_that_says_so(client, session, team, model_server):
    workspace, (coder, *_) = team
    as_transcript(session, [coder])
    changed = client.patch(f"/api/v1/agents/{coder.id}", json={"loop_guard": False})
    assert changed.status_code == 200 and changed.json()["loop_guard"] is False
    model_server.on(COMPLETIONS, completion(LOOP, finish="length"))

    task = start_task(client, workspace, [coder])
    (run,) = wait_for_runs(client, task["id"], 1)

    assert run["status"] == "succeeded" and run["error"] is None
    assert answer_of(session, run) == "".join(LOOP)


# --- detection and the admin's choice -------------------------------------------------------


@pytest.fixture
def admin(client, session):
    user = make_user(session, admin=True)
    sign_in(client, session, user)
    return user


def test_discovery_detects_a_base_model_on_llama_server(client, session, admin, model_server):
    listed = {"id": "base.gguf", "owned_by": "llamacpp", "meta": {"n_params": 268098176}}
    model_server.on("/v1/models", Reply(200, {"object": "list", "data": [listed]}))
    model_server.on("/props", Reply(200, {"chat_template": ""}))

    created = client.post(
        "/api/v1/endpoints", json={"name": "local", "base_url": model_server.base_url}
    )

    assert created.status_code == 201, created.text
    (model,) = created.json()["models"]
    assert model["detected_prompt_format"] == "transcript"
    assert model["effective_prompt_format"] == "transcript" and model["prompt_format"] is None
    # Health checks come every few seconds; a known model's format is asked once.
    again = client.post(f"/api/v1/endpoints/{created.json()['id']}/check")
    assert again.json()["models"][0]["effective_prompt_format"] == "transcript"
    assert [r.path for r in model_server.received].count("/props") == 1


def test_discovery_detects_a_chat_model_and_a_parameter_count_on_ollama(
    client, session, admin, model_server
):
    listed = {"id": "qwen3:0.6b", "owned_by": "library"}
    model_server.on("/v1/models", Reply(200, {"object": "list", "data": [listed]}))
    show = {
        "template": "{{- if .Messages }}{{ .Prompt }}{{ end }}<|im_start|>",
        "model_info": {"general.parameter_count": 751632384},
    }
    model_server.on("/api/show", Reply(200, show))

    created = client.post(
        "/api/v1/endpoints", json={"name": "ollama", "base_url": model_server.base_url}
    )

    (model,) = created.json()["models"]
    assert model["effective_prompt_format"] == "chat"
    assert model["parameter_count"] == 751632384


def test_the_embedded_model_is_a_transcript_model(client, session, admin, model_server):
    endpoint = ModelEndpoint(name="Embedded", base_url=model_server.base_url, is_embedded=True)
    session.add(endpoint)
    session.commit()
    listed = {"id": "gemma.gguf", "owned_by": "llamacpp"}
    model_server.on("/v1/models", Reply(200, {"object": "list", "data": [listed]}))
    # Started with llama.cpp's built-in Gemma template, it reports one the GGUF lacks.
    model_server.on("/props", Reply(200, {"chat_template": "<start_of_turn>…"}))

    checked = client.post(f"/api/v1/endpoints/{endpoint.id}/check")

    assert checked.json()["models"][0]["effective_prompt_format"] == "transcript"


def test_an_admin_overrides_the_format_and_goes_back_to_auto(client, session, admin, model_server):
    model = make_model(session, base_url=model_server.base_url)
    model.detected_prompt_format = "transcript"
    session.add(model)
    session.commit()

    fixed = client.patch(f"/api/v1/models/{model.id}", json={"prompt_format": "chat"})
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["prompt_format"] == "chat"
    assert fixed.json()["effective_prompt_format"] == "chat"

    auto = client.patch(f"/api/v1/models/{model.id}", json={"prompt_format": "auto"})
    assert auto.json()["prompt_format"] is None
    assert auto.json()["effective_prompt_format"] == "transcript"


@pytest.mark.parametrize("value", ["markdown", "", 3, None])
def test_a_bad_format_is_refused_and_changes_nothing(client, session, admin, model_server, value):
    model = make_model(session, base_url=model_server.base_url)
    model.prompt_format = "transcript"
    session.add(model)
    session.commit()

    refused = client.patch(f"/api/v1/models/{model.id}", json={"prompt_format": value})

    if value is None:  # omitted-as-null keeps it, as every other optional field
        assert refused.status_code == 200
    else:
        assert refused.status_code == 422
    session.expire_all()
    assert session.exec(select(Model.prompt_format).where(Model.id == model.id)).one() == (
        "transcript"
    )


def test_only_admins_change_a_format(client, session, model_server):
    model = make_model(session, base_url=model_server.base_url)
    sign_in(client, session, make_user(session))

    refused = client.patch(f"/api/v1/models/{model.id}", json={"prompt_format": "chat"})

    assert refused.status_code == 404


def test_the_endpoints_page_shows_and_changes_the_format(client, session, admin, model_server):
    from bs4 import BeautifulSoup

    model = make_model(session, base_url=model_server.base_url)
    model.detected_prompt_format = "transcript"
    session.add(model)
    session.commit()

    page = client.get("/admin/endpoints")
    cell = BeautifulSoup(page.text, "html.parser").find(id=f"model-{model.id}-format")
    assert " ".join(cell.text.split()) == "transcript (detected)"

    changed = client.post(f"/admin/models/{model.id}", data={"prompt_format": "chat"})
    assert changed.status_code == 200
    cell = BeautifulSoup(changed.text, "html.parser").find(id=f"model-{model.id}-format")
    assert " ".join(cell.text.split()) == "chat (set by an admin)"

    bad = client.post(f"/admin/models/{model.id}", data={"prompt_format": "poetry"})
    assert bad.status_code == 400 and "chat, transcript or auto" in bad.text
    session.expire_all()
    assert session.get(Model, model.id).prompt_format == "chat"
