"""The transcript prompt for base models: its shape, byte stability, and shared prefixes."""

from __future__ import annotations

from app.engine.conversation import (
    DEFAULT_EXAMPLES,
    TRANSCRIPT_STOP,
    render_transcript,
)
from app.models import Agent, Message


def agent(**fields: object) -> Agent:
    return Agent(workspace_id=1, name="Coder", role_prompt="You are Coder.", **fields)


def path(*turns: tuple[str, str]) -> list[Message]:
    return [
        Message(id=i + 1, task_id=1, role=role, content=content)
        for i, (role, content) in enumerate(turns)
    ]


def test_header_examples_turns_and_the_open_answer() -> None:
    examples = "User: 2 + 2?\nAssistant: 4."
    rendered = render_transcript(
        agent=agent(examples=examples),
        path=path(
            ("user", "Capital of France?"), ("assistant", "Paris."), ("user", " And Spain? ")
        ),
        context_length=None,
        reply_tokens=64,
    )

    assert rendered.prompt == (
        "You are Coder.\n\n"
        "User: 2 + 2?\nAssistant: 4.\n\n"
        "User: Capital of France?\n\n"
        "Assistant: Paris.\n\n"
        "User: And Spain?\n\n"
        "Assistant:"
    )
    assert rendered.stop == TRANSCRIPT_STOP == ("\nUser:", "\nAssistant:")
    assert not rendered.trimmed


def test_an_agent_without_examples_gets_the_general_ones() -> None:
    rendered = render_transcript(
        agent=agent(), path=path(("user", "Hi")), context_length=None, reply_tokens=64
    )

    assert rendered.prompt == f"You are Coder.\n\n{DEFAULT_EXAMPLES}\n\nUser: Hi\n\nAssistant:"


def test_code_starts_on_its_own_line_as_in_the_examples() -> None:
    rendered = render_transcript(
        agent=agent(examples="x"),
        path=path(("user", "Fix it"), ("assistant", "```python\nx = 1\n```"), ("user", "Why?")),
        context_length=None,
        reply_tokens=64,
    )

    assert "Assistant:\n```python\nx = 1\n```\n\nUser: Why?" in rendered.prompt


def test_two_renders_of_the_same_path_are_the_same_bytes() -> None:
    turns = (("user", "Q1 ünïcode"), ("assistant", "A1"), ("user", "Q2"))
    first = render_transcript(
        agent=agent(), path=path(*turns), context_length=4096, reply_tokens=64
    )
    second = render_transcript(
        agent=agent(), path=path(*turns), context_length=4096, reply_tokens=64
    )

    assert first.prompt.encode() == second.prompt.encode()


def test_a_fork_shares_the_prefix_up_to_where_it_branches() -> None:
    trunk = (("user", "Q1"), ("assistant", "A1"))
    main = render_transcript(
        agent=agent(), path=path(*trunk, ("user", "Q2")), context_length=4096, reply_tokens=64
    )
    fork = render_transcript(
        agent=agent(), path=path(*trunk, ("user", "Q2-alt")), context_length=4096, reply_tokens=64
    )
    common = render_transcript(
        agent=agent(), path=path(*trunk), context_length=4096, reply_tokens=64
    ).prompt.removesuffix("Assistant:")

    assert main.prompt.startswith(common) and fork.prompt.startswith(common)
    assert main.prompt[len(common) :] == "User: Q2\n\nAssistant:"
    assert fork.prompt[len(common) :] == "User: Q2-alt\n\nAssistant:"


def test_a_long_branch_is_trimmed_from_the_oldest_turn_and_says_so() -> None:
    turns = [("user" if i % 2 == 0 else "assistant", f"turn {i} " + "x" * 300) for i in range(9)]
    rendered = render_transcript(
        agent=agent(examples="E"), path=path(*turns), context_length=700, reply_tokens=64
    )

    assert rendered.trimmed
    assert "turn 0 " not in rendered.prompt
    assert "turn 8 " in rendered.prompt
    body = rendered.prompt.split("E\n\n", 1)[1]
    assert body.startswith("User: ")  # never opens with an answer
