"""What a run's viewer sees on connecting — its state and, once it has ended, its stored text —
with access checked, in one query.

A live stream's viewers connect by the hundred, so this reads plain rows (SQLAlchemy Core, no
ORM entities) and joins what :func:`app.services.access.run_for` looks up in three steps: the
run, its task's workspace, and the user's membership there. The rule is the same: viewers and
up may see it, and anyone else is told it does not exist. For a session cookie the sign-in is
joined too (:func:`signed_in_sight`), as :func:`app.services.accounts.user_for_session`
checks it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import Session, col

from app.models import LoginSession, Membership, Message, Role, Run, RunStatus, Task, User
from app.security import hash_token
from app.services import NotFound
from app.services.access import at_least
from app.services.accounts import session_is_valid

ENDED = (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled)
_USER_COLUMNS = tuple(User.__table__.columns)  # type: ignore[attr-defined]


class RunSight(NamedTuple):
    status: str
    text: str  # the stored answer of an ended run; "" while it runs
    error: str | None
    workspace_id: int


def _sight_columns() -> tuple[Any, ...]:
    return (col(Run.status), col(Run.error), col(Task.workspace_id), col(Membership.role),
            col(Message.content))  # fmt: skip


def _joined(start: Any, *, run_id: int, user_id: Any) -> Any:
    """``start`` (where the run comes from) outer-joined to the run's task, ``user_id``'s
    membership in its workspace and, when the run has ended, its answer."""
    return (
        start.outerjoin(Task, col(Task.id) == col(Run.task_id))
        .outerjoin(
            Membership,
            sa.and_(
                col(Membership.workspace_id) == col(Task.workspace_id),
                col(Membership.user_id) == user_id,
            ),
        )
        .outerjoin(
            Message,
            sa.and_(col(Message.id) == col(Run.output_message_id), col(Run.status).in_(ENDED)),
        )
    )


def _sight(status: str | None, error: str | None, workspace_id: int | None, role: str | None,
           text: str | None) -> RunSight:  # fmt: skip
    if status is None or workspace_id is None:
        raise NotFound("No such run.")
    at_least(role, Role.viewer)
    return RunSight(status, text or "", error, workspace_id)


def run_sight(*, session: Session, run_id: int, user_id: int) -> RunSight:
    """The run as its viewer ``user_id`` sees it; NotFound unless they may see it."""
    statement = _joined(
        sa.select(*_sight_columns()).select_from(Run), run_id=run_id, user_id=user_id
    ).where(col(Run.id) == run_id)
    row = session.execute(statement).first()
    if row is None:
        raise NotFound("No such run.")
    return _sight(*row)


def signed_in_sight(
    *, session: Session, session_token: str, run_id: int
) -> tuple[User, RunSight] | None:
    """The user behind a session cookie and the run as they see it (NotFound unless they may);
    None when the cookie signs no one in."""
    start = (
        sa.select(*_USER_COLUMNS, col(LoginSession.expires_at), *_sight_columns())
        .select_from(LoginSession)
        .join(User, col(User.id) == col(LoginSession.user_id))
        .outerjoin(Run, col(Run.id) == run_id)
    )
    statement = _joined(start, run_id=run_id, user_id=col(User.id)).where(
        col(LoginSession.token_hash) == hash_token(session_token)
    )
    row = session.execute(statement).first()
    if row is None:
        return None
    count = len(_USER_COLUMNS)
    user = User(**{column.key: value for column, value in zip(_USER_COLUMNS, row, strict=False)})
    if not session_is_valid(row[count], user):
        return None
    return user, _sight(*row[count + 1 :])
