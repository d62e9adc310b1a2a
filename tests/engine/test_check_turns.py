"""A check's result in an agent's context: told as a user turn, joined to the user turn beside
it, so both prompt formats get turns that alternate — chat templates refuse two user turns in a
row — and the same bytes every time."""

from __future__ import annotations

from app.engine.conversation import render_context, render_transcript
from app.models import Agent, Message, MessageKind

SUMMARY = "Checks: 1 of 2 passed.\ntest_add: AssertionError: assert -1 == 5"


def pipeline_path() -> list[Message]:
    """Coder's code, Tester's tests, the check of them, the instruction to fix."""
    return [
        Message(id=1, task_id=1, role="user", content="Write add(a, b)."),
        Message(id=2, task_id=1, role="assistant", content="def add(a, b): return a - b"),
        Message(id=3, task_id=1, role="user", content="Test this."),
        Message(id=4, task_id=1, role="assistant", content="def test_add(): ..."),
        Message(id=5, task_id=1, role="user", kind=MessageKind.check, content=SUMMARY),
        Message(id=6, task_id=1, role="user", content="Fix the code."),
    ]


def coder() -> Agent:
    return Agent(workspace_id=1, name="Coder", role_prompt="You are Coder.", max_tokens=64)


def test_chat_gets_the_check_joined_to_the_instruction_and_turns_alternate():
    context = render_context(agent=coder(), path=pipeline_path(), context_length=None,
                             reply_tokens=64)  # fmt: skip

    roles = [m["role"] for m in context.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert context.messages[-1]["content"] == f"{SUMMARY}\n\nFix the code."


def test_a_check_at_the_end_of_the_branch_is_a_user_turn_of_its_own():
    path = pipeline_path()[:5]
    context = render_context(agent=coder(), path=path, context_length=None, reply_tokens=64)

    assert context.messages[-1] == {"role": "user", "content": SUMMARY}
    assert [m["role"] for m in context.messages][-2:] == ["assistant", "user"]


def test_two_user_messages_without_a_check_stay_as_they_were():
    path = [
        Message(id=1, task_id=1, role="user", content="First."),
        Message(id=2, task_id=1, role="user", content="Second."),
    ]
    context = render_context(agent=coder(), path=path, context_length=None, reply_tokens=64)

    assert [m["content"] for m in context.messages[1:]] == ["First.", "Second."]


def test_a_transcript_tells_the_check_in_the_users_turn_before_the_answer():
    transcript = render_transcript(agent=coder(), path=pipeline_path(), context_length=None,
                                   reply_tokens=64)  # fmt: skip

    assert transcript.prompt.endswith(
        f"Assistant: def test_add(): ...\n\nUser: {SUMMARY}\n\nFix the code.\n\nAssistant:"
    )
    assert transcript.prompt.count("User: Checks:") == 1
    again = render_transcript(agent=coder(), path=pipeline_path(), context_length=None,
                              reply_tokens=64)  # fmt: skip
    assert again.prompt == transcript.prompt  # byte-stable
