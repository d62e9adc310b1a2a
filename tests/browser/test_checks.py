"""Checks in a real browser: a coding task fanned out to two Coders, each answer handed to the
Tester, both checks run in the real sandbox (their cards update themselves), and compare shows
the two results side by side."""

from __future__ import annotations

import time

from playwright.sync_api import expect
from sqlmodel import select

from app.models import Run
from tests.browser.conftest import ARTIFACTS
from tests.engine_helpers import CHAT
from tests.factories import make_agent, make_model, make_user, make_workspace
from tests.scripted_server import answer

BUGGY = "```python\ndef add(a, b):\n    return a - b\n```"
FIXED = "```python\ndef add(a, b):\n    return a + b\n```"
TESTS = (
    "```python\nfrom solution import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
    "def test_zero():\n    assert add(0, 0) == 0\n```"
)
CODE_OF = {"Coder": BUGGY, "Second coder": FIXED, "Tester": TESTS}


def by_agent(received):
    name = received.json["messages"][0]["content"].removeprefix("You are ").rstrip(".")
    return answer(CODE_OF[name], pause=0.01)


def finished_answers(session, task_id: int, count: int) -> list[Run]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        session.expire_all()
        runs = session.exec(select(Run).where(Run.task_id == task_id).order_by(Run.id)).all()
        if len(runs) >= count and all(r.status == "succeeded" for r in runs):
            return list(runs)
        time.sleep(0.2)
    raise AssertionError(f"{count} answers not finished")


def test_two_coders_answers_tested_and_compared(open_page, session, model_server, worker, checker):
    user = make_user(session)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=model_server.base_url)
    for name in ("Coder", "Second coder", "Tester"):
        make_agent(session, workspace=workspace, model=model, name=name)
    model_server.on(CHAT, by_agent)
    page = open_page(user)

    # A coding task fanned out to the two Coders.
    page.goto(f"/w/{workspace.slug}")
    page.fill("#task-title", "Add two numbers")
    page.fill("#task-brief", "Write add(a, b) in Python.")
    page.check("#task-fanout label:has-text('Coder') >> nth=0")
    page.check("#task-fanout label:has-text('Second coder') input")
    page.click("#task-create")
    expect(page.locator("#task-title")).to_have_text("Add two numbers")
    task_id = int(page.url.split("/t/")[1].split("?")[0])
    coders = finished_answers(session, task_id, 2)

    # Each answer handed to the Tester; its check card appears under the tests and updates
    # itself until the verdict is in.
    for run, verdict in zip(coders, ("✗ 1/2", "✓ 2/2"), strict=True):
        page.goto(f"/t/{task_id}?at={run.output_message_id}")
        card = page.locator(f"#message-{run.output_message_id}")
        card.locator(f"#message-{run.output_message_id}-handoff > summary").click()
        card.locator("select[name=agent_id]").last.select_option(label="Tester")
        card.locator("input[name=instruction]").fill("Test this.")
        card.locator("button:has-text('Hand off')").click()
        expect(page.locator("#thread")).to_contain_text("Test this.")
        check = page.locator("#thread .check-card")
        expect(check).to_be_visible(timeout=30_000)
        expect(check.locator(".badge").first).to_have_text(verdict, timeout=60_000)
    expect(page.locator("#thread .check-failures")).to_have_count(0)  # the green one
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"/t/{task_id}?at={coders[0].output_message_id}")
    page.goto(page.url)  # the first branch, down to its check
    page.screenshot(path=str(ARTIFACTS / "check-card.png"), full_page=True)

    # Compare the two Coders' answers: each column shows its check.
    page.goto(f"/t/{task_id}?at={coders[0].output_message_id}")
    page.click("#compare-link")
    expect(page.locator("#compare-columns .compare-column")).to_have_count(2)
    expect(page.locator("#column-A-check")).to_have_text("✗ 1/2")
    expect(page.locator("#column-B-check")).to_have_text("✓ 2/2")
    page.screenshot(path=str(ARTIFACTS / "compare-checks.png"), full_page=True)
