"""Objects by id, for a user: each lookup checks the workspace role, and answers NotFound for
both "does not exist" and "not yours" (a guessed id tells nothing)."""

from __future__ import annotations

from typing import TypeVar

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from app.models import (
    Agent,
    Check,
    Comparison,
    Membership,
    Message,
    Pipeline,
    Role,
    Run,
    Suite,
    SuiteRun,
    Task,
    User,
)
from app.services import NotFound

T = TypeVar("T", bound=SQLModel)


# Built once: every page asks it, and building a statement costs more than running this one.
_ROLE = select(Membership.role).where(
    Membership.workspace_id == sa.bindparam("workspace_id"),
    Membership.user_id == sa.bindparam("user_id"),
)


def at_least(role: str | None, min_role: Role, *, missing: str = "Not found.") -> Role:
    """``role`` (a membership's, None for none) when it allows ``min_role``; otherwise NotFound:
    to someone who may not see a thing, it does not exist."""
    if role is None or not Role(role).allows(min_role):
        raise NotFound(missing)
    return Role(role)


def require_role(*, session: Session, workspace_id: int, user: User, min_role: Role) -> Role:
    role = session.exec(_ROLE, params={"workspace_id": workspace_id, "user_id": user.id}).first()
    return at_least(role, min_role)


# A task and the user's role in its workspace (None for none) in one query: every task page
# and comparison page asks it.
_TASK_AND_ROLE = (
    select(Task, Membership.role)
    .outerjoin(
        Membership,
        sa.and_(
            col(Membership.workspace_id) == col(Task.workspace_id),
            col(Membership.user_id) == sa.bindparam("user_id"),
        ),
    )
    .where(Task.id == sa.bindparam("task_id"))
)


def _get(session: Session, model: type[T], object_id: int, label: str) -> T:
    found = session.get(model, object_id)
    if found is None:
        raise NotFound(f"No such {label}.")
    return found


def task_for(*, session: Session, task_id: int, user: User, min_role: Role) -> Task:
    return task_and_role_for(session=session, task_id=task_id, user=user, min_role=min_role)[0]


def task_and_role_for(
    *, session: Session, task_id: int, user: User, min_role: Role
) -> tuple[Task, Role]:
    """The task and the user's role in its workspace (for a page that shows what that role
    may do, without asking for the role again)."""
    row = session.exec(_TASK_AND_ROLE, params={"task_id": task_id, "user_id": user.id}).first()
    if row is None:
        raise NotFound("No such task.")
    task, role = row
    return task, at_least(role, min_role)


def agent_for(*, session: Session, agent_id: int, user: User, min_role: Role) -> Agent:
    agent = _get(session, Agent, agent_id, "agent")
    require_role(session=session, workspace_id=agent.workspace_id, user=user, min_role=min_role)
    return agent


def pipeline_for(*, session: Session, pipeline_id: int, user: User, min_role: Role) -> Pipeline:
    pipeline = _get(session, Pipeline, pipeline_id, "pipeline")
    require_role(session=session, workspace_id=pipeline.workspace_id, user=user, min_role=min_role)
    return pipeline


def message_for(
    *, session: Session, message_id: int, user: User, min_role: Role
) -> tuple[Message, Task]:
    message = _get(session, Message, message_id, "message")
    task = task_for(session=session, task_id=message.task_id, user=user, min_role=min_role)
    return message, task


def run_for(*, session: Session, run_id: int, user: User, min_role: Role) -> tuple[Run, Task]:
    run = _get(session, Run, run_id, "run")
    task = task_for(session=session, task_id=run.task_id, user=user, min_role=min_role)
    return run, task


def comparison_for(
    *, session: Session, comparison_id: int, user: User, min_role: Role
) -> tuple[Comparison, Task]:
    comparison, task, _ = comparison_and_role_for(
        session=session, comparison_id=comparison_id, user=user, min_role=min_role
    )
    return comparison, task


def comparison_and_role_for(
    *, session: Session, comparison_id: int, user: User, min_role: Role
) -> tuple[Comparison, Task, Role]:
    """The comparison, its task, and the user's role in their workspace."""
    comparison = _get(session, Comparison, comparison_id, "comparison")
    task, role = task_and_role_for(
        session=session, task_id=comparison.task_id, user=user, min_role=min_role
    )
    return comparison, task, role


def check_for(*, session: Session, check_id: int, user: User, min_role: Role) -> tuple[Check, Task]:
    check = _get(session, Check, check_id, "check")
    task = task_for(session=session, task_id=check.task_id, user=user, min_role=min_role)
    return check, task


def suite_for(*, session: Session, suite_id: int, user: User, min_role: Role) -> Suite:
    suite = _get(session, Suite, suite_id, "suite")
    require_role(session=session, workspace_id=suite.workspace_id, user=user, min_role=min_role)
    return suite


def suite_run_for(
    *, session: Session, suite_run_id: int, user: User, min_role: Role
) -> tuple[SuiteRun, Suite]:
    suite_run = _get(session, SuiteRun, suite_run_id, "suite run")
    suite = suite_for(session=session, suite_id=suite_run.suite_id, user=user, min_role=min_role)
    return suite_run, suite
