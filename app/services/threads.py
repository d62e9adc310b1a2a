"""A task's message tree as a person reads it: one branch at a time, with its siblings.

Only ids and parent ids of the whole tree are loaded; message texts only for the branch shown,
so a task with hundreds of messages renders quickly.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
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
    """A branch root to leaf. ``messages`` are the ones loaded: the whole branch, or (asked for
    a window) ``ids[start:start + len(messages)]``; ``ids`` is always the whole branch."""

    messages: list[Message]
    siblings: dict[int, Siblings]  # of the messages loaded, and of the one asked for
    runs: dict[int, Run] = field(default_factory=dict)  # by output message id (of those loaded)
    children_count: dict[int, int] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)
    roles: dict[int, str] = field(default_factory=dict)  # of every message of the branch
    start: int = 0
    last: Message | None = None  # the leaf, loaded also when the window ends before it

    @property
    def leaf(self) -> Message | None:
        return self.last


# The statements of a task page, built once (building one costs more than running it); lists
# of ids go in as expanding parameters, so each is compiled once however long the list.
_TREE = (
    sa.select(col(Message.id), col(Message.parent_id), col(Message.role))
    .where(col(Message.task_id) == sa.bindparam("task_id"))
    .order_by(col(Message.id))
)
_MESSAGES = select(Message).where(col(Message.id).in_(sa.bindparam("ids", expanding=True)))
_RUNS_OF = select(Run).where(col(Run.output_message_id).in_(sa.bindparam("ids", expanding=True)))
_MAIN_BRANCH = select(MainBranch.message_id).where(MainBranch.task_id == sa.bindparam("task_id"))
_JUDGED = (
    select(Run.input_message_id)
    .join(Judgement, col(Judgement.run_id) == col(Run.id))
    .where(Run.task_id == sa.bindparam("task_id"))
)
_ANSWERS = (
    select(Message, Run)
    .join(Run, col(Run.output_message_id) == col(Message.id), isouter=True)
    .where(Message.parent_id == sa.bindparam("parent_id"))
    .order_by(col(Message.id))
)


_TREE_VERSION = sa.select(func.count(), func.max(col(Message.id))).where(
    col(Message.task_id) == sa.bindparam("task_id")
)


@dataclass(frozen=True)
class _Tree:
    """A task's tree, ids only; shared between requests, so never changed once built."""

    children: dict[int | None, list[int]]  # by parent, oldest first
    parents: dict[int, int | None]
    roles: dict[int, str]

    @property
    def version(self) -> tuple[int, int | None]:
        return len(self.roles), max(self.roles, default=None)


# The trees of the tasks viewed last, each under its version: how many messages the task has
# and the newest one's id. A message's id, parent and role never change once written, and a
# message leaves only with its whole task, so a task's tree changes exactly when a message is
# added to it, and every addition changes the version.
_TREES: dict[int, _Tree] = {}
_TREES_KEPT = 256
_trees_lock = threading.Lock()


def _tree(session: Session, task: Task) -> _Tree:
    """The task's tree as it is in the database now (its messages' ids, parents and roles)."""
    assert task.id is not None
    count, newest = session.connection().execute(_TREE_VERSION, {"task_id": task.id}).one()
    kept = _TREES.get(task.id)
    if kept is not None and kept.version == (count, newest):
        return kept
    children: dict[int | None, list[int]] = defaultdict(list)
    roles: dict[int, str] = {}
    # A plain (Core) query: hundreds of rows of three columns, no ORM bookkeeping.
    for message_id, parent_id, role in session.connection().execute(_TREE, {"task_id": task.id}):
        children[parent_id].append(message_id)  # type: ignore[arg-type]
        roles[message_id] = role  # type: ignore[index]
    parents = {child: parent for parent, kids in children.items() for child in kids}
    tree = _Tree(dict(children), parents, roles)  # a plain dict: a lookup adds no key
    with _trees_lock:
        _TREES.pop(task.id, None)
        _TREES[task.id] = tree
        while len(_TREES) > _TREES_KEPT:
            _TREES.pop(next(iter(_TREES)))
    return tree


def branch(
    *,
    session: Session,
    task: Task,
    at: int | None = None,
    upto: int | None = None,
    window: int | None = None,
) -> Branch:
    """The branch through message ``at`` (default: the newest branch), root to leaf.

    With ``window``, only the ``window`` messages before position ``upto`` (default: the end)
    and the leaf are loaded, with their runs: a long branch's page shows a window of it, and
    making hundreds of messages into objects was most of that page's cost."""
    found = _tree(session, task)
    children, parents, roles = found.children, found.parents, found.roles
    if at is None:
        at = session.connection().execute(_MAIN_BRANCH, {"task_id": task.id}).scalar()
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
        judged = set(session.connection().execute(_JUDGED, {"task_id": task.id}).scalars())
        roots = [root for root in children[None] if root not in judged] or children[None]
        ids.append(roots[-1])
    # Down from there along the newest answers.
    while ids and children.get(ids[-1]):
        ids.append(children[ids[-1]][-1])
    end = len(ids) if upto is None else max(0, min(upto, len(ids)))
    start = max(end - window, 0) if window is not None else 0
    if window is None:
        end = len(ids)
    wanted = ids[start:end] + ids[-1:]
    by_id = {m.id: m for m in session.exec(_MESSAGES, params={"ids": wanted}).all()}
    siblings = {}
    # Of the messages loaded, and of ``at`` (a page may show its card alone).
    for message_id in dict.fromkeys([*wanted, *([at] if at is not None else [])]):
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
        for run in session.exec(_RUNS_OF, params={"ids": wanted}).all()
        if run.output_message_id is not None
    }
    return Branch(
        messages=[by_id[i] for i in ids[start:end]],
        siblings=siblings,
        runs=runs,
        children_count={i: len(children.get(i, [])) for i in ids},
        ids=ids,
        roles={i: roles[i] for i in ids},
        start=start,
        last=by_id[ids[-1]] if ids else None,
    )


def answers_with_runs(*, session: Session, message_id: int) -> list[tuple[Message, Run | None]]:
    """The direct answers of a message, oldest first, each with the run that wrote it."""
    rows = session.exec(_ANSWERS, params={"parent_id": message_id}).all()
    return [(message, run) for message, run in rows]


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
