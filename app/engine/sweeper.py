"""The sweeper: runs left queued or running by a crash or a broker outage are sent again, or
failed when they cannot go on. Runs at worker start and every 15 s (the one Celery beat,
``switchboard beat``)."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlmodel import col, select

from app.config import Settings
from app.db import session_scope
from app.engine.delivery import lapsed, needs_sending
from app.engine.runner import MAX_ATTEMPTS, end_cancelled_orphan, fail
from app.models import Run, RunStatus
from app.models.common import utcnow
from app.redis_conn import get_redis

log = logging.getLogger(__name__)


def sweep(*, settings: Settings) -> list[int]:
    """Decide what must be sent again; returns those run ids (the caller dispatches them)."""
    now = utcnow()
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
