"""The task page through HTTP: branches, sibling navigation, forms, fragments, escaping."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

from bs4 import BeautifulSoup
from sqlmodel import select

from app.models import Message, Task
from app.routes.task_pages import WINDOW
from app.services import comparisons, threads
from tests.engine_helpers import CHAT, start_task, wait_for_runs
from tests.live_helpers import read_until
from tests.orm_helpers import orm_statements, went_through_orm
from tests.scripted_server import DONE, Hold, Stream, answer, chunk, sse


def page(client, path: str, **headers: str) -> BeautifulSoup:
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return BeautifulSoup(response.text, "html.parser")


def test_a_fan_out_shows_its_answers_side_by_side(client, session, team):
    workspace, (coder, tester, reviewer, *_) = team
    task = start_task(client, workspace, [coder, tester, reviewer])
    wait_for_runs(client, task["id"], 3)
    html = page(client, f"/t/{task['id']}")
    assert len(html.select("#thread > li")) == 2  # the question and the fan-out
    answers = [run["output_message_id"] for run in task["started"]["runs"]]
    cards = html.select("#fanout-columns > li.message-assistant")
    assert [card["id"] for card in cards] == [f"message-{a}" for a in answers]
    for answer_id, name in zip(answers, ("Coder", "Tester", "Reviewer"), strict=True):
        assert html.find(id=f"message-{answer_id}-body").text.strip() == f"{name} says hello"
    assert html.find(id="fanout-compare") is not None and html.find(id="compare-link")
    # A branch further down shows the answer it continues, with its sibling navigation.
    first = answers[0]
    followed = client.post(f"/m/{first}/reply", data={"content": "More", "agent_ids": [coder.id]})
    assert followed.status_code == 200
    wait_for_runs(client, task["id"], 4)
    other = page(client, f"/t/{task['id']}?at={first}")
    assert other.find(id=f"message-{first}-siblings").text == "1 / 3"
    assert "run-" in str(other.find(id=f"message-{first}"))  # figures shown


def test_the_pages_ids_are_read_without_the_orm(client, session, team):
    # The branch's start and the compared answers' ids make no objects: the ORM's execution
    # path was only a cost, on every view.
    workspace, (coder, tester, *_) = team
    task = start_task(client, workspace, [coder, tester])
    runs = wait_for_runs(client, task["id"], 2)
    answers = [run["output_message_id"] for run in runs]
    question = session.get(Message, answers[0]).parent_id
    assert client.post(f"/t/{task['id']}/compare", data={"question_id": question},
                       follow_redirects=False).status_code == 303  # fmt: skip
    with orm_statements() as seen:
        html = page(client, f"/t/{task['id']}")
    assert len(html.select("#fanout-columns > li.message-assistant")) == 2
    assert html.find(id="task-comparisons") is not None
    assert went_through_orm(seen, threads._MAIN_BRANCH, threads._JUDGED,
                            comparisons._BRANCHES_OF) == []  # fmt: skip


def test_htmx_navigation_gets_only_the_thread_fragment(client, session, team):
    workspace, (coder, *_) = team
    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    fragment = page(client, f"/t/{task['id']}", **{"HX-Request": "true"})
    assert fragment.find("html") is None and fragment.find(id="thread") is not None


def test_the_composer_asks_on_the_branch_and_shows_the_new_answer(client, session, team):
    workspace, (coder, tester, *_) = team
    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    leaf = task["started"]["runs"][0]["output_message_id"]
    response = client.post(
        f"/t/{task['id']}/ask",
        data={"content": "And now?", "parent_id": str(leaf), "agent_ids": [str(tester.id)]},
        follow_redirects=False,
    )
    assert response.status_code == 303 and "?at=" in response.headers["location"]
    wait_for_runs(client, task["id"], 2)
    html = page(client, response.headers["location"])
    assert [li.get("id") for li in html.select("#thread > li")][-1].startswith("message-")
    assert "Tester says hello" in html.find(id="thread").text


def test_an_empty_question_is_refused_on_the_page_with_the_draft_kept(client, session, team):
    workspace, (coder, *_) = team
    task = client.post(f"/api/v1/workspaces/{workspace.slug}/tasks", json={"title": "t"}).json()
    response = client.post(f"/t/{task['id']}/ask", data={"content": "   "})
    assert response.status_code == 400
    html = BeautifulSoup(response.text, "html.parser")
    assert html.find(id="composer-error").text == "Write a message first."
    assert html.find(id="page-error") is None  # shown next to the composer, not at the top


def test_hostile_output_is_shown_as_text(client, session, team, model_server):
    workspace, (coder, *_) = team
    model_server.on(CHAT, answer('<script>window.__xss=1</script> <img src=x onerror="alert(1)"> '
                                 "[click](javascript:alert(1))"))  # fmt: skip
    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    answer_id = task["started"]["runs"][0]["output_message_id"]
    body = page(client, f"/t/{task['id']}").find(id=f"message-{answer_id}-body")
    assert body.find("script") is None and body.find("img") is None
    assert "<script>" in body.text
    assert all(not a.get("href", "").startswith("javascript") for a in body.find_all("a"))


def test_long_branches_show_the_newest_messages_and_load_earlier_ones(client, session, team):
    from app.models import Message, Task

    workspace, _ = team
    task = Task(workspace_id=workspace.id, title="long")
    session.add(task)
    session.flush()
    parent = None
    for n in range(100):
        message = Message(task_id=task.id, parent_id=parent, role="user", content=f"m{n}")
        session.add(message)
        session.flush()
        parent = message.id
    session.commit()
    html = page(client, f"/t/{task.id}")
    shown = html.select("#thread > li.message")
    assert len(shown) == WINDOW and shown[-1].find(class_="md").text.strip() == "m99"
    earlier = html.find(id=f"thread-earlier-{100 - WINDOW}").find("a")
    assert earlier.text == f"Show {100 - WINDOW} earlier messages"
    fragment = page(client, earlier["hx-get"], **{"HX-Request": "true"})
    assert fragment.find("html") is None
    older = fragment.select("li.message")
    assert len(older) == WINDOW
    assert older[0].find(class_="md").text.strip() == f"m{100 - 2 * WINDOW}"
    assert older[-1].find(class_="md").text.strip() == f"m{100 - WINDOW - 1}"
    assert fragment.find(id=f"thread-earlier-{100 - 2 * WINDOW}") is not None
    # The first window has no link to earlier ones; the page's composer still replies at the leaf.
    first = page(
        client, f"/t/{task.id}/earlier?at={parent}&upto={WINDOW}", **{"HX-Request": "true"}
    )
    assert [li.find(class_="md").text.strip() for li in first.select("li.message")] == [
        f"m{n}" for n in range(WINDOW)
    ]
    assert first.find(id="thread-earlier-0") is None
    full = page(client, f"/t/{task.id}?at={parent}&upto={WINDOW}")
    assert full.find(id="composer-parent")["value"] == str(parent)


def test_message_actions_load_on_demand_for_editors_only(client, session, team):
    from app.models import Role
    from tests.factories import add_member, make_user, sign_in

    workspace, (coder, *_) = team
    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    answer_id = task["started"]["runs"][0]["output_message_id"]
    forms = page(client, f"/m/{answer_id}/actions", **{"HX-Request": "true"})
    assert forms.find("html") is None
    assert forms.find("form", action=f"/m/{answer_id}/handoff") is not None
    assert forms.find("form", action=f"/m/{answer_id}/rerun") is not None
    viewer = make_user(session)
    add_member(session, workspace=workspace, user=viewer, role=Role.viewer)
    sign_in(client, session, viewer)
    assert client.get(f"/m/{answer_id}/actions").status_code == 404
    assert page(client, f"/t/{task['id']}").find(id=f"message-{answer_id}-actions") is None


def test_the_tree_view_lists_every_branch(client, session, team):
    workspace, (coder, tester, *_) = team
    task = start_task(client, workspace, [coder, tester], brief="Root question")
    wait_for_runs(client, task["id"], 2)
    tree = page(client, f"/t/{task['id']}/tree", **{"HX-Request": "true"})
    root = tree.find(id=f"tree-{task['started']['message']['id']}")
    assert "Root question" in root.find("a").text
    answers = root.find("ul").find_all("li", recursive=False)
    assert [" ".join(a.find("a").text.split()) for a in answers] == [
        "Coder: Coder says hello", "Tester: Tester says hello",
    ]  # fmt: skip


def test_a_run_waiting_longer_than_its_queue_explains_says_so(client, session):
    from datetime import timedelta

    from app.models import Run
    from app.models.common import utcnow
    from app.services.tasks import create_task
    from tests.factories import make_agent, make_model, make_user, make_workspace, sign_in

    user = make_user(session)
    sign_in(client, session, user)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url="http://127.0.0.1:9/v1")
    coder = make_agent(session, workspace=workspace, model=model, name="Coder")
    task, started = create_task(session=session, workspace=workspace, author=user, title="t",
                                brief="q", agent_ids=[coder.id])  # fmt: skip
    session.commit()  # never dispatched: it waits with nothing ahead of it
    (run,) = started.runs
    html = page(client, f"/t/{task.id}")
    assert html.find(id=f"run-{run.id}-state").text.startswith("Queued")
    assert html.find(id=f"run-{run.id}-stalled") is None  # just queued: nothing to say yet
    stored = session.get(Run, run.id)
    stored.queued_at = utcnow() - timedelta(minutes=10)
    session.add(stored)
    session.commit()
    html = page(client, f"/t/{task.id}")
    assert "longer than its queue explains" in html.find(id=f"run-{run.id}-stalled").text


def test_a_brief_without_agents_waits_in_the_composer(client, session, team):
    workspace, _ = team
    brief = {"title": "Later", "brief": "Split 2026-11-28 into parts."}
    response = client.post(f"/w/{workspace.slug}/tasks", data=brief)
    html = BeautifulSoup(response.text, "html.parser")
    assert html.find(id="composer-text").text == "Split 2026-11-28 into parts."


def test_the_composer_waits_for_a_streaming_answer_and_offers_send_again_when_it_ends(
    client, session, team, model_server
):
    workspace, (coder, *_) = team
    writing = Hold(threading.Event())
    model_server.on(CHAT, Stream([sse(chunk("Half")), writing, sse(chunk(" done", finish="stop")),
                                  DONE]))  # fmt: skip
    task = start_task(client, workspace, [coder])
    run = task["started"]["runs"][0]
    assert writing.reached.wait(30), "the model was never asked"

    html = page(client, f"/t/{task['id']}")
    actions = html.find(id="composer-actions")
    assert actions["sse-swap"] == f"run-{run['id']}-composer"
    assert html.find(id="composer-send").has_attr("disabled")
    assert html.find(id="composer-battle") is None
    assert html.find(id="composer-waiting").text == (
        "Coder is still answering: reply when it has finished, or stop it."
    )
    assert html.find(id="composer-stop")["formaction"] == f"/r/{run['id']}/cancel"
    actions = page(client, f"/m/{run['output_message_id']}/actions", **{"HX-Request": "true"})
    assert actions.find("form", action=f"/m/{run['output_message_id']}/reply") is None
    assert actions.find(id=f"message-{run['output_message_id']}-no-fork") is not None

    # The page's one stream: the finished card, then the composer's Send.
    writing.gate.set()
    events = read_until(client, f"/t/{task['id']}/live?runs={run['id']}",
                        lambda e: e.type == f"run-{run['id']}-composer")  # fmt: skip
    kinds = [e.type for e in events]
    assert kinds[-2:] == [f"run-{run['id']}-done", f"run-{run['id']}-composer"], kinds
    ready = BeautifulSoup(events[-1].data, "html.parser")
    assert not ready.find(id="composer-send").has_attr("disabled")
    assert ready.find(id="composer-battle")["formaction"] == f"/t/{task['id']}/battle"
    assert ready.find(id="composer-stop") is None

    html = page(client, f"/t/{task['id']}")
    assert not html.find(id="composer-send").has_attr("disabled")
    assert html.find(id="composer-waiting") is None


def test_a_hand_off_is_labelled_on_the_task_page_and_its_shared_view(client, session, team):
    workspace, (coder, tester, *_) = team
    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    answer_id = task["started"]["runs"][0]["output_message_id"]
    body = {"agent_id": tester.id, "instruction": "Test this."}
    handed = client.post(f"/api/v1/messages/{answer_id}/handoffs", json=body).json()
    instruction = handed["message"]["id"]
    wait_for_runs(client, task["id"], 2)
    html = page(client, f"/t/{task['id']}")
    assert html.find(id=f"message-{instruction}-handoff").text == "Hand-off from Coder"
    question = task["started"]["message"]["id"]
    assert html.find(id=f"message-{question}-handoff") is None  # an ordinary question
    shared = client.post(f"/t/{task['id']}/share", data={"allow_anonymous": "true"})
    link = BeautifulSoup(shared.text, "html.parser").find(id="share-url")["value"]
    view = page(client, urlsplit(link).path)
    assert view.find(id=f"shared-message-{instruction}").find(class_="handoff-title").text == (
        "Hand-off from Coder"
    )
    # The tree marks the branch on screen.
    tree = page(client, f"/t/{task['id']}/tree?at={answer_id}", **{"HX-Request": "true"})
    assert "tree-current" in tree.find(id=f"tree-{answer_id}")["class"]
    assert tree.find(id=f"tree-{instruction}").find("a").text.split() == [
        "Hand-off:",
        "Test",
        "this.",
    ]


def test_a_message_added_after_a_view_shows_on_the_next_view(client, session, team):
    """The tree of a task is kept between views: every message added must show at once."""
    workspace, _ = team
    client.post(f"/w/{workspace.slug}/tasks", data={"title": "Kept", "brief": ""})
    task = session.exec(select(Task).where(Task.title == "Kept")).one()
    question = Message(task_id=task.id, role="user", content="First question")
    session.add(question)
    session.commit()
    assert page(client, f"/t/{task.id}").find(id=f"message-{question.id}") is not None
    first = Message(task_id=task.id, parent_id=question.id, role="user", content="Follow-up")
    session.add(first)
    session.commit()
    html = page(client, f"/t/{task.id}")
    assert html.find(id=f"message-{first.id}-body").text.strip() == "Follow-up"
    # A fork beside it: the earlier branch now counts two siblings.
    fork = Message(task_id=task.id, parent_id=question.id, role="user", content="Fork")
    session.add(fork)
    session.commit()
    assert page(client, f"/t/{task.id}").find(id=f"message-{fork.id}") is not None
    earlier = page(client, f"/t/{task.id}?at={first.id}")
    assert earlier.find(id=f"message-{first.id}-siblings").text == "1 / 2"
