"""The delivery contract's SQL, shared by runs and checks (see ``app.engine``).

A run and a check are both rows with ``status`` (queued, running, then an end), ``attempts``,
``queued_at``, ``dispatched_at`` (when its Celery message was sent; a run's is stamped by the
commit that queues it and cleared should the send then fail), ``claimed_by`` (the worker
process that holds it) and ``lease_until`` (until when). Each is sent only after commit, taken
by a conditional UPDATE before it is carried out, and changed afterwards only by conditional
UPDATEs guarded by who holds it and what its state was — so a redelivered or duplicate message
records one result at most. The pieces of SQL that say so live here, once.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.db import session_scope
from app.models import Check, Run, Task, User
from app.models.common import utcnow
from app.services import Conflict
from app.services.workspaces import record_event

# A row just created is given this long to be sent before the sweeper sends it itself.
UNSENT_GRACE = timedelta(seconds=5)
QUEUED, RUNNING = "queued", "running"  # the same words in RunStatus and CheckStatus
ACTIVE = (QUEUED, RUNNING)

Delivered = type[Run] | type[Check]


class Held(Exception):
    """Another worker holds the row under a lease that has not lapsed: come back after
    ``seconds`` (if that worker died, the row is free by then)."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"{what}: held by another worker for {seconds:.1f}s more")
        self.seconds = seconds


def lapsed(table: Delivered, now: datetime | sa.BindParameter[datetime]) -> sa.ColumnElement[bool]:
    """Its lease ran out: the worker that held it stopped renewing it (it died)."""
    return col(table.lease_until) < now


def held_by(table: Delivered, row_id: Any, *, worker: Any, statuses: tuple[str, ...]) -> Any:
    """``worker`` holds the row in one of ``statuses`` (the ids may be bound parameters, for a
    statement built once)."""
    return sa.and_(
        col(table.id) == row_id, col(table.claimed_by) == worker, col(table.status).in_(statuses)
    )


def update_held(
    session: Session, table: Delivered, row_id: int, *, worker: str, statuses: tuple[str, ...],
    **values: Any,
) -> bool:  # fmt: skip
    """Change a row only while ``worker`` holds it in one of ``statuses``; False when it is no
    longer that worker's (finished, cancelled, taken over)."""
    return bool(
        session.execute(  # type: ignore[attr-defined]
            sa.update(table)
            .where(held_by(table, row_id, worker=worker, statuses=statuses))
            .values(**values)
        ).rowcount
    )


def is_held(
    session: Session, table: Delivered, row_id: int, *, worker: str, statuses: tuple[str, ...]
) -> bool:
    """Whether ``worker`` still holds the row in one of ``statuses``."""
    found = session.exec(
        select(table.id).where(  # type: ignore[arg-type]
            held_by(table, row_id, worker=worker, statuses=statuses)
        )
    ).first()
    return found is not None


def held_for(session: Session, table: Delivered, row_id: int) -> float | None:
    """Seconds until another worker's lease on this unfinished row lapses; None when it is
    finished or free (nothing to wait for)."""
    row = session.exec(
        select(table.status, table.lease_until, table.claimed_by).where(table.id == row_id)  # type: ignore[arg-type]
    ).first()
    if row is None or row[0] not in ACTIVE or row[1] is None or row[2] is None:
        return None
    return max((row[1] - utcnow()).total_seconds(), 0.0)


def holder_of(session: Session, table: Delivered, row_id: int) -> str | None:
    return session.exec(select(table.claimed_by).where(table.id == row_id)).first()  # type: ignore[arg-type]


def holder_is_gone(holder: str | None) -> bool:
    """Whether the worker process named ``holder`` ("node@host:pid", or "node@host:pid:thread"
    for a thread of a run worker) is known to be dead: it ran on this machine (container) and no
    process has its pid. A killed process's row is then taken over at once, not after its
    lease; anything less certain (another machine, a pid alive) waits for the lease."""
    if not holder:
        return False
    node, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if not pid.isdigit() or node.rpartition("@")[2] != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def mark_dispatched(table: Delivered, row_ids: list[int], *, sent: bool = True) -> None:
    """Record that these rows' messages reached the broker now (``sent=False``: that they did
    not, after all — the sweeper sends them once ``UNSENT_GRACE`` has passed)."""
    if not row_ids:
        return
    with session_scope() as session:
        session.execute(
            sa.update(table)
            .where(col(table.id).in_(row_ids))
            .values(dispatched_at=utcnow() if sent else None)
        )


def needs_sending(table: Delivered, now: datetime, visibility_s: float) -> sa.ColumnElement[bool]:
    """The rows the sweeper sends again."""
    return sa.or_(
        # never reached the broker (it was down when the row was created)
        sa.and_(
            col(table.status) == QUEUED,
            col(table.dispatched_at).is_(None),
            col(table.queued_at) < now - UNSENT_GRACE,
        ),
        # sent so long ago that Redis would have redelivered it, and no worker holds it: the
        # message is gone
        sa.and_(
            col(table.status) == QUEUED,
            col(table.dispatched_at) < now - timedelta(seconds=visibility_s),
            sa.or_(col(table.lease_until).is_(None), lapsed(table, now)),
        ),
        # its worker died and its lease ran out
        sa.and_(col(table.status).in_(ACTIVE), lapsed(table, now)),
    )


def cancel(
    session: Session,
    table: Delivered,
    row_id: int,
    *,
    noun: str,
    queued: dict[str, Any],
    running: dict[str, Any],
) -> None:
    """Cancel an unfinished row: a queued one gets ``queued`` (it ends at once), a running one
    ``running`` (a durable request its worker looks for, or an end its worker notices) — two
    conditional UPDATEs, so a worker starting it meanwhile cannot be overwritten. Conflict
    when it is over already."""
    for status, values in ((QUEUED, queued), (RUNNING, running)):
        if session.execute(  # type: ignore[attr-defined]
            sa.update(table)
            .where(col(table.id) == row_id, col(table.status) == status)
            .values(**values)
        ).rowcount:
            return
    now_status = session.exec(select(table.status).where(table.id == row_id)).one()  # type: ignore[arg-type]
    raise Conflict(f"The {noun} is {now_status} already.")


def record(
    session: Session, *, task_id: int, actor: User | None, verb: str, subject_type: str,
    subject_id: int | None,
) -> None:  # fmt: skip
    """An event on the task's workspace feed about a run or a check."""
    task = session.get(Task, task_id)
    assert task is not None
    record_event(
        session=session, workspace_id=task.workspace_id, actor=actor, verb=verb,
        subject_type=subject_type, subject_id=subject_id, data={"task_id": task_id},
    )  # fmt: skip
