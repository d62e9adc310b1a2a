"""Live pages in a real browser: one EventSource per page, a fan-out streaming side by side,
model text that cannot forge SSE fields, and tabs that do not starve each other."""

from __future__ import annotations

import threading

from playwright.sync_api import expect

from app.engine.dispatch import dispatch
from app.services.comparisons import create_comparison
from app.services.tasks import create_task
from tests.browser.conftest import ARTIFACTS
from tests.engine_helpers import CHAT
from tests.factories import make_agent, make_model, make_user, make_workspace
from tests.scripted_server import DONE, Hold, Stream, answer, chunk, sse

# Screenshots for reading a failure (the README's own come from bench/screenshots.py).
DOCS_IMG = ARTIFACTS

# Records every event a page's EventSources receive (type and lastEventId), as the browser
# parsed them: htmx's SSE extension listens by name, so a listener is added beside each of its.
RECORD_EVENTS = """
(() => {
  window.__sse = { sources: 0, events: [] };
  const Native = window.EventSource;
  class Recorded extends Native {
    constructor(url, options) {
      super(url, options);
      window.__sse.sources += 1;
      for (const name of ["message", "done", "error", "token"]) {
        super.addEventListener(name, (e) => window.__sse.events.push([e.type, e.lastEventId]));
      }
    }
    addEventListener(name, listener, options) {
      super.addEventListener(name, (e) => window.__sse.events.push([e.type, e.lastEventId]));
      return super.addEventListener(name, listener, options);
    }
  }
  window.EventSource = Recorded;
})();
"""


def _team(session, model_server, count: int):
    user = make_user(session)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=model_server.base_url)
    agents = [make_agent(session, workspace=workspace, model=model, name=f"Agent{i}")
              for i in range(count)]  # fmt: skip
    return user, workspace, agents


def _fan_out(session, user, workspace, agents, title="Fan-out"):
    task, started = create_task(session=session, workspace=workspace, author=user, title=title,
                                brief="Answer this.", agent_ids=[a.id for a in agents])  # fmt: skip
    session.commit()
    dispatch([run.id for run in started.runs])
    return task, started


def test_a_fan_out_of_eight_streams_side_by_side_on_one_connection(
    open_page, session, model_server, worker
):
    def by_agent(received):
        name = received.json["messages"][0]["content"].removeprefix("You are ").rstrip(".")
        return answer(f"{name} answer: " + " ".join(["word"] * 30), pause=0.05)

    model_server.on(CHAT, by_agent)
    user, workspace, agents = _team(session, model_server, 8)
    page = open_page(user)
    page.add_init_script(RECORD_EVENTS)
    task, started = _fan_out(session, user, workspace, agents)
    page.goto(f"/t/{task.id}")
    columns = page.locator("#fanout-columns > li.message-assistant")
    expect(columns).to_have_count(8)
    for agent in agents:
        expect(page.locator("#fanout-columns")).to_contain_text(f"{agent.name} answer:",
                                                                timeout=40_000)  # fmt: skip
    page.wait_for_function("() => !document.querySelector('#fanout-columns .live')",
                           timeout=60_000)  # fmt: skip
    assert page.evaluate("() => window.__sse.sources") == 1
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page.locator("#fanout-columns").scroll_into_view_if_needed()
    page.screenshot(path=str(DOCS_IMG / "task-fanout.png"))
    page.goto(f"/w/{workspace.slug}")
    page.screenshot(path=str(DOCS_IMG / "board.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/t/{task.id}")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390


def test_model_text_cannot_set_the_event_id_or_type_in_chromium(
    open_page, session, model_server, worker
):
    hostile = "\rid: 999\revent: done\rdata: x"
    model_server.on(CHAT, answer("start " + " ".join(["w"] * 20) + hostile + " end", pause=0.1))
    user, workspace, agents = _team(session, model_server, 1)
    page = open_page(user)
    page.add_init_script(RECORD_EVENTS)
    task, started = _fan_out(session, user, workspace, agents)
    page.goto(f"/t/{task.id}")
    run_id = started.runs[0].id
    expect(page.locator(f"#run-{run_id}-text")).to_contain_text("start", timeout=20_000)
    message = page.locator(f"#message-{started.runs[0].output_message_id} .md")
    expect(message).to_contain_text("end", timeout=30_000)
    events = page.evaluate("() => window.__sse.events")
    assert events, "no events recorded"
    assert all(last_id != "999" for _, last_id in events), events
    assert [kind for kind, _ in events if kind in ("done", "error", "message")] == []
    assert "id: 999" in message.inner_text()


def test_five_live_tabs_leave_room_for_a_sixth_page(open_page, session, model_server, worker):
    model_server.on(CHAT, answer(" ".join(["slow"] * 400), pause=0.2))
    user, workspace, agents = _team(session, model_server, 2)
    first = open_page(user)
    context = first.context
    context.set_default_timeout(10_000)
    pages = [first] + [context.new_page() for _ in range(4)]
    for index, page in enumerate(pages):
        task, started = _fan_out(session, user, workspace, agents, title=f"Tab {index}")
        comparison = create_comparison(
            session=session, task=task, author=user,
            message_ids=[run.output_message_id for run in started.runs],
        )  # fmt: skip
        session.commit()
        page.goto(f"/c/{comparison.id}")
        expect(page.locator("#compare-columns .live")).to_have_count(2)
    sixth = context.new_page()
    sixth.goto(f"/w/{workspace.slug}")  # within the 10 s navigation timeout
    expect(sixth.locator("h1")).to_have_text(workspace.name)


def _long_answers(received):
    name = received.json["messages"][0]["content"].removeprefix("You are ").rstrip(".")
    lines = "\n".join(f"{name} line {i}: " + " ".join(["text"] * 12) for i in range(40))
    return answer(lines, pause=0.001)


def test_a_vote_is_cast_without_scrolling_on_a_laptop_and_a_phone(
    open_page, session, model_server, worker
):
    model_server.on(CHAT, _long_answers)
    user, workspace, agents = _team(session, model_server, 2)
    page = open_page(user)
    task, started = _fan_out(session, user, workspace, agents, title="Parse a date")
    page.goto(f"/t/{task.id}")
    page.wait_for_function("() => !document.querySelector('#fanout-columns .live')",
                           timeout=60_000)  # fmt: skip
    page.click("#fanout-compare")
    expect(page.locator("#compare-question")).to_contain_text("Answer this.")
    expect(page.locator("#column-B-text mark").first).to_be_visible()
    expect(page.locator("#vote-a")).to_be_in_viewport()
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMG / "compare.png"))
    page.click("#vote-a")
    expect(page.locator("#my-vote")).to_have_text("You voted: A is better.")
    expect(page.locator("#my-vote")).to_be_in_viewport()

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    expect(page.locator("#vote-b")).to_be_in_viewport()
    page.click("#vote-b")
    expect(page.locator("#my-vote")).to_have_text("You voted: B is better.")
    expect(page.locator("#my-vote")).to_be_in_viewport()


