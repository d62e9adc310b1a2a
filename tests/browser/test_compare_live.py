"""Compare in a real browser: opened while the answers stream, its differences appear without a
reload; the vote is confirmed where it was cast, without scrolling, on a laptop and a phone;
comparing the same answers again opens the same comparison; the task lists it with its vote."""

from __future__ import annotations

from playwright.sync_api import expect

from app.engine.dispatch import dispatch
from app.services.tasks import create_task
from tests.engine_helpers import CHAT
from tests.factories import make_agent, make_model, make_user, make_workspace
from tests.scripted_server import answer


def _slow_answers(received):
    name = received.json["messages"][0]["content"].removeprefix("You are ").rstrip(".")
    lines = "\n".join(f"{name} line {i}: " + " ".join(["text"] * 10) for i in range(30))
    return answer(lines, pause=0.01)


def test_compare_while_streaming_vote_and_find_it_again(open_page, session, model_server, worker):
    model_server.on(CHAT, _slow_answers)
    user = make_user(session)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=model_server.base_url)
    agents = [make_agent(session, workspace=workspace, model=model, name=n) for n in ("Ann", "Bo")]
    task, started = create_task(session=session, workspace=workspace, author=user,
                                title="Two answers", brief="Answer this.",
                                agent_ids=[a.id for a in agents])  # fmt: skip
    session.commit()
    dispatch([run.id for run in started.runs])

    page = open_page(user)
    page.goto(f"/t/{task.id}")
    page.click("#fanout-compare")
    expect(page.locator("#compare-question")).to_contain_text("Answer this.")
    comparison_url = page.url
    page.evaluate("() => { window.__same_page = true; }")
    expect(page.locator("#column-B-text mark").first).to_be_visible(timeout=60_000)
    assert page.evaluate("() => window.__same_page === true")  # no reload needed
    for size in ({"width": 1280, "height": 900}, {"width": 390, "height": 844}):
        page.set_viewport_size(size)
        page.goto(comparison_url)
        expect(page.locator("#compare-question")).to_be_in_viewport()
        expect(page.locator("#vote-a")).to_be_in_viewport()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= size["width"]
    page.click("#vote-a")
    expect(page.locator("#my-vote")).to_have_text("You voted: A is better.")
    expect(page.locator("#my-vote")).to_be_in_viewport()

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"/t/{task.id}")
    listed = page.locator("#task-comparisons li")
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text("votes: A is better")
    page.click("#fanout-compare")
    expect(page.locator("#my-vote")).to_have_text("You voted: A is better.")
    assert page.url == comparison_url
