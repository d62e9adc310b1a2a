"""Model servers people already run are found: a scripted Ollama-like server on a free port."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from sqlmodel import select

from app.config import get_settings
from app.models import Model, ModelEndpoint
from tests.factories import make_user, sign_in
from tests.scripted_server import Reply

TEMPLATE = "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>{{ end }}{{ .Prompt }}"


@pytest.fixture
def discovery_port(monkeypatch, model_server):
    """The discovery setting pointed at the scripted server's port only."""
    monkeypatch.setenv("SWITCHBOARD_DISCOVERY_PORTS", str(model_server.port))
    get_settings.cache_clear()
    yield model_server.port
    monkeypatch.undo()
    get_settings.cache_clear()


def script_ollama(model_server) -> None:
    listing = {"object": "list", "data": [
        {"id": "qwen2.5:0.5b-instruct", "object": "model", "owned_by": "library"},
        {"id": "smollm:135m-base", "object": "model", "owned_by": "library"}]}  # fmt: skip

    def show(received):
        base = received.json["model"].endswith("-base")
        count = 134515008 if base else 494032768
        template = "{{ .Prompt }}" if base else TEMPLATE
        return Reply(200, {"template": template, "model_info": {"general.parameter_count": count}})

    model_server.on("/v1/models", Reply(200, listing))
    model_server.on("/api/show", show)


def test_a_local_server_is_offered_and_added_in_one_click(
    client, session, model_server, discovery_port
):
    script_ollama(model_server)
    sign_in(client, session, make_user(session, admin=True))

    page = BeautifulSoup(client.get("/admin/endpoints").text, "html.parser")

    found = page.find(id="found-servers")
    assert found is not None
    rows = [" ".join(li.text.split()) for li in found.find_all("li")]
    assert rows == ["qwen2.5:0.5b-instruct · 494M · chat", "smollm:135m-base · 135M · transcript"]
    form = page.find(id="found-1-add").find_parent("form")
    fields = {i["name"]: i["value"] for i in form.find_all("input")}
    name = f"Local server on port {discovery_port}"  # not one of the usual ports
    assert fields == {"name": name, "base_url": model_server.base_url}

    added = client.post(form["action"], data=fields)

    assert added.status_code == 200
    endpoint = session.exec(select(ModelEndpoint)).one()
    assert (endpoint.base_url, endpoint.health_ok) == (model_server.base_url, True)
    models = {m.name: m for m in session.exec(select(Model)).all()}
    assert models["smollm:135m-base"].effective_prompt_format == "transcript"
    assert models["qwen2.5:0.5b-instruct"].effective_prompt_format == "chat"
    assert models["smollm:135m-base"].parameter_count == 134515008
    # Added once, it is no longer offered.
    after = BeautifulSoup(client.get("/admin/endpoints").text, "html.parser")
    assert after.find(id="found-servers") is None


def test_nothing_listening_offers_nothing(client, session, monkeypatch):
    from tests.scripted_server import unused_port

    monkeypatch.setenv("SWITCHBOARD_DISCOVERY_PORTS", str(unused_port()))
    get_settings.cache_clear()
    try:
        sign_in(client, session, make_user(session, admin=True))
        page = client.get("/admin/endpoints")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()

    assert page.status_code == 200
    assert BeautifulSoup(page.text, "html.parser").find(id="found-servers") is None


def test_switchboards_own_ports_are_never_probed(monkeypatch):
    from app.config import load_settings

    settings = load_settings(
        port=8000, embedded_model_port=8080, discovery_ports="11434, 8080,1234 ,8000"
    )

    assert settings.discovery_port_list == (11434, 1234)
    assert load_settings(discovery_ports="none").discovery_port_list == ()


@pytest.mark.parametrize("value", ["abc", "80,", "1;2"])
def test_a_bad_port_list_names_the_setting(value):
    from app.config import SettingsError, load_settings

    with pytest.raises(SettingsError, match="SWITCHBOARD_DISCOVERY_PORTS"):
        load_settings(discovery_ports=value)
