"""Checks as pages show them: the latest check of each answer, the best check of each task."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.models import Check, CheckStatus

JUDGED = (CheckStatus.passed, CheckStatus.failed, CheckStatus.error)


# Built once: pages ask them on every view.
_CHECKS_OF_CODE = (
    select(Check)
    .where(col(Check.code_message_id).in_(sa.bindparam("ids", expanding=True)))
    .order_by(col(Check.id))
)
_JUDGED_CHECKS_OF = select(Check).where(
    col(Check.task_id).in_(sa.bindparam("ids", expanding=True)), col(Check.status).in_(JUDGED)
)


def latest_checks(*, session: Session, message_ids: list[int]) -> dict[int, Check]:
    """The newest check of each answer's code, by the answer's message id."""
    latest: dict[int, Check] = {}
    for check in session.exec(_CHECKS_OF_CODE, params={"ids": message_ids}).all():
        latest[check.code_message_id] = check
    return latest


def _rank(check: Check) -> tuple[bool, float, int]:
    total = (check.tests_passed or 0) + (check.tests_failed or 0) + (check.tests_errors or 0)
    share = (check.tests_passed or 0) / total if total else 0.0
    return (check.status == CheckStatus.passed, share, check.id or 0)


def best_checks(*, session: Session, task_ids: list[int]) -> dict[int, Check]:
    """Each task's best finished check: passed before not, then the larger share of tests."""
    best: dict[int, Check] = {}
    for check in session.exec(_JUDGED_CHECKS_OF, params={"ids": task_ids}).all():
        current = best.get(check.task_id)
        if current is None or _rank(check) > _rank(current):
            best[check.task_id] = check
    return best
