"""What an agent sees: the path from the root to one message, rendered byte-stably.

An agent's context is exactly the path from the task's root message to the message it answers,
with its own role prompt first — never another branch's text. It is rendered in the model's
prompt format:

- ``chat`` (:func:`render_context`): messages for the server's chat template, the role prompt
  as the system message; for instruction-tuned models.
- ``transcript`` (:func:`render_transcript`): one completion prompt for base models, which
  continue a pattern rather than follow a template — the role prompt as a header, a few short
  worked examples, then the branch as alternating ``User:`` / ``Assistant:`` turns, ending in
  ``Assistant:``; generation stops at the next turn marker.

A check's result (a message of kind ``check``: what happened when the code ran) is told to the
agent as a user turn — chat templates know only user and assistant turns, and many refuse two
user turns in a row — joined to the user turn next to it (the instruction that follows it in a
pipeline, "Fix the code."), so turns still alternate in either format.

Either rendering is the same bytes every time for the same path (no timestamps, names or ids at
the front), so a fork or a rerun shares its prefix with the runs before it and hits the server's
prompt cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from app.models import Agent, Message, MessageKind, MessageRole
from app.services import NotFound

# Tokens held back from the context for the chat template's markers around each message.
TEMPLATE_TOKENS_PER_MESSAGE = 8
# Characters per token: a deliberately low estimate, so trimming errs on the safe side.
CHARS_PER_TOKEN = 3.0


USER_MARKER = "User:"
ASSISTANT_MARKER = "Assistant:"
# Where a transcript answer ends: the model starting the next turn.
TRANSCRIPT_STOP = ("\nUser:", "\nAssistant:")

# Worked examples for an agent that has none of its own: one fact, one function, one
# explanation — short, so that they teach the pattern (answer, then stop) and cost little.
DEFAULT_EXAMPLES = """\
User: What is the capital of Italy?
Assistant: Rome.

User: Write a Python function that returns the larger of two numbers.
Assistant:
```python
def larger(a, b):
    return a if a >= b else b
```

User: In one sentence, what is a variable?
Assistant: A variable is a name that refers to a value stored in memory."""


@dataclass(frozen=True)
class Context:
    messages: list[dict[str, str]]
    trimmed: bool


@dataclass(frozen=True)
class Transcript:
    prompt: str
    stop: tuple[str, ...]
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
    turns = path_turns(path)
    if context_length is None:
        return Context(system + turns, trimmed=False)
    budget = context_length - reply_tokens - sum(estimate_tokens(m["content"]) for m in system)
    kept = _newest_that_fit(turns, budget)
    return Context(system + kept, trimmed=len(kept) < len(turns))


def render_transcript(
    *, agent: Agent, path: list[Message], context_length: int | None, reply_tokens: int
) -> Transcript:
    """A completion prompt: header, worked examples, the path as turns, then ``Assistant:``."""
    header = "\n\n".join(
        part.strip() for part in (agent.role_prompt, agent.examples or DEFAULT_EXAMPLES) if part
    )
    turns = path_turns(path)
    kept = turns
    if context_length is not None:
        kept = _newest_that_fit(turns, context_length - reply_tokens - estimate_tokens(header))
    body = "".join(_turn(turn) for turn in kept)
    prompt = f"{header}\n\n{body}{ASSISTANT_MARKER}" if header else f"{body}{ASSISTANT_MARKER}"
    return Transcript(prompt, TRANSCRIPT_STOP, trimmed=len(kept) < len(turns))


def path_turns(path: list[Message]) -> list[dict[str, str]]:
    """The path as turns; a check's result joins the user turn next to it (see above)."""
    turns: list[dict[str, str]] = []
    after_check = False
    for message in path:
        is_check = message.kind == MessageKind.check
        role = MessageRole.user.value if is_check else message.role
        if turns and role == turns[-1]["role"] == MessageRole.user and (is_check or after_check):
            turns[-1] = {"role": role, "content": f"{turns[-1]['content']}\n\n{message.content}"}
        else:
            turns.append({"role": role, "content": message.content})
        after_check = is_check
    return turns


def _turn(turn: dict[str, str]) -> str:
    marker = ASSISTANT_MARKER if turn["role"] == "assistant" else USER_MARKER
    content = turn["content"].strip()
    # A block of code starts on its own line, as in the worked examples.
    separator = "\n" if content.startswith("```") else " "
    return f"{marker}{separator}{content}\n\n"


def _newest_that_fit(turns: list[dict[str, str]], budget: float) -> list[dict[str, str]]:
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
    return kept
