"""A run enters the queue when its transaction commits: ``queued_at`` says so (the queue → worker
start latency is counted from there, not from when the request began building the run)."""

from __future__ import annotations

from app.engine import runs
from app.models import Run, RunStatus, Task
from app.models.common import utcnow
from tests.factories import make_agent, make_model, make_user, make_workspace


def _task_with_agent(session):
    user = make_user(session)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url="http://127.0.0.1:9/v1")
    agent = make_agent(session, workspace=workspace, model=model, name="Coder")
    task = Task(workspace_id=workspace.id, title="Stamp", position=1)
    session.add(task)
    session.commit()
    return user, task, agent


def test_queued_at_is_the_commit_not_the_build(session):
    user, task, agent = _task_with_agent(session)
    started = runs.ask(session=session, task=task, author=user, content="Hi", agent_ids=[agent.id])
    built = utcnow()  # after the run was built, before its transaction commits
    session.commit()
    run = session.get(Run, started.runs[0].id)
    assert run.queued_at >= built


def test_a_retry_enters_the_queue_again_at_its_commit(session):
    user, task, agent = _task_with_agent(session)
    started = runs.ask(session=session, task=task, author=user, content="Hi", agent_ids=[agent.id])
    session.commit()
    run = session.get(Run, started.runs[0].id)
    run.status = RunStatus.failed
    session.add(run)
    session.commit()
    runs.retry(session=session, run=run, actor=user)
    built = utcnow()
    session.commit()
    again = session.get(Run, run.id)
    assert again.status == RunStatus.queued and again.queued_at >= built
