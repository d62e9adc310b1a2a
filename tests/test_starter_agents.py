"""Starter agents written for small models: one job, few tokens, examples that fit the role."""

from __future__ import annotations

import ast
import re

import pytest
from sqlmodel import select

from app.engine.conversation import ASSISTANT_MARKER, USER_MARKER
from app.models import Agent
from app.services.demo import DEMO_QUESTION, STARTER_AGENTS, create_demo_workspace
from tests.factories import make_user

CODE = re.compile(r"```python\n(.*?)```", re.S)


def answers(examples: str) -> list[str]:
    """The assistant turns of a transcript of worked examples."""
    turns = re.split(rf"^(?={USER_MARKER}|{ASSISTANT_MARKER})", examples, flags=re.M)
    return [
        t.removeprefix(ASSISTANT_MARKER).strip() for t in turns if t.startswith(ASSISTANT_MARKER)
    ]


@pytest.mark.parametrize("starter", STARTER_AGENTS, ids=[s["name"] for s in STARTER_AGENTS])
def test_each_starter_is_short_and_shows_at_least_two_worked_examples(starter) -> None:
    assert len(starter["role_prompt"]) <= 160
    assert starter["role_prompt"].startswith(f"You are {starter['name']}.")
    assert 64 <= starter["max_tokens"] <= 256 and 0 <= starter["temperature"] <= 0.7
    assert starter["examples"].startswith(USER_MARKER)
    assert len(answers(starter["examples"])) >= 2


def test_the_coders_examples_are_code_that_parses() -> None:
    coder = next(s for s in STARTER_AGENTS if s["name"] == "Coder")
    for answer in answers(coder["examples"]):
        (code,) = CODE.findall(answer)
        ast.parse(code)
        assert answer == f"```python\n{code}```"  # code only, as the role prompt says


def test_the_testers_examples_say_pass_or_fail_then_asserts() -> None:
    tester = next(s for s in STARTER_AGENTS if s["name"] == "Tester")
    verdicts = []
    for answer in answers(tester["examples"]):
        verdict, _, rest = answer.partition("\n")
        verdicts.append(verdict)
        (code,) = CODE.findall(rest)
        tree = ast.parse(code)
        assert tree.body and all(isinstance(node, ast.Assert) for node in tree.body)
    assert sorted(verdicts) == ["FAIL", "PASS"]


def test_the_demo_workspace_gets_the_starters_with_their_settings(session) -> None:
    owner = make_user(session)
    workspace = create_demo_workspace(session=session, owner=owner).workspace
    session.commit()

    agents = session.exec(select(Agent).where(Agent.workspace_id == workspace.id)).all()
    by_name = {agent.name: agent for agent in agents}
    assert set(by_name) == {s["name"] for s in STARTER_AGENTS}
    for starter in STARTER_AGENTS:
        agent = by_name[starter["name"]]
        assert (agent.role_prompt, agent.examples) == (starter["role_prompt"], starter["examples"])
        assert (agent.max_tokens, agent.temperature) == (
            starter["max_tokens"],
            starter["temperature"],
        )
        assert agent.loop_guard


def test_the_demo_lands_on_its_first_task_answered_by_two_starters(
    client, session, model_server, worker
):
    from tests.engine_helpers import CHAT, wait_for_runs
    from tests.factories import make_model, sign_in
    from tests.scripted_server import answer

    make_model(session, base_url=model_server.base_url)
    model_server.on(CHAT, lambda received: answer(f"{len(received.json['messages'])} messages"))
    sign_in(client, session, make_user(session))

    landed = client.post("/workspaces/demo", follow_redirects=False)

    assert landed.status_code == 303
    task_id = int(landed.headers["location"].removeprefix("/t/"))
    runs = wait_for_runs(client, task_id, 2)
    agents = {a.id: a.name for a in session.exec(select(Agent)).all()}
    assert sorted(agents[r["agent_id"]] for r in runs) == ["Coder", "Explorer"]
    assert {r["status"] for r in runs} == {"succeeded"}
    assert len({r["fanout_group"] for r in runs}) == 1
    messages = client.get(f"/api/v1/tasks/{task_id}").json()["messages"]
    question = next(m for m in messages if m["parent_id"] is None)
    assert question["content"] == DEMO_QUESTION
    siblings = [m["content"] for m in messages if m["parent_id"] == question["id"]]
    assert siblings == ["2 messages", "2 messages"]  # role prompt + question, each
    page = client.get(landed.headers["location"])
    assert page.status_code == 200 and "2 messages" in page.text
