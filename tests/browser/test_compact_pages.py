"""Compact pages, as a person clicks through them: a message's actions open their form on
demand, hand-offs and pipeline steps are labelled, the tree marks the branch on screen, winners
and running runs; agents and pipelines are listed compactly and edited, started and deleted
from their list; the board moves cards live and by drag and drop, and flags a failed run."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlmodel import select

from app.engine.dispatch import dispatch
from app.models import Agent, Pipeline, Task
from app.services.comparisons import cast_vote, create_comparison
from app.services.tasks import create_task
from tests.engine_helpers import CHAT, by_system_prompt
from tests.factories import make_agent, make_model, make_user, make_workspace
from tests.scripted_server import Reply, answer

# Marks when the page's EventSource is open (htmx's SSE extension says so with htmx:sseOpen).
SSE_OPEN = "document.addEventListener('htmx:sseOpen', () => { window.__sseOpen = true; });"


def _team(session, model_server, names=("Coder", "Tester")):
    user = make_user(session)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=model_server.base_url)
    agents = [make_agent(session, workspace=workspace, model=model, name=n) for n in names]
    return user, workspace, agents


def test_a_message_offers_compact_actions_and_hand_offs_are_labelled(
    open_page, session, model_server, worker
):
    model_server.on(CHAT, by_system_prompt)
    user, workspace, (coder, tester) = _team(session, model_server)
    task, started = create_task(
        session=session, workspace=workspace, author=user, title="Add",
        brief="Write add(a, b).", agent_ids=[coder.id, tester.id],
    )  # fmt: skip
    session.commit()
    dispatch([run.id for run in started.runs])
    coder_answer, tester_answer = (run.output_message_id for run in started.runs)
    page = open_page(user)
    page.goto(f"/t/{task.id}?at={coder_answer}")
    card = page.locator(f"#message-{coder_answer}")
    expect(card.locator(".md")).to_contain_text("Coder says hello", timeout=30_000)
    page.reload()  # the finished answer, with its actions

    # A row of small buttons; no form until one is opened.
    actions = page.locator(f"#message-{coder_answer}-actions")
    for title in ("Copy", "Reply here", "Rerun", "Hand off", "Compare"):
        expect(actions.get_by_text(title, exact=True)).to_be_visible()
    expect(actions.locator("form[action$='/handoff']")).to_have_count(0)
    box = actions.bounding_box()
    assert box is not None and box["height"] < 80, box  # one row, not three forms

    actions.get_by_text("Hand off", exact=True).click()
    form = actions.locator("form[action$='/handoff']")
    expect(form).to_be_visible()
    form.locator("select").select_option(label="Tester")
    form.locator("input[name=instruction]").fill("Test this.")
    form.locator("button[type=submit]").click()

    # The instruction is labelled as the hand-off it is.
    handoff = page.locator("#thread .handoff-title")
    expect(handoff).to_have_text("Hand-off from Coder")
    expect(page.locator("#thread > li.message-assistant").last).to_contain_text(
        "Tester says hello", timeout=30_000
    )

    # The tree: the branch on screen marked; a voted winner marked.
    comparison = create_comparison(session=session, task=task, author=user,
                                   message_ids=[coder_answer, tester_answer])  # fmt: skip
    cast_vote(session=session, comparison=comparison, voter=user, outcome="a")
    session.commit()
    page.reload()
    page.locator("#tree-view > summary").click()
    expect(page.locator(f"#tree-{coder_answer}")).to_have_class("tree-current")
    expect(page.locator(f"#tree-{coder_answer} > a")).to_have_attribute("aria-current", "true")
    expect(page.locator(f"#tree-{tester_answer}")).not_to_have_class("tree-current")
    expect(page.locator(f"#tree-{coder_answer}-winner")).to_be_visible()
    expect(page.locator(f"#tree-{tester_answer}-winner")).to_have_count(0)


def test_a_running_run_is_marked_in_the_tree(open_page, session, model_server, worker):
    model_server.on(CHAT, answer(" ".join(["slow"] * 300), pause=0.1))
    user, workspace, (coder,) = _team(session, model_server, names=("Coder",))
    task, started = create_task(session=session, workspace=workspace, author=user, title="Slow",
                                brief="Go.", agent_ids=[coder.id])  # fmt: skip
    session.commit()
    dispatch([run.id for run in started.runs])
    output = started.runs[0].output_message_id
    page = open_page(user)
    page.goto(f"/t/{task.id}")
    expect(page.locator(f"#run-{started.runs[0].id}-text")).to_contain_text("slow", timeout=30_000)
    page.locator("#tree-view > summary").click()
    expect(page.locator(f"#tree-{output}-running")).to_be_visible()
    page.locator("#thread button:has-text('Stop')").click()


def test_agents_are_listed_compactly_with_distinct_colours_and_a_confirmed_save(
    open_page, session, model_server
):
    user = make_user(session)
    workspace = make_workspace(session, owner=user)
    make_model(session, base_url=model_server.base_url)
    page = open_page(user)
    page.goto(f"/w/{workspace.slug}/agents")

    # "New agent" comes first; with no agent yet it is open.
    new_agent = page.locator("#new-agent")
    expect(new_agent).to_have_attribute("open", "")
    assert page.evaluate(
        "() => document.querySelector('#new-agent').compareDocumentPosition("
        "document.querySelector('#agent-list')) & Node.DOCUMENT_POSITION_FOLLOWING"
    )
    # Swatches big enough to hit, one ticked.
    swatch = page.locator("#new-agent-colour .swatch-face").first
    size = swatch.bounding_box()
    assert size is not None and size["width"] >= 32 and size["height"] >= 32, size
    page.fill("#new-agent-name", "Alpha")
    page.select_option("#new-agent-model", index=0)  # "none": an agent without a model
    page.click("#new-agent-create")
    expect(page.locator("#agent-saved")).to_have_text("Saved Alpha.")
    page.reload()  # a GET: reloading repeats nothing
    expect(page.locator("#agent-list .agent-row")).to_have_count(1)

    page.locator("#new-agent > summary").click()
    page.fill("#new-agent-name", "Beta")
    page.select_option("#new-agent-model", index=1)
    page.click("#new-agent-create")
    expect(page.locator("#agent-saved")).to_have_text("Saved Beta.")
    alpha, beta = (
        session.exec(select(Agent).where(Agent.name == n)).one() for n in ("Alpha", "Beta")
    )
    assert alpha.colour != beta.colour

    # The agent without a model is marked unusable; the other is not.
    expect(page.locator(f"#agent-{alpha.id}-unusable")).to_contain_text("cannot answer")
    expect(page.locator(f"#agent-{beta.id}-unusable")).to_have_count(0)

    # Edit on demand: the form is closed until asked for; a new colour picked by its swatch.
    edit = page.locator(f"#agent-{beta.id}-edit")
    expect(edit.locator("form")).to_be_hidden()
    edit.locator("summary").click()
    edit.locator(f"#agent-{beta.id}-name").fill("Gamma")
    edit.locator(".swatch").nth(3).click()
    chosen = edit.locator(".swatch input").nth(3).get_attribute("value")
    edit.locator("button[type=submit]").click()
    expect(page.locator("#agent-saved")).to_have_text("Saved Gamma.")
    session.refresh(beta)
    assert (beta.name, beta.colour) == ("Gamma", chosen)

    # Delete asks first.
    delete = page.locator(f"#agent-{alpha.id}-delete")
    delete.locator("summary").click()
    delete.locator("button[type=submit]").click()
    expect(page.locator(f"#agent-{alpha.id}")).to_have_count(0)


def test_pipelines_are_edited_started_and_deleted_from_their_list(open_page, session, model_server):
    user, workspace, (coder, tester) = _team(session, model_server)
    task, _ = create_task(session=session, workspace=workspace, author=user, title="Parse dates",
                          brief="Split 2026-11-30.", agent_ids=[coder.id])  # fmt: skip
    session.commit()  # its question, answered by nobody yet (no worker): the newest branch
    page = open_page(user)
    page.goto(f"/w/{workspace.slug}/pipelines")
    expect(page.locator("#new-pipeline .step-row")).to_have_count(6)  # as many as the server allows

    page.fill("#pipeline-name", "Write, test")
    page.select_option("#pipeline-step-0-agent", label="Coder")
    page.select_option("#pipeline-step-1-agent", label="Tester")
    page.fill("#pipeline-step-1-instruction", "Test this.")
    page.click("#pipeline-create")
    expect(page.locator("#pipeline-saved")).to_have_text("Saved Write, test.")
    pipeline = session.exec(select(Pipeline)).one()

    edit = page.locator(f"#pipeline-{pipeline.id}-edit")
    edit.locator("summary").click()
    expect(edit.locator(f"#pipeline-{pipeline.id}-step-1-instruction")).to_have_value("Test this.")
    edit.locator(f"#pipeline-{pipeline.id}-name").fill("Write, test, fix")
    edit.locator(f"#pipeline-{pipeline.id}-step-2-agent").select_option(label="Coder")
    edit.locator(f"#pipeline-{pipeline.id}-step-2-instruction").fill("Fix what failed.")
    edit.locator("button[type=submit]").click()
    expect(page.locator("#pipeline-saved")).to_have_text("Saved Write, test, fix.")
    session.refresh(pipeline)
    assert [s["agent_id"] for s in pipeline.steps] == [coder.id, tester.id, coder.id]

    # Started from the list on the task's newest branch: the task page shows the step.
    start = page.locator(f"#pipeline-{pipeline.id}-start")
    start.locator("summary").click()
    start.locator("select").select_option(label="Parse dates")
    start.locator("button[type=submit]").click()
    expect(page.locator("h1")).to_have_text("Parse dates")
    expect(page.locator("#thread .pipeline-badge").last).to_have_text(
        "Pipeline “Write, test, fix” · step 1 of 3"
    )

    page.goto(f"/w/{workspace.slug}/pipelines")
    delete = page.locator(f"#pipeline-{pipeline.id}-delete")
    expect(delete.locator("button[type=submit]")).to_be_hidden()  # asks first
    delete.locator("summary").click()
    delete.locator("button[type=submit]").click()
    expect(page.locator(f"#pipeline-{pipeline.id}")).to_have_count(0)
    assert session.exec(select(Pipeline)).all() == []
    assert session.get(Task, task.id) is not None


def test_the_board_moves_cards_live_by_drag_and_drop_and_flags_a_failed_run(
    open_page, session, model_server, worker
):
    model_server.on(CHAT, Reply(500, {"error": {"message": "model crashed"}}))
    user, workspace, (coder,) = _team(session, model_server, names=("Coder",))
    task, _ = create_task(session=session, workspace=workspace, author=user, title="Card")
    session.commit()
    watcher = open_page(user)
    watcher.add_init_script(SSE_OPEN)
    watcher.goto(f"/w/{workspace.slug}")
    expect(watcher.locator(f"#column-backlog #task-{task.id}")).to_be_visible()
    watcher.wait_for_function("() => window.__sseOpen === true")

    # Another tab drags the card to Done: it moves there, and on the watching board live.
    mover = watcher.context.new_page()
    mover.goto(f"/w/{workspace.slug}")
    # Grabbed by its edge (its title is a link, its select a control of its own).
    mover.locator(f"#task-{task.id}").drag_to(
        mover.locator("#column-done"), source_position={"x": 4, "y": 4}
    )
    expect(mover.locator(f"#column-done #task-{task.id}")).to_be_visible()
    expect(watcher.locator(f"#column-done #task-{task.id}")).to_be_visible()
    expect(watcher.locator(f"#column-backlog #task-{task.id}")).to_have_count(0)
    expect(watcher.locator("#column-done-count")).to_have_text("1")

    # The keyboard way still works: the select and its button. On a page loaded anew: the
    # drag's boosted answer (the board again) may still be swapping the mover's body in, which
    # would put back the select a choice was just made in.
    mover.reload()
    mover.select_option(f"#move-{task.id}", "review")
    mover.locator(f"#task-{task.id} .move-form button").click()
    expect(watcher.locator(f"#column-review #task-{task.id}")).to_be_visible()

    # A task whose run fails: its card is flagged, live, and the feed names agent and task.
    failing, started = create_task(session=session, workspace=workspace, author=user,
                                   title="Doomed", brief="Go.", agent_ids=[coder.id])  # fmt: skip
    session.commit()
    dispatch([run.id for run in started.runs])
    expect(watcher.locator(f"#task-{failing.id}-failed")).to_be_visible(timeout=30_000)
    expect(watcher.locator("#activity-feed li").first).to_contain_text("Coder failed · Doomed")
