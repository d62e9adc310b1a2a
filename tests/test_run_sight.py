"""What a run's viewer sees on connecting, in one query: the same rule as ``run_for`` (viewers
and up; anyone else is told the run does not exist), and a session cookie's sign-in."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import col

from app.models import LoginSession, Message, Role, Run, RunStatus, Task, User
from app.models.common import utcnow
from app.services import NotFound
from app.services.accounts import start_session
from app.services.run_sight import RunSight, run_sight, signed_in_sight
from tests.factories import add_member, make_user, make_workspace


def _run(session, workspace, *, status: str = RunStatus.running, answer: str = "") -> Run:
    task = Task(workspace_id=workspace.id, title="t")
    session.add(task)
    session.flush()
    asked = Message(task_id=task.id, role="user", content="Go.")
    session.add(asked)
    session.flush()
    answered = Message(task_id=task.id, role="assistant", parent_id=asked.id, content=answer)
    session.add(answered)
    session.flush()
    run = Run(task_id=task.id, input_message_id=asked.id, output_message_id=answered.id,
              status=status, error="boom" if status == RunStatus.failed else None)  # fmt: skip
    session.add(run)
    session.commit()
    return run


@pytest.fixture
def setting(session):
    owner = make_user(session)
    workspace = make_workspace(session, owner=owner)
    return owner, workspace


def test_members_see_a_running_run_without_its_stored_text(session, setting) -> None:
    owner, workspace = setting
    viewer = make_user(session)
    add_member(session, workspace=workspace, user=viewer, role=Role.viewer)
    run = _run(session, workspace, answer="partial, not final")
    for user in (owner, viewer):
        assert run_sight(session=session, run_id=run.id, user_id=user.id) == RunSight(
            RunStatus.running, "", None, workspace.id
        )


@pytest.mark.parametrize("status", [RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled])
def test_an_ended_run_comes_with_its_stored_text(session, setting, status) -> None:
    owner, workspace = setting
    run = _run(session, workspace, status=status, answer="the answer")
    sight = run_sight(session=session, run_id=run.id, user_id=owner.id)
    assert (sight.status, sight.text) == (status, "the answer")
    assert sight.error == ("boom" if status == RunStatus.failed else None)


def test_outsiders_and_missing_runs_are_not_found(session, setting) -> None:
    _, workspace = setting
    outsider = make_user(session)
    run = _run(session, workspace)
    with pytest.raises(NotFound):
        run_sight(session=session, run_id=run.id, user_id=outsider.id)
    with pytest.raises(NotFound):
        run_sight(session=session, run_id=run.id + 1000, user_id=outsider.id)


def test_a_session_cookie_signs_in_and_sees_the_run_in_one_lookup(session, setting) -> None:
    owner, workspace = setting
    run = _run(session, workspace)
    token = start_session(session=session, user=owner, lifetime=timedelta(days=1))
    session.commit()
    found = signed_in_sight(session=session, session_token=token, run_id=run.id)
    assert found is not None
    user, sight = found
    assert (user.id, user.email, user.is_admin) == (owner.id, owner.email, owner.is_admin)
    assert sight == RunSight(RunStatus.running, "", None, workspace.id)


def test_a_signed_in_outsider_is_told_the_run_does_not_exist(session, setting) -> None:
    _, workspace = setting
    outsider = make_user(session)
    run = _run(session, workspace)
    token = start_session(session=session, user=outsider, lifetime=timedelta(days=1))
    session.commit()
    for run_id in (run.id, run.id + 1000):
        with pytest.raises(NotFound):
            signed_in_sight(session=session, session_token=token, run_id=run_id)


def test_unknown_expired_or_deactivated_sign_ins_sign_no_one_in(session, setting) -> None:
    owner, workspace = setting
    run = _run(session, workspace)
    assert signed_in_sight(session=session, session_token="no such", run_id=run.id) is None

    expired = start_session(session=session, user=owner, lifetime=timedelta(days=1))
    session.execute(
        sa.update(LoginSession).values(expires_at=utcnow() - timedelta(seconds=1))  # type: ignore[arg-type]
    )
    session.commit()
    assert signed_in_sight(session=session, session_token=expired, run_id=run.id) is None

    token = start_session(session=session, user=owner, lifetime=timedelta(days=1))
    session.execute(sa.update(User).where(col(User.id) == owner.id).values(is_active=False))
    session.commit()
    assert signed_in_sight(session=session, session_token=token, run_id=run.id) is None
