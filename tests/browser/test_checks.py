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


def test_a_testers_tests_run_against_the_answer_picked_on_the_page(
    open_page, session, model_server, worker, checker
):
    user = make_user(session)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=model_server.base_url)
    for name in ("Coder", "Second coder", "Tester"):
        make_agent(session, workspace=workspace, model=model, name=name)
    model_server.on(CHAT, by_agent)
    page = open_page(user)
    page.goto(f"/w/{workspace.slug}")
    page.fill("#task-title", "Add two numbers")
    page.fill("#task-brief", "Write add(a, b) in Python.")
    page.check("#task-fanout label:has-text('Coder') >> nth=0")
    page.check("#task-fanout label:has-text('Second coder') input")
    page.click("#task-create")
    expect(page.locator("#task-title")).to_have_text("Add two numbers")
    task_id = int(page.url.split("/t/")[1].split("?")[0])
    buggy, fixed = (run.output_message_id for run in finished_answers(session, task_id, 2))
    # The buggy answer handed to the Tester: its tests fail against it.
    page.goto(f"/t/{task_id}?at={buggy}")
    card = page.locator(f"#message-{buggy}")
    card.locator(f"#message-{buggy}-handoff > summary").click()
    card.locator("select[name=agent_id]").last.select_option(label="Tester")
    card.locator("input[name=instruction]").fill("Test this.")
    card.locator("button:has-text('Hand off')").click()
    expect(page.locator("#thread .check-card .badge").first).to_have_text("✗ 1/2", timeout=60_000)
    tests = finished_answers(session, task_id, 3)[-1].output_message_id

    # On the Tester's answer: run its tests against the other Coder's answer, picked here.
    page.locator(f"#message-{tests}-test-against > summary").click()
    picker = page.locator(f"#test-against-{tests}")
    expect(picker.locator("option")).to_have_count(2)  # both Coders' answers, not the tests
    expect(picker).to_have_value(str(buggy))  # chosen at first: the answer it was handed
    picker.select_option(str(fixed))
    page.click(f"#message-{tests}-test-against-run")

    check = page.locator("#thread .check-card")
    expect(check).to_have_count(1)  # the page shows the new check's branch
    expect(check.locator(".badge").first).to_have_text("✓ 2/2", timeout=60_000)
    expect(check).to_contain_text(f"tests of answer #{tests} against #{fixed}")
    expect(page.locator("#thread .message-check strong").first).to_have_text("Check result")


def test_a_pipeline_loops_on_the_page_until_its_checks_pass(
    open_page, session, model_server, worker, checker
):
    from app.engine.pipelines import create_pipeline
    from app.models import Check, Message
    from app.redis_conn import get_redis

    user = make_user(session)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=model_server.base_url)
    coder = make_agent(session, workspace=workspace, model=model, name="Coder")
    tester = make_agent(session, workspace=workspace, model=model, name="Tester")
    create_pipeline(
        session=session, workspace_id=workspace.id, author=user, name="Write, test, fix",
        steps=[{"agent_id": coder.id, "instruction": ""},
               {"agent_id": tester.id, "instruction": "Test this."},
               {"agent_id": coder.id, "instruction": "Fix the code."}],
        max_rounds=3, run_checks=True, stop_when_checks_pass=True,
    )  # fmt: skip
    session.commit()

    def coder_fixes_when_told(received):
        name = received.json["messages"][0]["content"].removeprefix("You are ").rstrip(".")
        if name == "Tester":
            return answer(TESTS, pause=0.01)
        told = any("Checks:" in m["content"] for m in received.json["messages"])
        return answer(FIXED if told else BUGGY, pause=0.01)

    model_server.on(CHAT, coder_fixes_when_told)
    page = open_page(user)
    page.goto(f"/w/{workspace.slug}")
    page.fill("#task-title", "Add two numbers")
    page.fill("#task-brief", "Write add(a, b) in Python.")
    page.check("#task-fanout label:has-text('Coder') input")
    page.click("#task-create")
    expect(page.locator("#task-title")).to_have_text("Add two numbers")
    task_id = int(page.url.split("/t/")[1].split("?")[0])
    finished_answers(session, task_id, 1)
    page.goto(f"/t/{task_id}")

    page.select_option("#pipeline-choice", label="Write, test, fix")
    page.click("#pipeline-start")

    # From here the page follows the pipeline by itself: each step live, each check's card.
    checks = page.locator("#thread .check-card")
    expect(checks.first.locator(".badge").first).to_have_text("✗ 1/2", timeout=90_000)
    expect(page.locator("#thread")).to_contain_text("Fix the code.", timeout=90_000)
    expect(checks).to_have_count(2, timeout=120_000)
    expect(checks.nth(1).locator(".badge").first).to_have_text("✓ 2/2", timeout=90_000)
    expect(page.locator("#thread .check-failures")).to_have_count(1)  # the red round's
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "pipeline-until-green.png"), full_page=True)

    # It stopped green: once every delivery is over nothing follows the passing check, and
    # the page no longer looks for a next step.
    redis = get_redis()
    deadline = time.monotonic() + 60
    while redis.hlen("unacked") and time.monotonic() < deadline:
        time.sleep(0.2)
    session.expire_all()
    found = session.exec(select(Check).where(Check.task_id == task_id).order_by(Check.id)).all()
    assert [c.status for c in found] == ["failed", "passed"]
    assert (
        session.exec(select(Message.id).where(Message.parent_id == found[1].message_id)).all() == []
    )
    expect(page.locator(".pipeline-follow")).to_have_count(0)
    runs = session.exec(select(Run).where(Run.task_id == task_id).order_by(Run.id)).all()
    assert [r.agent_id for r in runs if r.pipeline_id] == [coder.id, tester.id, coder.id, tester.id]
