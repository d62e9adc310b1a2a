"""Compare in a real browser: the columns share the whole window, code scrolls inside its
column, a phone stacks them; and a judge asked from the page votes with its reason."""

from __future__ import annotations

from playwright.sync_api import expect

from app.engine.dispatch import dispatch
from app.services.tasks import create_task
from tests.engine_helpers import CHAT, by_system_prompt
from tests.factories import make_agent, make_model, make_user, make_workspace
from tests.scripted_server import answer

LONG_LINE = "result = " + " + ".join(f"value_{i}" for i in range(60))
CODE_ANSWER = (
    "Here is the function, with a long line the column must not cut:\n\n"
    f"```python\ndef total(values):\n    {LONG_LINE}\n    return result\n```\n\n"
    + "It adds the values one by one and returns the sum. "
    * 6
)


def _compared(session, model_server, handler, names=("Coder", "Tester", "Reviewer")):
    """A workspace, its agents, a finished two-way fan-out and its comparison."""
    model_server.on(CHAT, handler)
    user = make_user(session)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=model_server.base_url)
    agents = [make_agent(session, workspace=workspace, model=model, name=n) for n in names]
    task, started = create_task(session=session, workspace=workspace, author=user,
                                title="Sum a list", brief="Write total(values).",
                                agent_ids=[agents[0].id, agents[1].id])  # fmt: skip
    session.commit()
    dispatch([run.id for run in started.runs])
    return user, workspace, agents, task, started


def _open_comparison(page, task):
    """From the task page, as a person would (a boosted navigation: only the body is swapped,
    so the compare page's own stylesheet must come with it)."""
    page.goto(f"/t/{task.id}")
    page.wait_for_function("() => !document.querySelector('#fanout-columns .live')",
                           timeout=60_000)  # fmt: skip
    page.click("#fanout-compare")
    page.wait_for_url("**/c/*")


def _box(page, selector: str) -> dict:
    return page.eval_on_selector(
        selector,
        "e => { const r = e.getBoundingClientRect();"
        " return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width,"
        " scrollWidth: e.scrollWidth, clientWidth: e.clientWidth}; }",
    )


def test_compare_uses_the_width_of_the_screen_and_code_scrolls_inside(
    open_page, session, model_server, worker
):
    user, _, _, task, started = _compared(
        session, model_server, lambda received: answer(CODE_ANSWER, pause=0.001)
    )
    page = open_page(user)
    page.set_viewport_size({"width": 1440, "height": 900})
    _open_comparison(page, task)
    expect(page.locator("#column-B-text .diff-code")).to_be_visible()

    grid, a, b = (_box(page, s) for s in ("#compare-columns", "#column-A", "#column-B"))
    # The columns share the window, not the 72rem reading width of other pages.
    assert grid["width"] > 1440 * 0.9, grid
    assert a["right"] <= b["left"] and a["width"] > 600 and b["width"] > 600
    code = _box(page, "#column-A-text .diff-code")
    assert code["scrollWidth"] > code["clientWidth"]  # the long line scrolls inside the code
    assert code["right"] <= a["right"] + 1  # …and the code block stays inside its column
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1440

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#column-B-text .diff-code")).to_be_attached()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    a, b = _box(page, "#column-A"), _box(page, "#column-B")
    assert b["top"] >= a["bottom"]  # stacked
    assert a["right"] <= 390 and b["right"] <= 390
    code = _box(page, "#column-A-text .diff-code")
    assert code["clientWidth"] < 390 and code["scrollWidth"] > code["clientWidth"]


def test_ask_the_judge_from_the_page(open_page, session, model_server, worker):
    def handler(received):
        if received.json["messages"][-1]["content"].startswith("Judge the answers"):
            return answer("Verdict: A\nReason: A is shorter and correct.")
        return by_system_prompt(received)

    user, workspace, agents, task, started = _compared(session, model_server, handler)
    page = open_page(user)
    _open_comparison(page, task)
    page.click("#vote-a")
    expect(page.locator("#my-vote")).to_have_text("You voted: A is better.")

    page.click("#judge-ask")  # without choosing: the page says what is missing
    expect(page.locator("#judge-error")).to_have_text("Choose the agent that judges.")
    page.select_option("#judge-agent", label="Reviewer")
    page.click("#judge-ask")
    verdict = page.locator("#judgements [id$='-verdict']")
    expect(verdict).to_have_text("A is better", timeout=60_000)  # the panel updates itself
    expect(page.locator("#judgements [id$='-reason']")).to_have_text("— A is shorter and correct.")

    page.goto(f"/w/{workspace.slug}/leaderboard")
    expect(page.locator("#vote-counts")).to_contain_text("1 by judge agents (not counted)")
    expect(page.locator("#judge-agreement")).to_contain_text("100 % of 1 verdict")
    page.check("#lb-judges")
    page.click("#leaderboard-filters button[type=submit]")
    expect(page.locator("#vote-counts")).to_contain_text("(counted)")
