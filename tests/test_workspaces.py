"""Workspaces through the pages and the API, and who may see them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from bs4 import BeautifulSoup
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.models import Agent, Event, Membership, Role, Task, Workspace
from app.services import NotFound
from app.services.workspaces import slugify, workspace_for
from app.web.deps import EditableWorkspace
from app.web.errors import install_error_handlers
from tests.factories import add_member, make_user, make_workspace, sign_in


def count(session, model) -> int:
    return session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def test_dashboard_empty_state_says_what_to_do(client, session):
    sign_in(client, session, make_user(session))
    page = BeautifulSoup(client.get("/").text, "html.parser")
    empty = page.find(id="workspaces-empty")
    assert "No workspaces yet" in empty.text
    assert empty.find("form")["action"] == "/workspaces/demo"
    assert page.find(id="create-workspace") is not None


def test_create_workspace_from_the_page(client, session):
    sign_in(client, session, make_user(session))
    response = client.post("/workspaces", data={"name": "Parser rewrite"}, follow_redirects=True)
    assert response.url.path == "/w/parser-rewrite"
    assert "Parser rewrite" in response.text
    workspace = session.exec(sa.select(Workspace)).scalar_one()
    assert session.exec(sa.select(Membership.role)).scalar_one() == Role.owner
    assert session.exec(sa.select(Event.verb)).scalar_one() == "created"
    assert workspace.slug == "parser-rewrite"


def test_blank_name_is_refused_with_a_message_as_a_fragment(client, session):
    sign_in(client, session, make_user(session))
    response = client.post("/workspaces", data={"name": "   "}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "<html" not in response.text
    fragment = BeautifulSoup(response.text, "html.parser")
    assert fragment.find(id="create-workspace-error").text == "Give the workspace a name."
    assert count(session, Workspace) == 0


def test_demo_workspace_has_starter_agents_and_a_task(client, session):
    sign_in(client, session, make_user(session))
    response = client.post("/workspaces/demo", follow_redirects=True)
    assert response.url.path == "/w/demo"
    names = session.exec(sa.select(Agent.name).order_by(Agent.name)).scalars().all()
    assert names == ["Coder", "Explorer", "Reviewer", "Tester"]
    assert count(session, Task) == 1
    page = BeautifulSoup(response.text, "html.parser")
    assert len(page.select("#workspace-agents li")) == 4
    assert len(page.select("#workspace-tasks li")) == 1


def test_api_create_list_and_read(client, session):
    sign_in(client, session, make_user(session))
    created = client.post("/api/v1/workspaces", json={"name": "Ünïcode Space", "description": "d"})
    assert created.status_code == 201
    body = created.json()
    assert body["slug"] == "unicode-space" and body["role"] == "owner"
    assert [w["slug"] for w in client.get("/api/v1/workspaces").json()] == ["unicode-space"]
    assert client.get("/api/v1/workspaces/unicode-space").json()["name"] == "Ünïcode Space"


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "x" * 121}, {"name": 5}, {"name": "ok", "description": 1}]
)
def test_api_refuses_bad_input_with_422_and_changes_nothing(client, session, body):
    sign_in(client, session, make_user(session))
    response = client.post("/api/v1/workspaces", json=body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)
    assert count(session, Workspace) == 0


def test_api_refuses_malformed_json(client, session):
    sign_in(client, session, make_user(session))
    response = client.post(
        "/api/v1/workspaces", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and count(session, Workspace) == 0


def test_outsiders_get_404_for_pages_and_api(client, session):
    owner = make_user(session)
    workspace = make_workspace(session, owner=owner, name="Secret")
    sign_in(client, session, make_user(session))
    assert client.get(f"/w/{workspace.slug}").status_code == 404
    assert client.get(f"/api/v1/workspaces/{workspace.slug}").status_code == 404
    assert client.get("/api/v1/workspaces/no-such-thing").status_code == 404
    assert client.get("/api/v1/workspaces").json() == []


def test_members_see_the_workspace_with_their_role(client, session):
    workspace = make_workspace(session, owner=make_user(session))
    viewer = make_user(session)
    add_member(session, workspace=workspace, user=viewer, role=Role.viewer)
    sign_in(client, session, viewer)
    page = BeautifulSoup(client.get(f"/w/{workspace.slug}").text, "html.parser")
    assert page.find(id="workspace-role").text == "viewer"
    assert "No tasks yet" in page.find(id="tasks-empty").text


@pytest.mark.parametrize(
    ("held", "needed", "allowed"),
    [
        (Role.viewer, Role.viewer, True),
        (Role.viewer, Role.editor, False),
        (Role.editor, Role.editor, True),
        (Role.editor, Role.owner, False),
        (Role.owner, Role.viewer, True),
    ],
)
def test_workspace_access_takes_a_minimum_role(session, held, needed, allowed):
    workspace = make_workspace(session, owner=make_user(session))
    member = make_user(session)
    add_member(session, workspace=workspace, user=member, role=held)
    if allowed:
        found, role = workspace_for(
            session=session, slug=workspace.slug, user=member, min_role=needed
        )
        assert found.id == workspace.id
        assert role == held
    else:
        with pytest.raises(NotFound):
            workspace_for(session=session, slug=workspace.slug, user=member, min_role=needed)


def test_workspace_access_dependency_answers_404_below_the_role(session):
    workspace = make_workspace(session, owner=make_user(session))
    viewer = make_user(session)
    add_member(session, workspace=workspace, user=viewer, role=Role.viewer)
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/x/{slug}")
    def guarded(found: EditableWorkspace) -> dict:
        return {"id": found.workspace.id, "role": found.role}

    with TestClient(app) as test_client:
        sign_in(test_client, session, viewer)
        assert test_client.post(f"/x/{workspace.slug}").status_code == 404
        add_member_role(session, workspace, viewer, Role.editor)
        assert test_client.post(f"/x/{workspace.slug}").json() == {
            "id": workspace.id,
            "role": "editor",
        }


def add_member_role(session, workspace, user, role) -> None:
    session.execute(
        sa.update(Membership)
        .where(Membership.workspace_id == workspace.id, Membership.user_id == user.id)
        .values(role=role)
    )
    session.commit()


def test_slugify():
    assert slugify("  Hello, World!  ") == "hello-world"
    assert slugify("???") == "workspace"
    assert len(slugify("a" * 200)) <= 48
