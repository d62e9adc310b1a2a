"""The model gateway against the real embedded model and a scripted multi-model server."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from bs4 import BeautifulSoup
from sqlmodel import select

from app.llm import (
    ErrorKind,
    Finish,
    ModelError,
    TextDelta,
    Timeouts,
    stream_chat,
    stream_completion,
)
from app.models import Model, ModelEndpoint
from app.paths import PROJECT_ROOT
from app.services.endpoints import check_endpoint, register_endpoint
from tests.factories import make_user, sign_in
from tests.scripted_server import Reply

GEMMA_PARAMETERS = 268_098_176


def test_streams_a_real_reply_from_the_embedded_model(llama_server):
    events = list(
        stream_chat(
            base_url=llama_server.base_url,
            api_key=llama_server.api_key,
            model="gemma",
            messages=[{"role": "user", "content": "Name three colours."}],
            max_tokens=12,
            temperature=0.0,
            timeouts=Timeouts(connect=5, first_token=60, between_tokens=30),
        )
    )
    *deltas, finish = events
    assert deltas and all(isinstance(event, TextDelta) for event in deltas)
    assert "".join(event.text for event in deltas).strip()
    assert isinstance(finish, Finish) and finish.reason in ("length", "stop")
    assert finish.completion_tokens and 0 < finish.completion_tokens <= 12
    assert finish.prompt_tokens and finish.prompt_tokens > 3  # the Gemma template was applied


def test_the_embedded_server_renders_the_gemma_chat_template(llama_server):
    import httpx

    response = httpx.post(
        llama_server.base_url.removesuffix("/v1") + "/apply-template",
        json={"messages": [{"role": "user", "content": "Hi"}]},
        headers={"Authorization": f"Bearer {llama_server.api_key}"},
    )
    assert (
        response.json()["prompt"] == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    )


def test_the_embedded_server_refuses_requests_without_its_key(llama_server):
    with pytest.raises(ModelError) as caught:
        list(
            stream_chat(
                base_url=llama_server.base_url, api_key=None, model="gemma",
                messages=[{"role": "user", "content": "hi"}], max_tokens=2, temperature=0,
                timeouts=Timeouts(),
            )
        )  # fmt: skip
    assert caught.value.kind == ErrorKind.UNAUTHORIZED
    assert llama_server.api_key not in caught.value.message


def test_discovery_against_the_real_llama_server(session, llama_server):
    endpoint = register_endpoint(
        session=session, name="embedded", base_url=llama_server.base_url,
        api_key=llama_server.api_key, max_concurrency=2, is_embedded=True,
    )  # fmt: skip
    check_endpoint(session=session, endpoint=endpoint)
    session.commit()
    assert endpoint.health_ok and endpoint.health_error is None
    assert endpoint.health_latency_ms is not None
    assert endpoint.server_kind == "llama.cpp"
    (model,) = session.exec(select(Model)).all()
    assert model.name.endswith("gemma-3-270m-q4_k_m.gguf")
    assert model.parameter_count == GEMMA_PARAMETERS
    assert model.context_length == 2048  # per slot, what one request can use
    assert model.effective_prompt_format == "transcript"  # a base model


def test_the_embedded_base_model_answers_a_transcript_and_stops_by_itself(llama_server):
    from app.engine.conversation import render_transcript
    from app.models import Agent, Message

    agent = Agent(workspace_id=1, name="Helper", role_prompt="You answer questions briefly.")
    question = Message(id=1, task_id=1, role="user", content="What is the capital of France?")
    transcript = render_transcript(
        agent=agent, path=[question], context_length=2048, reply_tokens=48
    )
    events = list(
        stream_completion(
            base_url=llama_server.base_url, api_key=llama_server.api_key, model="gemma",
            prompt=transcript.prompt, stop=transcript.stop, max_tokens=48, temperature=0.0,
            timeouts=Timeouts(connect=5, first_token=60, between_tokens=30),
        )
    )  # fmt: skip
    *deltas, finish = events
    text = "".join(event.text for event in deltas if isinstance(event, TextDelta))
    assert "Paris" in text
    assert isinstance(finish, Finish) and finish.reason == "stop"


def multi_model_listing(*names: str, **meta: int) -> Reply:
    return Reply(
        200,
        {"object": "list", "data": [{"id": n, "object": "model", **meta} for n in names]},
    )


def test_discovery_lists_every_model_and_keeps_what_admins_entered(session, model_server):
    model_server.on("/v1/models", multi_model_listing("qwen2.5:0.5b", "llama3.2:1b"))
    endpoint = register_endpoint(
        session=session, name="ollama", base_url=model_server.base_url, api_key="sk-x",
        max_concurrency=1, is_embedded=False,
    )  # fmt: skip
    check_endpoint(session=session, endpoint=endpoint)
    models = {m.name: m for m in session.exec(select(Model)).all()}
    assert set(models) == {"qwen2.5:0.5b", "llama3.2:1b"}
    models["llama3.2:1b"].parameter_count = 1_240_000_000  # entered by hand
    session.commit()

    model_server.on("/v1/models", multi_model_listing("llama3.2:1b"))
    check_endpoint(session=session, endpoint=endpoint)
    session.commit()
    models = {m.name: m for m in session.exec(select(Model)).all()}
    assert not models["qwen2.5:0.5b"].available
    assert models["llama3.2:1b"].available
    assert models["llama3.2:1b"].parameter_count == 1_240_000_000
    assert model_server.received[-1].headers["authorization"] == "Bearer sk-x"


def test_a_failing_server_is_marked_down_with_its_reason(session, model_server):
    model_server.on("/v1/models", Reply(500, {"error": {"message": "out of memory"}}))
    endpoint = register_endpoint(
        session=session, name="broken", base_url=model_server.base_url, api_key=None,
        max_concurrency=1, is_embedded=False,
    )  # fmt: skip
    check_endpoint(session=session, endpoint=endpoint)
    assert endpoint.health_ok is False
    assert "500" in endpoint.health_error and "out of memory" in endpoint.health_error


def test_healthz_reuses_a_fresh_check(client, session, model_server, monkeypatch):
    model_server.on("/v1/models", multi_model_listing("m"))
    session.add(ModelEndpoint(name="cached", base_url=model_server.base_url))
    session.commit()
    assert client.get("/healthz").json()["models"]["ok"]
    assert client.get("/healthz").json()["models"]["ok"]
    assert len([r for r in model_server.received if r.path == "/v1/models"]) == 1


# --- the admin page and API ---------------------------------------------------------------


@pytest.fixture
def admin_client(client, session):
    return sign_in(client, session, make_user(session, admin=True))


def test_non_admins_get_404_for_endpoint_pages_and_api(client, session):
    sign_in(client, session, make_user(session))
    assert client.get("/admin/endpoints").status_code == 404
    assert client.get("/api/v1/endpoints").status_code == 404
    response = client.post("/api/v1/endpoints", json={"name": "x", "base_url": "http://h/v1"})
    assert response.status_code == 404
    assert len(session.exec(select(ModelEndpoint)).all()) == 0


def test_admin_adds_an_endpoint_and_sees_its_health_and_models(admin_client, session, model_server):
    model_server.on("/v1/models", multi_model_listing("qwen2.5:0.5b", meta={"n_params": 494e6}))
    form = {
        "name": "Ollama box", "base_url": model_server.base_url + "/",
        "api_key": "sk-very-secret", "max_concurrency": "2",
    }  # fmt: skip
    response = admin_client.post("/admin/endpoints", data=form, headers={"HX-Request": "true"})
    assert response.status_code == 200 and "<html" not in response.text
    fragment = BeautifulSoup(response.text, "html.parser")
    (endpoint,) = session.exec(select(ModelEndpoint)).all()
    assert endpoint.base_url == model_server.base_url and endpoint.max_concurrency == 2
    assert fragment.find(id=f"endpoint-{endpoint.id}-health").text.strip() == "up"
    assert "qwen2.5:0.5b" in fragment.find(id=f"endpoint-{endpoint.id}").text
    # The key is stored but never rendered, in the page or the API.
    assert endpoint.api_key == "sk-very-secret"
    assert "sk-very-secret" not in admin_client.get("/admin/endpoints").text
    assert "sk-very-secret" not in admin_client.get("/api/v1/endpoints").text


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://models.example/v1", "http"),
        ("http://user:pw@127.0.0.1:8080/v1", "password"),
        ("javascript:alert(1)", "http"),
        ("http:///v1", "host name"),
    ],
)
def test_bad_urls_are_refused_with_a_message_and_nothing_is_stored(
    admin_client, session, url, message
):
    response = admin_client.post(
        "/admin/endpoints", data={"name": "bad", "base_url": url}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 400
    error = BeautifulSoup(response.text, "html.parser").find(id="add-endpoint-error").text
    assert message in error.lower()
    api = admin_client.post("/api/v1/endpoints", json={"name": "bad", "base_url": url})
    assert api.status_code == 400 and message in api.json()["detail"].lower()
    assert len(session.exec(select(ModelEndpoint)).all()) == 0


def test_duplicate_names_are_refused(admin_client, session, model_server):
    model_server.on("/v1/models", multi_model_listing("m"))
    body = {"name": "one", "base_url": model_server.base_url}
    assert admin_client.post("/api/v1/endpoints", json=body).status_code == 201
    again = admin_client.post("/api/v1/endpoints", json=body)
    assert again.status_code == 409 and "exists already" in again.json()["detail"]


def test_redirects_are_reported_not_followed(admin_client, session, model_server):
    model_server.on("/v1/models", Reply(302, b"", headers={"location": "http://127.0.0.1:6379/"}))
    created = admin_client.post(
        "/api/v1/endpoints", json={"name": "r", "base_url": model_server.base_url}
    ).json()
    assert created["health_ok"] is False and "redirect" in created["health_error"].lower()
    assert len(model_server.received) == 1


def test_admin_changes_limit_key_and_enabled_then_deletes(admin_client, session, model_server):
    model_server.on("/v1/models", multi_model_listing("m"))
    created = admin_client.post(
        "/api/v1/endpoints", json={"name": "e", "base_url": model_server.base_url, "api_key": "k1"}
    ).json()
    path = f"/api/v1/endpoints/{created['id']}"
    changed = admin_client.patch(path, json={"max_concurrency": 8, "enabled": False}).json()
    assert changed["max_concurrency"] == 8 and not changed["enabled"] and changed["has_api_key"]
    assert admin_client.patch(path, json={"max_concurrency": 0}).status_code == 422
    assert not admin_client.patch(path, json={"clear_api_key": True}).json()["has_api_key"]
    # The page form: concurrency, enabled checkbox, and a new key.
    page = admin_client.post(
        f"/admin/endpoints/{created['id']}",
        data={"max_concurrency": "3", "enabled": "true", "api_key": "k2"},
    )
    assert page.status_code == 200
    session.expire_all()
    endpoint = session.get(ModelEndpoint, created["id"])
    assert (endpoint.max_concurrency, endpoint.enabled, endpoint.api_key) == (3, True, "k2")
    assert admin_client.delete(path).status_code == 204
    assert admin_client.get(path).status_code == 404
    assert len(session.exec(select(Model)).all()) == 0


def test_admin_enters_a_parameter_count_people_write_it(admin_client, session, model_server):
    model_server.on("/v1/models", multi_model_listing("m"))
    admin_client.post("/api/v1/endpoints", json={"name": "e", "base_url": model_server.base_url})
    (model,) = session.exec(select(Model)).all()
    response = admin_client.post(
        f"/admin/models/{model.id}", data={"parameter_count": "1.5B", "context_length": "8K"}
    )
    assert response.status_code == 200
    session.refresh(model)
    assert (model.parameter_count, model.context_length) == (1_500_000_000, 8000)
    row = BeautifulSoup(response.text, "html.parser").find(id=f"model-{model.id}")
    assert "1.5B" in row.text
    bad = admin_client.post(f"/admin/models/{model.id}", data={"parameter_count": "lots"})
    assert bad.status_code == 400 and "270M" in bad.text
    refused = admin_client.patch(f"/api/v1/models/{model.id}", json={"parameter_count": -1})
    assert refused.status_code == 422


def test_the_endpoint_page_says_what_to_do_when_empty(admin_client):
    page = BeautifulSoup(admin_client.get("/admin/endpoints").text, "html.parser")
    assert "switchboard up" in page.find(id="endpoints-empty").text
    assert page.find(id="add-endpoint") is not None


def test_model_test_command_against_the_real_server(llama_server):
    env = {**os.environ, "MODEL_API_KEY": llama_server.api_key}
    result = subprocess.run(
        [sys.executable, "-m", "app.runtime.cli", "model", "test", llama_server.base_url,
         "--max-tokens", "8"],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "time to first token:" in result.stdout and "tokens/s:" in result.stdout
    reply = result.stdout.split("reply:", 1)[1].strip()
    assert reply


def test_model_test_command_explains_an_unknown_endpoint():
    result = subprocess.run(
        [sys.executable, "-m", "app.runtime.cli", "model", "test", "nope"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().startswith("switchboard: error: No endpoint named 'nope'")