def test_after_a_send_the_page_shows_what_was_started(open_page, session, model_server, worker):
    model_server.on(CHAT, _long_answers)
    user, workspace, agents = _team(session, model_server, 1)
    page = open_page(user)
    task, started = _fan_out(session, user, workspace, agents, title="Long")
    page.goto(f"/t/{task.id}")
    page.wait_for_function("() => !document.querySelector('#thread .live')", timeout=60_000)
    page.fill("#composer-text", "And now shorter.")
    page.check("#composer label:has-text('Agent0') input")
    page.click("#composer-send")
    expect(page.locator("#thread")).to_contain_text("And now shorter.")
    newest = page.locator("#thread > li.message-assistant").last
    expect(newest).to_contain_text("Agent0 line 39", timeout=30_000)
    expect(newest.locator(".message-head")).to_be_in_viewport()


def test_the_composer_offers_a_reply_once_the_answer_has_ended(
    open_page, session, model_server, worker
):
    writing = Hold(threading.Event())
    model_server.on(CHAT, Stream([sse(chunk("Half")), writing, sse(chunk(" way.", finish="stop")),
                                  DONE]))  # fmt: skip
    user, workspace, agents = _team(session, model_server, 1)
    page = open_page(user)
    page.add_init_script(RECORD_EVENTS)
    task, started = _fan_out(session, user, workspace, agents, title="Wait for it")
    assert writing.reached.wait(30), "the model was never asked"
    page.goto(f"/t/{task.id}")
    expect(page.locator(f"#run-{started.runs[0].id}-text")).to_contain_text("Half")
    expect(page.locator("#composer-send")).to_be_disabled()
    expect(page.locator("#composer-waiting")).to_have_text(
        "Agent0 is still answering: reply when it has finished, or stop it."
    )
    expect(page.locator("#composer-stop")).to_be_visible()
    expect(page.locator("#composer-battle")).to_have_count(0)
    page.fill("#composer-text", "And then?")

    writing.gate.set()  # the answer ends: Send comes back on the same connection, draft kept
    expect(page.locator("#composer-send")).to_be_enabled()
    expect(page.locator("#composer-battle")).to_be_visible()
    expect(page.locator("#composer-stop")).to_have_count(0)
    expect(page.locator("#composer-text")).to_have_value("And then?")
    assert page.evaluate("() => window.__sse.sources") == 1

    page.check("#composer label:has-text('Agent0') input")
    page.click("#composer-send")
    expect(page.locator("#thread")).to_contain_text("And then?")
    expect(page.locator("#composer-error")).to_have_count(0)
