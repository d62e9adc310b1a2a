"""The run engine end to end: the API, a real Celery worker, real Redis, a scripted model."""

from __future__ import annotations

import time

import pytest
from sqlmodel import select

from app.models import Message
from tests.factories import make_agent, make_model, make_user, make_workspace, sign_in
from tests.scripted_server import answer

CHAT = "/v1/chat/completions"


def wait_for_runs(client, task_id: int, count: int, timeout: float = 60) -> list[dict]:
    """The task's runs once ``count`` of them are finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.get(f"/api/v1/tasks/{task_id}").json()["runs"]
        done = [r for r in runs if r["status"] in ("succeeded", "failed", "cancelled")]
        if len(done) >= count:
            return runs
        time.sleep(0.2)
    raise AssertionError(f"runs not finished in {timeout}s: {runs}")


def by_system_prompt(received) -> object:
    """Each agent answers with its own name, read from the system prompt it was sent."""
    system = received.json["messages"][0]["content"]
    return answer(f"{system.removeprefix('You are ').rstrip('.')} says hello", pause=0.01)


@pytest.fixture
def team(client, session, model_server, worker):
    """A signed-in owner, a workspace and four agents on the scripted model server."""
    user = make_user(session)
    sign_in(client, session, user)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=model_server.base_url)
    agents = [
        make_agent(session, workspace=workspace, model=model, name=name)
        for name in ("Coder", "Tester", "Reviewer", "Explorer")
    ]
    model_server.on(CHAT, by_system_prompt)
    return workspace, agents


def test_fan_out_to_four_agents_gives_four_sibling_answers_with_figures(client, session, team):
    workspace, agents = team
    created = client.post(
        f"/api/v1/workspaces/{workspace.slug}/tasks",
        json={"title": "Reverse words", "brief": "Reverse the words.",
              "agent_ids": [a.id for a in agents]},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["started"]["queued"] and len(body["started"]["runs"]) == 4
    runs = wait_for_runs(client, body["id"], 4)
    assert {r["status"] for r in runs} == {"succeeded"}
    question_id = body["started"]["message"]["id"]
    answers = session.exec(select(Message).where(Message.parent_id == question_id)).all()
    assert sorted(m.content for m in answers) == [
        "Coder says hello", "Explorer says hello", "Reviewer says hello", "Tester says hello",
    ]  # fmt: skip
    assert len({r["fanout_group"] for r in runs}) == 1
    for run in runs:
        assert run["completion_tokens"] == 3 and run["prompt_tokens"] == 11
        assert run["time_to_first_token_ms"] is not None and run["queue_wait_ms"] is not None
        assert run["tokens_per_second"] and run["attempts"] == 1
    task = client.get(f"/api/v1/tasks/{body['id']}").json()
    assert task["status"] == "review"
