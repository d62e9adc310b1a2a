"""The demo workspace: starter agents, one task and a small evaluation suite, so a newcomer has
something to try."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from app.engine.runs import Started, ask
from app.models import Agent, Model, Task, User, Workspace
from app.services.suites import save_suite
from app.services.workspaces import create_workspace, record_event

# Written for small models, base models included: one job each, a short role prompt, worked
# examples that show the shape of an answer (a transcript-format model copies it; see
# app/engine/conversation.py), few tokens and a low temperature where the answer is code.
STARTER_AGENTS: tuple[dict[str, Any], ...] = (
    {
        "name": "Coder",
        "colour": "#4f6bed",
        "role_prompt": "You are Coder. You write one small, correct Python function for the "
        "request. Reply with the code only.",
        "max_tokens": 256,
        "temperature": 0.2,
        "examples": """\
User: Write a function that returns the square of a number.
Assistant:
```python
def square(x):
    return x * x
```

User: Write a function that counts the vowels in a string.
Assistant:
```python
def count_vowels(text):
    return sum(1 for ch in text.lower() if ch in "aeiou")
```""",
    },
    {
        "name": "Tester",
        "colour": "#1a9c6b",
        "role_prompt": "You are Tester. You test the code you are given. Reply PASS or FAIL, "
        "then the tests as asserts.",
        "max_tokens": 256,
        "temperature": 0.2,
        "examples": """\
User: def add(a, b):
    return a - b
Assistant: FAIL
```python
assert add(2, 3) == 5
assert add(0, 0) == 0
```

User: def is_even(n):
    return n % 2 == 0
Assistant: PASS
```python
assert is_even(4)
assert not is_even(7)
assert is_even(0)
```""",
    },
    {
        "name": "Reviewer",
        "colour": "#c2410c",
        "role_prompt": "You are Reviewer. You find the problems in what you are given. Reply "
        "with a short list, most important first.",
        "max_tokens": 160,
        "temperature": 0.3,
        "examples": """\
User: def average(xs):
    return sum(xs) / len(xs)
Assistant: - An empty list divides by zero.
- The name xs says little; numbers is clearer.

User: def greet(name):
    print("Hello " + name)
Assistant: - It prints instead of returning the greeting, so callers cannot reuse it.""",
    },
    {
        "name": "Explorer",
        "colour": "#8b5cf6",
        "role_prompt": "You are Explorer. You suggest two different ways to do the task, one "
        "line each, with its trade-off.",
        "max_tokens": 160,
        "temperature": 0.7,
        "examples": """\
User: Store the settings of a small web app.
Assistant: 1. A JSON file: simple to read and edit, but unsafe with concurrent writes.
2. A database table: safe to update, but needs a migration.

User: Find duplicates in a list.
Assistant: 1. A set of seen items: one pass, but uses extra memory.
2. Sort, then compare neighbours: no extra memory, but slower and reorders.""",
    },
)

DEMO_TASK_TITLE = "Write a function that reverses the words in a sentence"
DEMO_TASK_BRIEF = (
    "Python, no imports. Keep punctuation attached to its word. "
    "Fan it out to Coder and Explorer, compare them, then hand the best answer on to be tested."
)
# The first task starts at once, fanned out to these two, so a newcomer lands on live answers
# side by side. The brief names them (and no other agent): the task page's picker ticks the
# agents a brief names while the brief waits to be sent.
DEMO_FANOUT = ("Coder", "Explorer")
DEMO_QUESTION = (
    "Write a Python function that reverses the words in a sentence, keeping punctuation "
    "attached to its word."
)


# Small enough for the bundled 270M model to pass some of it (the square function is the
# shape Coder's worked example shows), and to fail some: a suite that everything passes
# tells nothing. No judge checks, so it runs without choosing a judge.
DEMO_SUITE: dict[str, Any] = {
    "name": "Starter checks",
    "description": "Four small prompts with automatic checks. Run it against Coder and Explorer.",
    "prompts": [
        {
            "prompt": "Write a Python function square(x) that returns the square of x.",
            "checks": [
                {"kind": "contains", "text": "def square"},
                {
                    "kind": "python",
                    "tests": "from solution import square\n\n\ndef test_square():\n"
                    "    assert square(3) == 9\n    assert square(-2) == 4\n",
                },
            ],
        },
        {
            "prompt": "What is the capital of France? Answer in one word.",
            "checks": [{"kind": "contains", "text": "paris", "ignore_case": True}],
        },
        {
            "prompt": "Count from 1 to 5.",
            "checks": [{"kind": "regex", "pattern": r"1\D+2\D+3\D+4\D+5"}],
        },
        {
            "prompt": 'Reply with only a JSON object whose key "ok" is true.',
            "checks": [
                {
                    "kind": "json",
                    "schema": {
                        "type": "object",
                        "properties": {"ok": {"const": True}},
                        "required": ["ok"],
                    },
                },
                {"kind": "not_contains", "text": "I cannot"},
            ],
        },
    ],
}


@dataclass(frozen=True)
class Demo:
    workspace: Workspace
    task: Task
    started: Started | None  # None when no model is available yet


def create_starter_agents(*, session: Session, workspace: Workspace) -> list[Agent]:
    """Coder, Tester, Reviewer and Explorer, bound to the first available model if any."""
    model = session.exec(select(Model).where(col(Model.available)).order_by(col(Model.id))).first()
    agents = [
        Agent(
            workspace_id=workspace.id,  # type: ignore[arg-type]
            model_id=model.id if model else None,
            name=starter["name"],
            colour=starter["colour"],
            role_prompt=starter["role_prompt"],
            examples=starter["examples"],
            max_tokens=starter["max_tokens"],
            temperature=starter["temperature"],
        )
        for starter in STARTER_AGENTS
    ]
    session.add_all(agents)
    session.flush()
    return agents


def create_demo_workspace(*, session: Session, owner: User) -> Demo:
    """A workspace named "Demo" with the starter agents, one task, asked at once of Coder
    and Explorer when a model is available (the caller dispatches the runs after commit), and
    the starter suite."""
    workspace = create_workspace(
        session=session,
        name="Demo",
        owner=owner,
        description="Starter agents and a first task to fan out.",
    )
    agents = create_starter_agents(session=session, workspace=workspace)
    task = Task(
        workspace_id=workspace.id,  # type: ignore[arg-type]
        title=DEMO_TASK_TITLE,
        brief=DEMO_TASK_BRIEF,
        assignee_agent_id=agents[0].id,
        created_by_id=owner.id,
    )
    session.add(task)
    session.flush()
    record_event(
        session=session,
        workspace_id=workspace.id,  # type: ignore[arg-type]
        actor=owner,
        verb="created",
        subject_type="task",
        subject_id=task.id,
        data={"title": task.title},
    )
    save_suite(session=session, workspace=workspace, author=owner, document=DEMO_SUITE)
    started = None
    fanout = [agent.id for agent in agents if agent.name in DEMO_FANOUT and agent.model_id]
    if len(fanout) == len(DEMO_FANOUT):
        started = ask(
            session=session, task=task, author=owner, content=DEMO_QUESTION,
            agent_ids=fanout,  # type: ignore[arg-type]
        )  # fmt: skip
    return Demo(workspace, task, started)
