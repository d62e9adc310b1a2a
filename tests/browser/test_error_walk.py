"""The error walk: every form of the app sent with bad input, as a person would, on a laptop
and on a phone. Each must answer inside the form that was sent (a message in view, next to its
controls) and keep what was typed."""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlmodel import select

from app.engine import runs as operations
from app.engine.pipelines import create_pipeline
from app.models import Agent, Message, Role, Run, RunStatus
from app.services.sharing import create_invite
from app.services.tasks import create_task
from tests.factories import make_agent, make_model, make_user, make_workspace

SIZES = {"laptop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


def answered(page: Page, form: Locator, text: str | None = None) -> None:
    """The form shows why it was refused, in view."""
    alert = form.locator(".error[role=alert]")
    expect(alert).to_be_visible()
    if text:
        expect(alert).to_contain_text(text)
    expect(alert).to_be_in_viewport()


def form_for(page: Page, action: str) -> Locator:
    return page.locator(f"form[action='{action}']")


@pytest.fixture
def world(session, model_server):
    """An admin owner with a workspace: Coder (with a model), Idle (without), a task whose
    question Coder answered, a task with no message yet, and a pipeline."""
    user = make_user(session, admin=True)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=model_server.base_url)
    coder = make_agent(session, workspace=workspace, model=model, name="Coder")
    idle = Agent(workspace_id=workspace.id, name="Idle", model_id=None)
    session.add(idle)
    task, _ = create_task(session=session, workspace=workspace, author=user, title="Add")
    started = operations.ask(session=session, task=task, author=user,
                             content="Write add(a, b).", agent_ids=[coder.id])  # fmt: skip
    (run,) = started.runs
    # Finished without a worker: the answer as a worker would have written it.
    run.status = RunStatus.succeeded
    session.add(run)
    answer = session.get(Message, run.output_message_id)
    answer.content = "def add(a, b):\n    return a + b"
    session.add(answer)
    empty, _ = create_task(session=session, workspace=workspace, author=user, title="Empty")
    pipeline = create_pipeline(
        session=session, workspace_id=workspace.id, author=user, name="Solo",
        steps=[{"agent_id": coder.id, "instruction": ""}],
    )  # fmt: skip
    session.commit()
    return {
        "user": user, "workspace": workspace, "coder": coder, "idle": idle, "task": task,
        "question": started.message, "answer": answer, "empty": empty, "pipeline": pipeline,
    }  # fmt: skip


