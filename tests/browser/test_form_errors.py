"""Every mistake is answered on screen: a form sent with bad input shows the server's message
next to it and keeps what was typed, on a laptop and on a phone (htmx swaps 4xx answers in)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.models import Agent
from tests.factories import make_agent, make_model, make_user, make_workspace

SIZES = {"laptop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.mark.parametrize("size", SIZES)
def test_a_wrong_password_is_answered_and_the_email_kept(browser, live_server, session, size):
    user = make_user(session)
    context = browser.new_context(base_url=live_server, viewport=SIZES[size])
    try:
        page = context.new_page()
        page.goto("/signin")
        page.fill("#signin-email", user.email)
        page.fill("#signin-password", "not the password")
        page.click("#signin-form button[type=submit]")
        expect(page.locator("#signin-error")).to_be_visible()
        expect(page.locator("#signin-email")).to_have_value(user.email)
    finally:
        context.close()


@pytest.mark.parametrize("size", SIZES)
def test_task_and_pipeline_mistakes_are_answered_where_they_were_made(
    open_page, session, model_server, size
):
    user = make_user(session)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=model_server.base_url)
    make_agent(session, workspace=workspace, model=model, name="Coder")
    modelless = Agent(workspace_id=workspace.id, name="Idle", model_id=None)
    session.add(modelless)
    session.commit()
    page = open_page(user)
    page.set_viewport_size(SIZES[size])

    # A task with no agent: created, then Send with nobody ticked.
    page.goto(f"/w/{workspace.slug}")
    page.fill("#task-title", "Parse dates")
    page.click("#task-create")
    expect(page.locator("h1")).to_have_text("Parse dates")
    page.fill("#composer-text", "Split 2026-11-28 into parts.")
    page.click("#composer-send")
    expect(page.locator("#composer-error")).to_have_text(
        "Choose an agent, or assign the task to one."
    )
    expect(page.locator("#composer-error")).to_be_in_viewport()
    expect(page.locator("#composer-text")).to_have_value("Split 2026-11-28 into parts.")

    # An agent without a model is shown but cannot be picked.
    expect(page.locator("#composer label:has-text('Idle')")).to_contain_text("(no model)")
    expect(page.locator("#composer label:has-text('Idle') input")).to_be_disabled()

    # A pipeline with no steps.
    page.goto(f"/w/{workspace.slug}/pipelines")
    page.fill("#pipeline-name", "Write, test")
    page.click("#pipeline-create")
    expect(page.locator("#pipeline-error")).to_be_visible()
    expect(page.locator("#pipeline-name")).to_have_value("Write, test")
