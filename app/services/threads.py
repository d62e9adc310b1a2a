"""A task's message tree as a person reads it: one branch at a time, with its siblings.

Only ids and parent ids of the whole tree are loaded; message texts only for the branch shown,
so a task with hundreds of messages renders quickly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, func, select

from app.models import Judgement, MainBranch, Message, Run, Task
from app.services import NotFound


@dataclass(frozen=True)
class Siblings:
    index: int  # 1-based position among its siblings
    total: int
    previous_id: int | None
    next_id: int | None


@dataclass
class Branch:
    messages: list[Message]
    siblings: dict[int, Siblings]
    runs: dict[int, Run] = field(default_factory=dict)  # by output message id
    children_count: dict[int, int] = field(default_factory=dict)

    @property
    def leaf(self) -> Message | None:
        return self.messages[-1] if self.messages else None


def _tree(session: Session, task: Task) -> dict[int | None, list[int]]:
    children: dict[int | None, list[int]] = defaultdict(list)
    for message_id, parent_id in session.exec(
        select(Message.id, Message.parent_id)
        .where(Message.task_id == task.id)
        .order_by(col(Message.id))
    ).all():
        children[parent_id].append(message_id)  # type: ignore[index,arg-type]
    return children


def branch(*, session: Session, task: Task, at: int | None = None) -> Branch:
    """The branch through message ``at`` (default: the newest branch), root to leaf."""
    children = _tree(session, task)
    parents = {child: parent for parent, kids in children.items() for child in kids}
    if at is None:
        main = session.get(MainBranch, task.id)
        at = main.message_id if main else None
    if at is not None and at not in parents:
        raise NotFound("No such message in this task.")
    ids: list[int] = []
    if at is not None:
        node: int | None = at
        while node is not None:
            ids.append(node)
            node = parents[node]
        ids.reverse()
    elif children.get(None):
        # A judge's thread (a root of its own) is never where the task page opens.
        judged = set(
            session.exec(
                select(Run.input_message_id)
                .join(Judgement, col(Judgement.run_id) == col(Run.id))
                .where(Run.task_id == task.id)
            ).all()
        )
        roots = [root for root in children[None] if root not in judged] or children[None]
        ids.append(roots[-1])
    # Down from there along the newest answers.
    while ids and children.get(ids[-1]):
        ids.append(children[ids[-1]][-1])
    by_id = {m.id: m for m in session.exec(select(Message).where(col(Message.id).in_(ids))).all()}
    siblings = {}
    for message_id in ids:
        kin = children[parents[message_id]]
        index = kin.index(message_id)
        siblings[message_id] = Siblings(
            index=index + 1,
            total=len(kin),
            previous_id=kin[index - 1] if index > 0 else None,
            next_id=kin[index + 1] if index + 1 < len(kin) else None,
        )
    runs = {
        run.output_message_id: run
        for run in session.exec(select(Run).where(col(Run.output_message_id).in_(ids))).all()
        if run.output_message_id is not None
    }
    return Branch(
        messages=[by_id[i] for i in ids],
        siblings=siblings,
        runs=runs,
        children_count={i: len(children.get(i, [])) for i in ids},
    )


def answers_to(*, session: Session, message_id: int) -> list[Message]:
    """The direct answers (children) of a message, oldest first: a fan-out's branches."""
    return list(
        session.exec(
            select(Message).where(Message.parent_id == message_id).order_by(col(Message.id))
        ).all()
    )


@dataclass(frozen=True)
class TreeNode:
    id: int
    role: str
    agent_id: int | None
    snippet: str
    children: list[TreeNode]
    handoff: bool = False


def tree(*, session: Session, task: Task, snippet_chars: int = 60) -> list[TreeNode]:
    """Every branch of the task at a glance: each message with the start of its text."""
    rows: Sequence[Any] = session.exec(
        select(  # type: ignore[call-overload]
            Message.id,
            Message.parent_id,
            Message.role,
            Message.agent_id,
            func.substr(Message.content, 1, snippet_chars),
            Message.handoff,
        )
        .where(Message.task_id == task.id)
        .order_by(col(Message.id))
    ).all()
    nodes = {
        row[0]: TreeNode(row[0], row[2], row[3], " ".join((row[4] or "").split()), [], row[5])
        for row in rows
    }
    roots: list[TreeNode] = []
    for message_id, parent_id, *_ in rows:
        (nodes[parent_id].children if parent_id in nodes else roots).append(nodes[message_id])
    return roots
