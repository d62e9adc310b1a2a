"""A task's brief: sent at once to the agents ticked (with or without an assignee), else waiting
in the task page's composer with the agents it names ticked (the demo's brief names two)."""

from __future__ import annotations

from bs4 import BeautifulSoup
from sqlmodel import select

from app.models import Agent, Message, Run, Task
from app.services.demo import DEMO_FANOUT, DEMO_TASK_BRIEF, create_demo_workspace
from tests.factories import make_agent, make_model, make_user, make_workspace, sign_in


def _ticked(page: BeautifulSoup) -> set[str]:
    picker = page.find(id="composer-agents")
    return {label.get_text(strip=True) for label in picker.find_all("label")
            if label.find("input").has_attr("checked")}  # fmt: skip


def test_the_demo_brief_waits_with_the_two_agents_it_names_ticked(client, session, model_server):
    user = make_user(session)
    sign_in(client, session, user)
    demo = create_demo_workspace(session=session, owner=user)  # no model yet: nothing is asked
    assert demo.started is None
    model = make_model(session, base_url=model_server.base_url)
    for agent in session.exec(select(Agent).where(Agent.workspace_id == demo.workspace.id)):
        agent.model_id = model.id
        session.add(agent)
    session.commit()
    page = BeautifulSoup(client.get(f"/t/{demo.task.id}").text, "html.parser")
    assert page.find(id="composer-text").text == DEMO_TASK_BRIEF
    assert _ticked(page) == set(DEMO_FANOUT)


def test_a_brief_without_an_assignee_is_sent_to_the_agents_ticked(
    client, session, model_server, no_worker
):
    user = make_user(session)
    sign_in(client, session, user)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=model_server.base_url)
    coder = make_agent(session, workspace=workspace, model=model, name="Coder")
    make_agent(session, workspace=workspace, model=model, name="Tester")
    created = client.post(f"/w/{workspace.slug}/tasks", data={
        "title": "Sent", "brief": "Reverse a list.", "assignee_agent_id": "",
        "agent_ids": [str(coder.id)]})  # fmt: skip
    assert created.status_code == 200
    task = session.exec(select(Task).where(Task.title == "Sent")).one()
    (question,) = session.exec(select(Message).where(Message.task_id == task.id,
                                                     Message.role == "user")).all()  # fmt: skip
    assert question.content == "Reverse a list."
    (run,) = session.exec(select(Run).where(Run.task_id == task.id)).all()
    assert run.agent_id == coder.id

    # Nobody assigned and nobody ticked: the brief waits, its named agent ticked.
    waits = {"title": "Waiting", "brief": "Ask Tester for edge cases.", "assignee_agent_id": ""}
    client.post(f"/w/{workspace.slug}/tasks", data=waits)
    waiting = session.exec(select(Task).where(Task.title == "Waiting")).one()
    assert session.exec(select(Message).where(Message.task_id == waiting.id)).first() is None
    page = BeautifulSoup(client.get(f"/t/{waiting.id}").text, "html.parser")
    assert page.find(id="composer-text").text == "Ask Tester for edge cases."
    assert _ticked(page) == {"Tester"}
