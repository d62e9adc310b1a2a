"""New links on the pages: post/redirect/get (a reload shows the address again, to the browser
that made it), and a task's working read-only links listed with Revoke."""

from __future__ import annotations

from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from app.models import Message, Role, Task
from app.web.app import create_app
from tests.factories import add_member, make_user, make_workspace, sign_in


def soup(response) -> BeautifulSoup:
    assert response.status_code == 200, response.text
    return BeautifulSoup(response.text, "html.parser")


def _task(session, workspace) -> Task:
    task = Task(workspace_id=workspace.id, title="Shared task")
    session.add(task)
    session.flush()
    session.add(Message(task_id=task.id, role="user", content="hello"))
    session.commit()
    return task


def test_an_invite_survives_a_reload_and_only_its_maker_sees_its_address(client, session):
    owner = make_user(session)
    sign_in(client, session, owner)
    workspace = make_workspace(session, owner=owner)
    data = {"role": "editor", "expires_in_days": "7", "max_uses": "10"}
    made = client.post(f"/w/{workspace.slug}/invites", data=data, follow_redirects=False)
    assert made.status_code == 303
    target = made.headers["location"]
    assert target.startswith(f"/w/{workspace.slug}/members?new=")
    first = soup(client.get(target)).find(id="new-link-url")["value"]
    assert "/join/" in first
    again = soup(client.get(target))  # a reload: the same address, not "not allowed here"
    assert again.find(id="new-link-url")["value"] == first
    assert again.find(id="new-link-text").text == first
    assert again.find(id="new-link-copy")["data-copy"] == "#new-link-text"
    # The same owner in another browser: no address (it is not stored), but a clear word.
    with TestClient(create_app(), base_url="http://testserver") as other:
        sign_in(other, session, owner)
        elsewhere = soup(other.get(target))
        assert elsewhere.find(id="new-link-url") is None
        assert elsewhere.find(id="new-link-gone")
    link_id = int(target.rsplit("=", 1)[1])
    client.post(f"/links/{link_id}/revoke")
    assert soup(client.get(target)).find(id="new-link-url") is None


def test_a_share_link_survives_a_reload_is_listed_on_its_task_and_revoked_there(client, session):
    owner = make_user(session)
    workspace = make_workspace(session, owner=owner)
    task = _task(session, workspace)
    viewer = make_user(session)
    add_member(session, workspace=workspace, user=viewer, role=Role.viewer)
    sign_in(client, session, viewer)
    made = client.post(f"/t/{task.id}/share", data={"allow_anonymous": "true"},
                       follow_redirects=False)  # fmt: skip
    assert made.status_code == 303
    target = made.headers["location"]
    page = soup(client.get(target))
    url = page.find(id="share-url-text").text
    assert "/s/" in url and page.find(id="share-copy")["data-copy"] == "#share-url-text"
    assert soup(client.get(target)).find(id="share-url-text").text == url  # reload
    path = url.removeprefix("http://testserver")
    link_id = int(target.split("/")[2])

    listed = soup(client.get(f"/t/{task.id}")).find(id=f"task-share-link-{link_id}")
    assert listed is not None and "no account needed" in listed.text
    # Another member's task page lists only what they may revoke: the owner sees it, an
    # editor who did not make it does not.
    editor = make_user(session)
    add_member(session, workspace=workspace, user=editor, role=Role.editor)
    with TestClient(create_app(), base_url="http://testserver") as other:
        sign_in(other, session, editor)
        assert soup(other.get(f"/t/{task.id}")).find(id=f"task-share-link-{link_id}") is None
        assert other.get(target).status_code == 404  # nor the page of a link they did not make
        sign_in(other, session, owner)
        assert soup(other.get(f"/t/{task.id}")).find(id=f"task-share-link-{link_id}")

    # A task one cannot see is refused before anything changes.
    refused = client.post(f"/links/{link_id}/revoke", data={"back_to_task": 10**9})
    assert refused.status_code == 404
    assert soup(client.get(f"/t/{task.id}")).find(id=f"task-share-link-{link_id}")
    revoked = client.post(f"/links/{link_id}/revoke", data={"back_to_task": task.id},
                          follow_redirects=False)  # fmt: skip
    assert revoked.status_code == 303
    assert revoked.headers["location"].startswith(f"/t/{task.id}")
    assert soup(client.get(f"/t/{task.id}")).find(id=f"task-share-link-{link_id}") is None
    with TestClient(create_app(), base_url="http://testserver") as anonymous:
        assert anonymous.get(path).status_code == 404
    assert soup(client.get(target)).find(id="share-url-gone")
