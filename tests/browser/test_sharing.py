"""Two browsers share one workspace with different roles."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.engine_helpers import CHAT, by_system_prompt
from tests.factories import make_agent, make_model, make_user, make_workspace


def test_an_owner_invites_a_viewer_who_reads_but_cannot_run(
    browser, open_page, session, model_server, worker, live_server
):
    owner = make_user(session)
    workspace = make_workspace(session, owner=owner, name="Shared space")
    model = make_model(session, base_url=model_server.base_url)
    agent = make_agent(session, workspace=workspace, model=model, name="Coder")
    model_server.on(CHAT, by_system_prompt)

    owner_page = open_page(owner)
    owner_page.goto(f"/w/{workspace.slug}")
    owner_page.fill("#task-title", "Visible to the team")
    owner_page.fill("#task-brief", "Say hello.")
    owner_page.check(f"#task-fanout input[value='{agent.id}']")
    owner_page.click("#task-create")
    expect(owner_page.locator("#thread")).to_contain_text("Coder says hello", timeout=20_000)

    owner_page.goto(f"/w/{workspace.slug}/members")
    owner_page.select_option("#invite-role", "viewer")
    owner_page.click("#invite-create")
    invite_url = owner_page.locator("#new-link-url").input_value()
    assert "/join/" in invite_url

    # The second browser has no account: it signs up through the link.
    guest = browser.new_context(base_url=live_server)
    try:
        guest_page = guest.new_page()
        guest_page.goto(invite_url)
        expect(guest_page.locator("#join-role")).to_have_text("viewer")
        guest_page.fill("#signup-email", "viewer@example.com")
        guest_page.fill("#signup-name", "Vi")
        guest_page.fill("#signup-password", "a long viewer password")
        guest_page.click("#signup-button")
        expect(guest_page.locator("#workspace-role")).to_have_text("viewer")
        expect(guest_page.locator("#new-task")).to_have_count(0)
        guest_page.click("text=Visible to the team")
        expect(guest_page.locator("#thread")).to_contain_text("Coder says hello")
        expect(guest_page.locator("#composer")).to_have_count(0)
        expect(guest_page.locator("#thread .compact-actions")).to_have_count(0)
        # The API refuses the viewer's writes, whatever the page offers.
        task_id = guest_page.url.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
        refused = guest_page.request.post(
            f"{live_server}/api/v1/tasks/{task_id}/messages",
            data={"content": "let me in", "agent_ids": [agent.id]},
            headers={"Origin": live_server},
        )
        assert refused.status == 404
    finally:
        guest.close()

    owner_page.goto(f"/w/{workspace.slug}/members")
    expect(owner_page.locator("#invite-list")).to_contain_text("joined: viewer@example.com")
    expect(owner_page.locator("#member-list")).to_contain_text("viewer@example.com")
