"""What an agent sees: the path from the root to one message, rendered byte-stably.

An agent's context is exactly the path from the task's root message to the message it answers,
with its own role prompt as the system message — never another branch's text. The rendering is
the same bytes every time for the same path (no timestamps, names or ids at the front), so a
fork or a rerun shares its prefix with the runs before it and hits the server's prompt cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from app.models import Agent, Message
from app.services import NotFound

# Tokens held back from the context for the chat template's markers around each message.
TEMPLATE_TOKENS_PER_MESSAGE = 8
# Characters per token: a deliberately low estimate, so trimming errs on the safe side.
CHARS_PER_TOKEN = 3.0


@dataclass(frozen=True)
class Context:
    messages: list[dict[str, str]]
    trimmed: bool


def message_path(*, session: Session, message_id: int) -> list[Message]:
    """The messages from the root of the tree down to ``message_id``, in order."""
    path: list[Message] = []
    seen: set[int] = set()
    current = session.get(Message, message_id)
    if current is None:
        raise NotFound("No such message.")
    while current is not None:
        if current.id in seen:  # a cycle would be a bug elsewhere; never loop forever
            raise ValueError(f"message tree of task {current.task_id} has a cycle")
        seen.add(current.id)  # type: ignore[arg-type]
        path.append(current)
        current = session.get(Message, current.parent_id) if current.parent_id else None
    path.reverse()
    return path


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + TEMPLATE_TOKENS_PER_MESSAGE


def render_context(
    *, agent: Agent, path: list[Message], context_length: int | None, reply_tokens: int
) -> Context:
    """System prompt plus the path; oldest messages dropped until it fits the model."""
    system = [{"role": "system", "content": agent.role_prompt}] if agent.role_prompt else []
    turns = [{"role": message.role, "content": message.content} for message in path]
    if context_length is None:
        return Context(system + turns, trimmed=False)
    budget = context_length - reply_tokens - sum(estimate_tokens(m["content"]) for m in system)
    kept: list[dict[str, str]] = []
    used = 0
    # Keep the newest messages that fit; the message being answered is always kept.
    for turn in reversed(turns):
        cost = estimate_tokens(turn["content"])
        if kept and used + cost > budget:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    # A conversation must not open with an answer: drop a leading assistant turn.
    while len(kept) > 1 and kept[0]["role"] == "assistant":
        kept.pop(0)
    return Context(system + kept, trimmed=len(kept) < len(turns))
