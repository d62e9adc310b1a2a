"""A suite's results grid in a real browser: a suite imported from YAML on its page, run against
two agents from the form, the grid filling in by itself while the runs finish, and a cell one
click from its answer."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS
from tests.engine_helpers import CHAT
from tests.factories import make_agent, make_model, make_user, make_workspace
from tests.scripted_server import answer

SUITE_YAML = """\
name: Greetings
prompts:
  - prompt: Say hello.
    checks:
      - {kind: contains, text: hello, ignore_case: true}
  - prompt: Say goodbye.
    checks:
      - {kind: regex, pattern: "good ?bye", ignore_case: true}
"""
ANSWERS = {
    ("Polite", "Say hello."): "Hello there!",
    ("Polite", "Say goodbye."): "Goodbye, friend.",
    ("Terse", "Say hello."): "Hi.",
    ("Terse", "Say goodbye."): "Good bye.",
}


def by_agent(received):
    messages = received.json["messages"]
    name = messages[0]["content"].removeprefix("You are ").rstrip(".")
    return answer(ANSWERS[(name, messages[-1]["content"])], pause=0.05)


def test_a_suite_runs_and_its_grid_fills_in_live(
    open_page, session, model_server, no_worker, _session_worker
):
    user = make_user(session)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=model_server.base_url)
    polite = make_agent(session, workspace=workspace, model=model, name="Polite")
    terse = make_agent(session, workspace=workspace, model=model, name="Terse")
    model_server.on(CHAT, by_agent)
    page = open_page(user)

    page.goto(f"/w/{workspace.slug}")
    page.click("a[href$='/suites']")
    page.fill("#suite-text", SUITE_YAML)
    page.click("#suite-create")
    expect(page.locator("#suite-title")).to_have_text("Greetings")
    expect(page.locator("#suite-prompts li.panel")).to_have_count(2)

    page.check(f"#run-suite input[value='{polite.id}']")
    page.check(f"#run-suite input[value='{terse.id}']")
    page.click("#suite-run-start")
    expect(page.locator("#suite-run-title")).to_contain_text("Greetings · run 1")
    # No worker yet: the runs wait in the queue, and the grid says so.
    expect(page.locator("#suite-grid")).to_have_class("live")
    expect(page.locator(f"#cell-0-{polite.id}")).to_have_attribute("data-status", "queued")

    # With a worker the grid fills in by itself (htmx polling) until every cell is decided.
    _session_worker.start()
    expect(page.locator("#suite-grid")).to_have_class("finished", timeout=60_000)
    expect(page.locator(f"#cell-0-{polite.id}")).to_have_attribute("data-status", "passed")
    expect(page.locator(f"#cell-1-{polite.id}")).to_have_attribute("data-status", "passed")
    expect(page.locator(f"#cell-0-{terse.id}")).to_have_attribute("data-status", "failed")
    expect(page.locator(f"#cell-1-{terse.id}")).to_have_attribute("data-status", "passed")
    expect(page.locator(f"#pass-rate-{polite.id}")).to_contain_text("100 %")
    expect(page.locator(f"#pass-rate-{terse.id}")).to_contain_text("50 %")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "suite-grid.png"), full_page=True)

    # One click from a cell to its answer.
    page.click(f"#cell-0-{terse.id} a.cell-link")
    expect(page.locator("#task-title")).to_contain_text("Greetings · run 1 · prompt 1 · Terse")
    expect(page.get_by_text("Hi.", exact=True)).to_be_visible()
