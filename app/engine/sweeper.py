"""The sweeper: runs left queued or running by a crash or a broker outage are sent again, or
failed when they cannot go on. Runs at worker start and every 15 s (the one Celery beat,
``switchboard beat``)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from app.config import Settings
from app.db import session_scope
from app.engine.delivery import holder_is_gone, lapsed, needs_sending
from app.engine.runner import MAX_ATTEMPTS, end_cancelled_orphan, fail
from app.models import Run, RunStatus
from app.models.common import utcnow
from app.redis_conn import get_redis

log = logging.getLogger(__name__)


def end_leases_of_dead_workers(now: datetime) -> list[int]:
    """A worker process killed on this machine (an OOM kill takes every thread's run with it)
    is known dead at once: the leases its runs still hold end now, so that this sweep sends
    them again without waiting for them to lapse. The runs whose lease it ended."""
    with session_scope() as session:
        held = session.exec(
            select(Run.id, Run.claimed_by).where(
                col(Run.status).in_([RunStatus.queued, RunStatus.running]),
                col(Run.claimed_by).is_not(None),
                col(Run.lease_until) >= now,
            )
        ).all()
        ended = []
        for run_id, holder in held:
            if not holder_is_gone(holder):
                continue
            session.execute(
                sa.update(Run)
                .where(col(Run.id) == run_id, col(Run.claimed_by) == holder)
                .values(lease_until=now - timedelta(seconds=1))
            )
            ended.append(int(run_id))  # type: ignore[arg-type]
    if ended:
        log.warning("sweeper: the worker of runs %s died; sending them again", ended)
    return ended


def sweep(*, settings: Settings) -> list[int]:
    """Decide what must be sent again; returns those run ids (the caller dispatches them)."""
    now = utcnow()
    end_leases_of_dead_workers(now)
    with session_scope() as session:
        stale = session.exec(
            select(Run.id, Run.status, Run.attempts).where(
                needs_sending(Run, now, settings.broker_visibility_timeout)
            )
        ).all()
    resend: list[int] = []
    for run_id, status, attempts in stale:
        assert run_id is not None
        if status == RunStatus.running:
            with session_scope() as session:
                if end_cancelled_orphan(session=session, run_id=run_id):
                    continue
        if status == RunStatus.running and attempts >= MAX_ATTEMPTS:
            fail(
                run_id=run_id,
                reason=f"Its worker died {MAX_ATTEMPTS} times while running it; giving up.",
                client=get_redis(),
            )
        else:
            resend.append(run_id)
    if resend:
        with session_scope() as session:
            # Marked sent before they are (dispatch writes only when a send fails).
            session.execute(sa.update(Run).where(col(Run.id).in_(resend)).values(dispatched_at=now))
            # A running run whose lease expired goes back to queued so a worker can claim it —
            # unless a redelivery of its message claimed it since the select above.
            session.execute(
                sa.update(Run)
                .where(
                    col(Run.id).in_(resend),
                    col(Run.status) == RunStatus.running,
                    lapsed(Run, now),
                )
                .values(status=RunStatus.queued, claimed_by=None, lease_until=None)
            )
        log.info("sweeper: sending runs again: %s", resend)
    return resend
