"""The dashboard through clicks and keys in a real browser, asserting what the page shows."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlmodel import select

from app.models import Run
from tests.browser.conftest import ARTIFACTS
from tests.engine_helpers import CHAT
from tests.factories import make_model, make_user
from tests.scripted_server import answer


def slow_by_agent(received):
    system = received.json["messages"][0]["content"]
    name = "Coder" if "Coder" in system else "Tester"
    words = " ".join(f"{name.lower()}{i}" for i in range(24))
    return answer(f"{name} answer: {words}", pause=0.04)


def test_a_person_runs_the_whole_flow(open_page, session, model_server, worker):
    user = make_user(session)
    make_model(session, base_url=model_server.base_url)
    model_server.on(CHAT, slow_by_agent)
    page = open_page(user)

    # A workspace, then two agents from the starter roles.
    page.goto("/")
    expect(page.locator("#workspaces-empty")).to_contain_text("No workspaces yet")
    page.fill("#workspace-name", "Parser rewrite")
    page.click("#create-workspace button[type=submit]")
    expect(page.locator("h1")).to_have_text("Parser rewrite")
    page.click("text=Agents")
    expect(page.locator("h1")).to_have_text("Agents")
    for starter in ("Coder", "Tester"):
        if page.locator("#new-agent[open]").count() == 0:  # open while there is no agent
            page.click("#new-agent > summary")
        page.select_option("#starter", starter)
        page.click("#new-agent button:has-text('Use')")
        expect(page.locator("#new-agent-name")).to_have_value(starter)
        page.click("#new-agent-create")
        expect(page.locator("#agent-list")).to_contain_text(starter)

    # A task fanned out to both; both answers stream side by side in compare.
    page.click("a:has-text('Parser rewrite')")
    page.fill("#task-title", "Tokenise a date")
    page.fill("#task-brief", "Split 2026-11-28 into parts.")
    page.check("#task-fanout label:has-text('Coder') input")
    page.check("#task-fanout label:has-text('Tester') input")
    page.click("#task-create")
    expect(page.locator("#task-title")).to_have_text("Tokenise a date")
    page.click("#compare-link")
    expect(page.locator("#compare-columns .compare-column")).to_have_count(2)
    expect(page.locator("#compare-columns")).to_contain_text("answer:", timeout=20_000)
    page.wait_for_function(
        "() => document.querySelectorAll('#compare-columns .live').length === 0"
        " && document.querySelectorAll('#compare-columns .diff').length === 2",
        timeout=30_000,
    )
    # The differences appear once both are done, without a reload.
    expect(page.locator("#column-B-text mark").first).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)

    # Vote A, continue with it.
    page.click("#vote-a")
    expect(page.locator("#my-vote")).to_have_text("You voted: A is better.")
    page.click("#continue-A")
    expect(page.locator("#thread")).to_contain_text("Coder answer:")

    # The fan-out's answers side by side on the task page; fork from the chosen one with
    # Ctrl+Enter; the new branch streams in.
    expect(page.locator("#fanout-columns > li.message-assistant")).to_have_count(2)
    answer_card = page.locator("#fanout-columns > li.message-assistant").first
    answer_card.locator(".compact-actions summary:has-text('Reply here')").click()
    fork_box = answer_card.locator("textarea[name=content]")
    fork_box.fill("Now handle times too.")
    answer_card.locator("fieldset label:has-text('Tester') input").check()
    fork_box.press("Control+Enter")
    expect(page.locator("#thread")).to_contain_text("Now handle times too.")
    expect(page.locator("#thread > li.message-assistant").last).to_contain_text(
        "Tester answer:", timeout=20_000
    )
    page.wait_for_function("() => !document.querySelector('#thread .live')", timeout=30_000)

    # Reassign the task, then hand the answer to the Coder.
    page.select_option("#assignee", label="Tester")
    # Wait for the new page itself: the old one already shows Tester selected, and a card
    # clicked before the swap would be replaced under the test's hands.
    with page.expect_response(lambda r: r.request.method == "GET" and "/t/" in r.url):
        page.click("#reassign-form button")
    expect(page.locator("#assignee option:checked")).to_have_text("Tester")
    last = page.locator("#thread > li.message-assistant").last
    last.locator(".compact-actions summary:has-text('Hand off')").click()
    last.locator("select[name=agent_id]").last.select_option(label="Coder")
    last.locator("input[name=instruction]").fill("Review this.")
    last.locator("button:has-text('Hand off')").click()
    expect(page.locator("#thread")).to_contain_text("Review this.")
    expect(page.locator("#thread > li.message-assistant").last).to_contain_text(
        "Coder answer:", timeout=20_000
    )
    page.wait_for_function("() => !document.querySelector('#thread .live')", timeout=30_000)

    # A long answer, stopped while it streams: the partial text stays.
    model_server.on(CHAT, answer(" ".join(f"w{i}" for i in range(400)), pause=0.05))
    page.fill("#composer-text", "Write a very long answer.")
    page.click("#composer-send")
    expect(page.locator("#thread .stream").last).to_contain_text("w3", timeout=20_000)
    page.locator("#thread button:has-text('Stop')").click()
    expect(page.locator("#thread > li.message-assistant").last).to_contain_text(
        "Stopped", timeout=10_000
    )
    # The same page on a phone: one column, nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "task-phone.png"), full_page=False)
    session.expire_all()
    statuses = [run.status for run in session.exec(select(Run)).all()]
    assert statuses.count("cancelled") == 1 and statuses.count("succeeded") == 4


def test_hostile_model_output_cannot_run_script(
    open_page, session, model_server, worker, live_server
):
    from tests.factories import make_agent, make_workspace

    user = make_user(session)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=model_server.base_url)
    agent = make_agent(session, workspace=workspace, model=model, name="Mallory")
    payload = (
        '<script>window.__xss = 1</script> <img src=x onerror="window.__xss=2"> '
        "[link](javascript:window.__xss=3) <svg onload=window.__xss=4></svg> "
        "![x](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX194c3M9NTwvc2NyaXB0Pg==) "
        '<a href="javascript:window.__xss=6">a</a> <iframe src="javascript:1"></iframe> '
        "<b onmouseover=window.__xss=7>hover</b> <scr<script>ipt>"
    )
    model_server.on(CHAT, answer(payload))
    page = open_page(user)
    page.goto(f"/w/{workspace.slug}")
    page.fill("#task-title", "Hostile")
    page.fill("#task-brief", "say something")
    page.check(f"#task-fanout input[value='{agent.id}']")
    page.click("#task-create")
    answer_card = page.locator("#thread > li.message-assistant").last
    expect(answer_card).to_contain_text("<script>", timeout=20_000)
    page.wait_for_function("() => !document.querySelector('#thread .live')", timeout=20_000)
    page.reload()
    expect(answer_card.locator(".md")).to_contain_text("onerror")
    page.hover("#thread")
    for link in answer_card.locator("a").all():
        assert not (link.get_attribute("href") or "").startswith("javascript")
    assert page.evaluate("() => window.__xss") is None
    assert answer_card.locator("script, img, svg, iframe").count() == 0
