"""Sharing a workspace: invite links, read-only share links, roles, tokens, sign-in limits."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlmodel import select

from app.models import ApiToken, Event, Membership, Role, ShareLink, User
from app.models.common import utcnow
from app.web.app import create_app
from tests.factories import PASSWORD, add_member, make_user, make_workspace, sign_in


def soup(response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


def new_client() -> TestClient:
    return TestClient(create_app(), base_url="http://testserver")


def owner_with_workspace(client, session):
    owner = make_user(session)
    sign_in(client, session, owner)
    return owner, make_workspace(session, owner=owner)


def invite(client, workspace, **form) -> str:
    data = {"role": "editor", "expires_in_days": "7", "max_uses": "10", **form}
    page = soup(client.post(f"/w/{workspace.slug}/invites", data=data))
    return page.find(id="new-link-url")["value"]


def test_an_invite_signs_up_a_teammate_who_lands_in_the_workspace(client, session):
    owner, workspace = owner_with_workspace(client, session)
    url = invite(client, workspace)
    assert re.fullmatch(r"http://testserver/join/[A-Za-z0-9_-]{43}", url)
    path = url.removeprefix("http://testserver")
    with new_client() as stranger:
        join_page = soup(stranger.get(path))
        assert join_page.find(id="join-role").text == "editor"
        joined = stranger.post(
            f"{path}/signup",
            data={"email": "grace@example.com", "password": "a long password", "display_name": "G"},
            follow_redirects=False,
        )
        assert joined.status_code == 303 and joined.headers["location"] == f"/w/{workspace.slug}"
        assert stranger.get(f"/w/{workspace.slug}").status_code == 200
    grace = session.exec(select(User).where(User.email == "grace@example.com")).one()
    membership = session.exec(select(Membership).where(Membership.user_id == grace.id)).one()
    assert membership.role == Role.editor and membership.share_link_id is not None
    members = soup(client.get(f"/w/{workspace.slug}/members"))
    assert "joined: grace@example.com" in members.find(id="invite-list").text
    verbs = session.exec(select(Event.verb).where(Event.workspace_id == workspace.id)).all()
    assert {"created", "joined"} <= set(verbs)


def test_a_signed_in_person_joins_with_one_click(client, session):
    _, workspace = owner_with_workspace(client, session)
    path = invite(client, workspace, role="viewer").removeprefix("http://testserver")
    friend = make_user(session)
    with new_client() as other:
        sign_in(other, session, friend)
        assert "Join as" in soup(other.get(path)).find(id="join-button").text
        assert other.post(path, follow_redirects=False).status_code == 303
        me = other.get(f"/api/v1/workspaces/{workspace.slug}").json()
        assert me["role"] == "viewer"


def test_use_limit_expiry_and_revocation_close_an_invite(client, session):
    _, workspace = owner_with_workspace(client, session)
    once = invite(client, workspace, max_uses="1").removeprefix("http://testserver")
    with new_client() as first:
        sign_in(first, session, make_user(session))
        assert first.post(once, follow_redirects=False).status_code == 303
    with new_client() as second:
        sign_in(second, session, make_user(session))
        assert second.get(once).status_code == 404
        assert second.post(once).status_code == 404
        expired = invite(client, workspace).removeprefix("http://testserver")
        session.execute(sa.update(ShareLink).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
        assert second.get(expired).status_code == 404
        revoked = invite(client, workspace).removeprefix("http://testserver")
        link = session.exec(select(ShareLink).order_by(ShareLink.id.desc())).first()
        client.post(f"/links/{link.id}/revoke")
        assert second.post(revoked).status_code == 404
        assert second.get("/join/not-a-real-token").status_code == 404
        assert second.get(f"/api/v1/workspaces/{workspace.slug}").status_code == 404


def test_only_owners_manage_members_and_the_last_owner_stays(client, session):
    owner, workspace = owner_with_workspace(client, session)
    editor = make_user(session)
    add_member(session, workspace=workspace, user=editor, role=Role.editor)
    refused = client.post(f"/w/{workspace.slug}/members/{owner.id}/role", data={"role": "viewer"})
    assert refused.status_code == 409 and "last owner" in soup(refused).find(id="page-error").text
    assert client.post(f"/w/{workspace.slug}/leave").status_code == 409
    client.post(f"/w/{workspace.slug}/members/{editor.id}/role", data={"role": "owner"})
    assert client.post(f"/w/{workspace.slug}/leave", follow_redirects=False).status_code == 303
    with new_client() as other:
        sign_in(other, session, editor)
        assert (
            other.delete(f"/api/v1/workspaces/{workspace.slug}/members/{owner.id}").status_code
            == 404
        )
    viewer = make_user(session)
    add_member(session, workspace=workspace, user=viewer, role=Role.viewer)
    with new_client() as other:
        sign_in(other, session, viewer)
        body = {"role": "owner"}
        path = f"/api/v1/workspaces/{workspace.slug}/members/{viewer.id}"
        assert other.put(path, json=body).status_code == 404
        assert (
            other.post(f"/api/v1/workspaces/{workspace.slug}/invites", json={}).status_code == 404
        )
        assert other.delete(f"/api/v1/workspaces/{workspace.slug}").status_code == 404


def test_read_only_links_show_a_task_without_an_account_and_can_be_revoked(client, session):
    from app.models import Message, Task

    owner, workspace = owner_with_workspace(client, session)
    task = Task(workspace_id=workspace.id, title="Shared task")
    session.add(task)
    session.flush()
    session.add(Message(task_id=task.id, role="user", content="**hello** there"))
    session.commit()
    viewer = make_user(session)
    add_member(session, workspace=workspace, user=viewer, role=Role.viewer)
    sign_in(client, session, viewer)  # viewers may share too
    public = client.post(f"/api/v1/tasks/{task.id}/share-links", json={"allow_anonymous": True})
    private = client.post(f"/api/v1/tasks/{task.id}/share-links", json={})
    assert public.status_code == private.status_code == 201
    with new_client() as anonymous:
        page = soup(anonymous.get(public.json()["url"].removeprefix("http://testserver")))
        assert page.find(id="shared-title").text == "Shared task"
        assert page.find("strong", string="hello") is not None
        assert page.find("form") is None or page.find("form", action="/signout") is not None
        assert "hx-trigger" in str(page.find(id="shared-live"))
        private_path = private.json()["url"].removeprefix("http://testserver")
        assert anonymous.get(private_path, follow_redirects=False).status_code == 303
        client.delete(f"/api/v1/links/{public.json()['id']}")
        assert (
            anonymous.get(public.json()["url"].removeprefix("http://testserver")).status_code == 404
        )


def test_sign_in_is_rate_limited_per_account(client, session):
    make_user(session, email="target@example.com")
    for _ in range(10):
        wrong = client.post("/signin", data={"email": "target@example.com", "password": "nope"})
        assert wrong.status_code == 400
    blocked = client.post("/signin", data={"email": "target@example.com", "password": PASSWORD})
    assert blocked.status_code == 429 and "Too many" in blocked.text
    make_user(session, email="other@example.com")
    fine = client.post("/signin", data={"email": "other@example.com", "password": PASSWORD},
                       follow_redirects=False)  # fmt: skip
    assert fine.status_code == 303


def test_api_tokens_are_shown_once_used_and_revoked(client, session):
    user = make_user(session)
    sign_in(client, session, user)
    created = client.post("/api/v1/me/tokens", json={"name": "nightly"}).json()
    assert len(created["token"]) == 43
    assert session.exec(select(ApiToken.token_hash)).one() != created["token"]
    listed = client.get("/api/v1/me/tokens").json()
    assert "token" not in listed[0] and listed[0]["last_used_at"] is None
    with new_client() as script:
        headers = {"Authorization": f"Bearer {created['token']}"}
        assert script.get("/api/v1/me", headers=headers).json()["id"] == user.id
        assert client.get("/api/v1/me/tokens").json()[0]["last_used_at"] is not None
        assert client.delete(f"/api/v1/me/tokens/{created['id']}").status_code == 204
        assert script.get("/api/v1/me", headers=headers).status_code == 401
    page = soup(client.post("/account/tokens", data={"name": "from the page"}))
    assert len(page.find(id="new-token-value")["value"]) == 43


def test_change_password(client, session):
    user = make_user(session, email="pw@example.com")
    sign_in(client, session, user)
    new = "another long one"
    wrong = client.put("/api/v1/me/password", json={"current_password": "no", "new_password": new})
    assert wrong.status_code == 400
    ok = client.put("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": new})
    assert ok.status_code == 204
    with new_client() as fresh:
        signed = fresh.post("/signin", data={"email": "pw@example.com",
                                             "password": "another long one"},
                            follow_redirects=False)  # fmt: skip
        assert signed.status_code == 303


def test_cross_site_join_is_refused(client, session):
    _, workspace = owner_with_workspace(client, session)
    path = invite(client, workspace).removeprefix("http://testserver")
    with new_client() as other:
        sign_in(other, session, make_user(session))
        response = other.post(path, headers={"Origin": "https://evil.example"})
        assert response.status_code == 403
