"""Starter agents written for small models: one job, few tokens, examples that fit the role."""

from __future__ import annotations

import ast
import re

import pytest
from sqlmodel import select

from app.engine.conversation import ASSISTANT_MARKER, USER_MARKER
from app.models import Agent
from app.services.demo import STARTER_AGENTS, create_demo_workspace
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
    workspace = create_demo_workspace(session=session, owner=owner)
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
