"""The Agents page: starter roles, create, edit, delete, and clear refusals."""

from __future__ import annotations

from bs4 import BeautifulSoup
from sqlmodel import select

from app.models import Agent, Role
from tests.factories import add_member, make_model, make_user, make_workspace, sign_in


def soup(response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


def setup(client, session):
    user = make_user(session)
    sign_in(client, session, user)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url="http://127.0.0.1:9/v1")
    return user, workspace, model


def test_create_from_a_starter_role_edit_and_delete(client, session):
    _, workspace, model = setup(client, session)
    page = soup(client.get(f"/w/{workspace.slug}/agents?starter=Tester"))
    form = page.find(id="new-agent-form")
    assert form.find(id="new-agent-name")["value"] == "Tester"
    assert "PASS" in form.find(id="new-agent-prompt").text
    created = client.post(
        f"/w/{workspace.slug}/agents",
        data={"name": "Tester", "role_prompt": "Test it.", "model_id": str(model.id),
              "temperature": "0.2", "max_tokens": "256", "colour": "#1a9c6b"},
        follow_redirects=True,
    )  # fmt: skip
    assert created.status_code == 200
    agent = session.exec(select(Agent)).one()
    assert (agent.model_id, agent.temperature, agent.max_tokens) == (model.id, 0.2, 256)
    client.post(
        f"/agents/{agent.id}",
        data={"name": "QA", "role_prompt": "Check it.", "model_id": "", "temperature": "1",
              "max_tokens": "64", "colour": "#000000"},
    )  # fmt: skip
    session.refresh(agent)
    assert (agent.name, agent.model_id, agent.max_tokens) == ("QA", None, 64)
    client.post(f"/agents/{agent.id}/delete")
    assert session.exec(select(Agent)).all() == []


def test_mistakes_get_a_message_and_change_nothing(client, session):
    _, workspace, model = setup(client, session)
    for data, message in (
        ({"name": "A", "temperature": "hot"}, "must be numbers"),
        ({"name": "A", "temperature": "3"}, "Temperature goes from 0 to 2."),
        ({"name": "A", "max_tokens": "0"}, "Max tokens goes from 1 to 32768."),
        ({"name": " "}, "Give the agent a name."),
    ):
        response = client.post(f"/w/{workspace.slug}/agents", data=data)
        assert response.status_code == 400
        assert message in soup(response).find(id="new-agent-error").text
    client.post(f"/w/{workspace.slug}/agents", data={"name": "A"})
    duplicate = client.post(f"/w/{workspace.slug}/agents", data={"name": "A"})
    assert duplicate.status_code == 409
    assert len(session.exec(select(Agent)).all()) == 1


def test_viewers_see_agents_but_cannot_change_them(client, session):
    owner, workspace, _ = setup(client, session)
    client.post(f"/w/{workspace.slug}/agents", data={"name": "A"})
    agent = session.exec(select(Agent)).one()
    viewer = make_user(session)
    add_member(session, workspace=workspace, user=viewer, role=Role.viewer)
    sign_in(client, session, viewer)
    page = soup(client.get(f"/w/{workspace.slug}/agents"))
    assert page.find(id="new-agent") is None and "A" in page.find(id="agent-list").text
    assert client.post(f"/agents/{agent.id}/delete").status_code == 404
    assert client.post(f"/w/{workspace.slug}/agents", data={"name": "B"}).status_code == 404


def test_the_page_and_the_api_apply_the_same_field_rules(client, session):
    """One schema for both: the colour rule holds on each, and each can clear the model."""
    _, workspace, model = setup(client, session)
    page = client.post(f"/w/{workspace.slug}/agents", data={"name": "A", "colour": "#12345z"})
    assert page.status_code == 400
    assert "Pick a colour." in soup(page).find(id="new-agent-error").text
    api = client.post(f"/api/v1/workspaces/{workspace.slug}/agents",
                      json={"name": "B", "colour": "#12345z"})  # fmt: skip
    assert api.status_code == 422
    assert session.exec(select(Agent)).all() == []

    created = client.post(f"/api/v1/workspaces/{workspace.slug}/agents",
                          json={"name": "C", "model_id": model.id})  # fmt: skip
    agent_id = created.json()["id"]
    kept = client.patch(f"/api/v1/agents/{agent_id}", json={"temperature": 0.3})
    assert kept.json()["model_id"] == model.id  # a field left out stays as it is
    cleared = client.patch(f"/api/v1/agents/{agent_id}", json={"model_id": None})
    assert cleared.status_code == 200 and cleared.json()["model_id"] is None


def test_worked_examples_and_the_loop_guard_checkbox(client, session):
    _, workspace, model = setup(client, session)
    page = soup(client.get(f"/w/{workspace.slug}/agents?starter=Coder"))
    form = page.find(id="new-agent-form")
    assert "```python" in form.find(id="new-agent-examples").text
    assert form.find(id="new-agent-loop-guard").has_attr("checked")
    fields = {"name": "Coder", "model_id": str(model.id), "loop_guard_shown": "1",
              "examples": "User: 1 + 1?\nAssistant: 2."}  # fmt: skip
    client.post(f"/w/{workspace.slug}/agents", data={**fields, "loop_guard": "on"})
    agent = session.exec(select(Agent)).one()
    assert agent.loop_guard and agent.examples == "User: 1 + 1?\nAssistant: 2."

    client.post(f"/agents/{agent.id}", data=fields)  # the box unticked

    session.refresh(agent)
    assert agent.loop_guard is False
    shown = soup(client.get(f"/w/{workspace.slug}/agents")).find(id=f"agent-{agent.id}-loop-guard")
    assert not shown.has_attr("checked")
    client.post(f"/agents/{agent.id}", data={"name": "Coder"})  # a client without the box
    session.refresh(agent)
    assert agent.loop_guard is False and agent.examples == ""


def test_new_agents_take_the_next_unused_colour(client, session):
    from app.services.agents import PALETTE

    _, workspace, _ = setup(client, session)
    for name in ("A", "B", "C"):
        client.post(f"/w/{workspace.slug}/agents", data={"name": name})
    client.post(f"/api/v1/workspaces/{workspace.slug}/agents", json={"name": "D"})
    colours = [a.colour for a in session.exec(select(Agent).order_by(Agent.id)).all()]
    assert colours == list(PALETTE[:4])
    page = soup(client.get(f"/w/{workspace.slug}/agents"))
    ticked = page.select_one("#new-agent-colour input:checked")
    assert ticked["value"] == PALETTE[4]
