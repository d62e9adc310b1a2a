"""Links in a real browser: a new invite and a new share link survive a reload, are copied with
one click, show their whole address on a phone, and a task's links are revoked from the task."""

from __future__ import annotations

from playwright.sync_api import expect

from app.models import Message, Task
from tests.factories import make_user, make_workspace

WHOLE_ADDRESS = """(selector) => {
  const element = document.querySelector(selector);
  const box = element.getBoundingClientRect();
  return element.scrollWidth <= element.clientWidth && box.right <= window.innerWidth;
}"""


def test_links_are_made_reloaded_copied_and_revoked(open_page, session, live_server):
    owner = make_user(session)
    workspace = make_workspace(session, owner=owner, name="Links")
    task = Task(workspace_id=workspace.id, title="Shared task")
    session.add(task)
    session.flush()
    session.add(Message(task_id=task.id, role="user", content="hello"))
    session.commit()
    page = open_page(owner)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)

    page.goto(f"/w/{workspace.slug}/members")
    page.click("#invite-create")
    invite = page.locator("#new-link-text")
    expect(invite).to_contain_text("/join/")
    address = invite.inner_text()
    page.reload()
    expect(page.locator("#page-error")).to_have_count(0)
    expect(page.locator("#new-link-text")).to_have_text(address)
    page.click("#new-link-copy")
    expect(page.locator("#new-link-copy")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == address

    page.goto(f"/t/{task.id}")
    page.click("#share summary")
    page.click("#share-create")
    shared = page.locator("#share-url-text")
    expect(shared).to_contain_text("/s/")
    share_address = shared.inner_text()
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#share-url-text")).to_have_text(share_address)
    assert page.evaluate(WHOLE_ADDRESS, "#share-url-text")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.click("#share-copy")
    expect(page.locator("#share-copy")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == share_address

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"/t/{task.id}")
    listed = page.locator("#task-share-links li")
    expect(listed).to_have_count(1)
    listed.locator("button", has_text="Revoke").click()
    expect(page.locator("#task-share-links")).to_have_count(0)
    assert page.request.get(share_address).status == 404