@pytest.mark.parametrize("size", SIZES)
def test_every_form_answers_bad_input_where_it_was_sent(
    open_page, live_server, session, world, size
):
    user, workspace = world["user"], world["workspace"]
    slug, task = workspace.slug, world["task"]
    page = open_page(user)
    page.set_viewport_size(SIZES[size])

    # The dashboard: a workspace named with spaces only.
    page.goto("/")
    page.fill("#workspace-name", "   ")
    page.click("#create-workspace button[type=submit]")
    answered(page, page.locator("#create-workspace"), "name")

    # The board: a task with no title (the brief kept), a rename to nothing.
    page.goto(f"/w/{slug}")
    page.click("#new-task > summary")
    page.fill("#task-title", "  ")
    page.fill("#task-brief", "Keep this brief.")
    page.click("#task-create")
    new_task = form_for(page, f"/w/{slug}/tasks")
    answered(page, new_task, "title")
    expect(page.locator("#task-brief")).to_have_value("Keep this brief.")
    page.click("#rename-workspace > summary")
    page.fill("#rename-name", "   ")
    form_for(page, f"/w/{slug}/rename").locator("button[type=submit]").click()
    answered(page, form_for(page, f"/w/{slug}/rename"))

    # The task page: the composer with nobody to answer.
    page.goto(f"/t/{task.id}")
    page.fill("#composer-text", "And subtract?")
    page.click("#composer-send")
    answered(page, page.locator("#composer"), "Choose an agent")
    expect(page.locator("#composer-text")).to_have_value("And subtract?")

    # A message's actions: fork, edit, rerun and hand off, each refused where it was sent.
    question, answer = world["question"].id, world["answer"].id
    page.goto(f"/t/{task.id}?at={answer}")
    page.click(f"#message-{question}-fork > summary")
    fork = form_for(page, f"/m/{question}/reply")
    fork.locator("textarea").fill("A question nobody is asked.")
    fork.locator("button[type=submit]").click()
    fork = form_for(page, f"/m/{question}/reply")
    answered(page, fork, "Choose an agent")
    expect(fork.locator("textarea")).to_have_value("A question nobody is asked.")

    page.click(f"#message-{question}-edit > summary")
    edit = form_for(page, f"/m/{question}/edit")
    edit.locator("textarea").fill("Write sub(a, b).")
    edit.locator("input[type=checkbox]:checked").evaluate_all(
        "boxes => boxes.forEach(b => b.checked = false)"
    )
    edit.locator("button[type=submit]").click()
    edit = form_for(page, f"/m/{question}/edit")
    answered(page, edit, "Choose an agent")
    expect(edit.locator("textarea")).to_have_value("Write sub(a, b).")

    page.click(f"#message-{answer}-rerun > summary")
    rerun = form_for(page, f"/m/{answer}/rerun")
    rerun.locator("select").select_option(label="Idle (no model)")
    rerun.locator("button[type=submit]").click()
    rerun = form_for(page, f"/m/{answer}/rerun")
    answered(page, rerun, "Idle has no model")
    expect(rerun.locator("select option:checked")).to_have_text("Idle (no model)")

    page.click(f"#message-{answer}-handoff > summary")
    handoff = form_for(page, f"/m/{answer}/handoff")
    handoff.locator("select").select_option(label="Idle (no model)")
    handoff.locator("input[name=instruction]").fill("Test this.")
    handoff.locator("button[type=submit]").click()
    handoff = form_for(page, f"/m/{answer}/handoff")
    answered(page, handoff, "Idle has no model")
    expect(handoff.locator("input[name=instruction]")).to_have_value("Test this.")

    # Agents: a second "Coder" (its prompt kept); Idle renamed to Coder.
    page.goto(f"/w/{slug}/agents")
    if page.locator("#new-agent[open]").count() == 0:
        page.click("#new-agent > summary")
    page.fill("#new-agent-name", "Coder")
    page.fill("#new-agent-prompt", "You write code.")
    page.click("#new-agent-create")
    created = page.locator("#new-agent-form")
    answered(page, created, "named 'Coder' already")
    expect(page.locator("#new-agent-prompt")).to_have_value("You write code.")
    idle = world["idle"].id
    page.click(f"#agent-{idle}-edit > summary")
    page.fill(f"#agent-{idle}-name", "Coder")
    page.fill(f"#agent-{idle}-prompt", "Idle hands.")
    form_for(page, f"/agents/{idle}").locator("button[type=submit]").click()
    answered(page, form_for(page, f"/agents/{idle}"), "named 'Coder' already")
    expect(page.locator(f"#agent-{idle}-prompt")).to_have_value("Idle hands.")

    # Pipelines: no steps; a step without its instruction; started on a task with no message.
    page.goto(f"/w/{slug}/pipelines")
    if page.locator("#new-pipeline-panel[open]").count() == 0:
        page.click("#new-pipeline-panel > summary")
    page.fill("#pipeline-name", "Write, test")
    page.click("#pipeline-create")
    answered(page, page.locator("#new-pipeline"), "between 1 and 6 steps")
    expect(page.locator("#pipeline-name")).to_have_value("Write, test")
    pid = world["pipeline"].id
    page.click(f"#pipeline-{pid}-edit > summary")
    page.select_option(f"#pipeline-{pid}-step-1-agent", label="Coder")
    form_for(page, f"/pipelines/{pid}").locator("button[type=submit]").click()
    answered(page, form_for(page, f"/pipelines/{pid}"), "Step 2")
    expect(page.locator(f"#pipeline-{pid}-step-1-agent option:checked")).to_have_text("Coder")
    page.click(f"#pipeline-{pid}-start > summary")
    page.select_option(f"#pipeline-{pid}-task", label="Empty")
    form_for(page, f"/pipelines/{pid}/start").locator("button[type=submit]").click()
    started = page.locator(f"#pipeline-{pid}-start")
    answered(page, started, "no message yet")
    expect(page.locator(f"#pipeline-{pid}-task option:checked")).to_have_text("Empty")

    # Members: deleting the workspace without typing its name right.
    page.goto(f"/w/{slug}/members")
    page.fill("#confirm-slug", "not-the-slug")
    page.click("#delete-form button[type=submit]")
    answered(page, page.locator("#delete-form"), "to confirm")
    expect(page.locator("#confirm-slug")).to_have_value("not-the-slug")

    # The account: a token named with spaces; a wrong current password.
    page.goto("/account")
    page.fill("#token-name", "   ")
    page.click("#token-create")
    answered(page, page.locator("#token-form"), "Name the token")
    page.fill("#current-password", "not my password")
    page.fill("#new-password", "a brand new password")
    page.click("#password-form button[type=submit]")
    answered(page, page.locator("#password-form"))

    # Model endpoints: an address that is not one (the name kept).
    page.goto("/admin/endpoints")
    page.fill("#endpoint-name", "Broken box")
    page.fill("#endpoint-url", "not a url")
    page.click("#add-endpoint button[type=submit]")
    answered(page, page.locator("#add-endpoint"))
    expect(page.locator("#endpoint-name")).to_have_value("Broken box")

    # Joining by an invite with an address that has an account already (the name kept).
    invite = create_invite(session=session, workspace=workspace, owner=user, role=Role.viewer)
    session.commit()
    stranger = page.context.browser.new_context(base_url=live_server, viewport=SIZES[size])
    try:
        guest = stranger.new_page()
        guest.goto(f"/join/{invite.token}")
        guest.fill("#signup-email", user.email)
        guest.fill("#signup-name", "Someone else")
        guest.fill("#signup-password", "a long enough password")
        guest.click("#signup-button")
        answered(guest, guest.locator("#signup-form"), "already exists")
        expect(guest.locator("#signup-name")).to_have_value("Someone else")
    finally:
        stranger.close()

    # Nothing the walk sent was saved.
    assert len(session.exec(select(Run)).all()) == 1
