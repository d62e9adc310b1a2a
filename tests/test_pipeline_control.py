"""A running pipeline on its task: Start refused while it runs, Stop ends it and its step, and a
step that ended as it was stopped is not handed on."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from bs4 import BeautifulSoup
from sqlmodel import col, select

from app.db import session_scope
from app.engine import pipelines
from app.models import Message, Run, RunStatus
from app.models.common import utcnow
from app.services.tasks import create_task
from tests.factories import make_agent, make_model, make_user, make_workspace, sign_in


@pytest.fixture
def queued_pipeline(client, session, model_server, no_worker):
    """A task whose pipeline's first step is queued (no worker takes it), through the pages."""
    user = make_user(session)
    sign_in(client, session, user)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=model_server.base_url)
    coder, tester = (make_agent(session, workspace=workspace, model=model, name=name)
                     for name in ("Coder", "Tester"))  # fmt: skip
    pipeline = pipelines.create_pipeline(
        session=session, workspace_id=workspace.id, author=user, name="Write and test",
        steps=[{"agent_id": coder.id, "instruction": ""},
               {"agent_id": tester.id, "instruction": "Test this."}],
        max_rounds=2,
    )  # fmt: skip
    task, _ = create_task(session=session, workspace=workspace, author=user, title="t",
                          brief="Reverse a list.")  # fmt: skip
    question = Message(task_id=task.id, role="user", content="Reverse a list.")
    session.add(question)
    session.commit()
    started = client.post(f"/t/{task.id}/pipeline",
                          data={"pipeline_id": pipeline.id, "message_id": question.id})  # fmt: skip
    assert started.status_code == 200, started.text
    return task, pipeline, question


def _page(client, task_id: int) -> BeautifulSoup:
    return BeautifulSoup(client.get(f"/t/{task_id}").text, "html.parser")


def test_the_page_says_where_the_pipeline_stands_and_start_waits(client, queued_pipeline):
    task, pipeline, question = queued_pipeline
    page = _page(client, task.id)
    assert page.find(id="pipeline-where").get_text(" ", strip=True) == "round 1 of 2 · Coder"
    assert page.find(id="pipeline-state").text == "running"
    assert page.find(id="pipeline-start").has_attr("disabled")
    assert page.find(id="pipeline-stop")
    # The page follows the pipeline on its one live stream.
    assert "follow=" in page.find(id="main")["sse-connect"]

    again = client.post(f"/t/{task.id}/pipeline",
                        data={"pipeline_id": pipeline.id, "message_id": question.id})  # fmt: skip
    assert again.status_code == 409
    assert "is running on this task; stop it first" in again.text
    with session_scope() as db:
        assert len(db.exec(select(Run).where(Run.task_id == task.id)).all()) == 1


def test_stop_cancels_the_step_and_start_is_offered_again(client, queued_pipeline):
    task, pipeline, question = queued_pipeline
    stopped = client.post(f"/t/{task.id}/pipeline/stop")
    assert stopped.status_code == 200
    with session_scope() as db:
        (run,) = db.exec(select(Run).where(Run.task_id == task.id)).all()
        assert run.status == RunStatus.cancelled
    page = _page(client, task.id)
    assert page.find(id="pipeline-state").text == "stopped"
    assert not page.find(id="pipeline-start").has_attr("disabled")
    assert page.find(id="pipeline-stop") is None
    # Nothing runs now: stopping again says so, and changes nothing.
    again = client.post(f"/t/{task.id}/pipeline/stop")
    assert again.status_code == 409
    assert "No pipeline is running on this task." in again.text


def test_a_step_that_ended_as_the_pipeline_was_stopped_is_not_handed_on(
    client, session, queued_pipeline
):
    task, pipeline, question = queued_pipeline
    with session_scope() as db:
        (run,) = db.exec(select(Run).where(Run.task_id == task.id)).all()
        db.execute(
            sa.update(Run).where(col(Run.id) == run.id)
            .values(status=RunStatus.succeeded, finished_at=utcnow())
        )  # fmt: skip
        db.execute(
            sa.update(Message).where(col(Message.id) == run.output_message_id)
            .values(content="def reverse(xs): return xs[::-1]")
        )  # fmt: skip
        run_id = run.id
    # Its next step is due (the worker hands on within moments): the pipeline still runs.
    assert "running" in _page(client, task.id).find(id="pipeline-state").text
    assert client.post(f"/t/{task.id}/pipeline/stop").status_code == 200
    assert pipelines.advance(run_id=run_id) == []
    with session_scope() as db:
        assert len(db.exec(select(Run).where(Run.task_id == task.id)).all()) == 1
    assert _page(client, task.id).find(id="pipeline-state").text == "stopped"


def test_the_follow_stream_refuses_forged_cursors_and_ends_with_the_pipeline(
    client, queued_pipeline
):
    task, pipeline, question = queued_pipeline
    live = f"/t/{task.id}/live?runs=&follow={question.id}"
    forged = client.get(live, headers={"Last-Event-ID": "r424242=1-0"})
    assert forged.status_code == 404  # a run of no such task is not followed
    assert client.post(f"/t/{task.id}/pipeline/stop").status_code == 200
    # A malformed mark and an absurd run id are ignored; the stream says where the pipeline
    # stands, then ends (nothing runs any more).
    odd = client.get(live, headers={"Last-Event-ID": "l=5-0;r99999999999999999999=1-0"})
    assert odd.status_code == 200
    assert "event: pipeline" in odd.text and 'id="pipeline-state">stopped' in odd.text
    assert "event: live-end" in odd.text


def test_start_waits_until_a_stopped_step_has_ended(client, queued_pipeline):
    task, pipeline, question = queued_pipeline
    with session_scope() as db:
        (run,) = db.exec(select(Run).where(Run.task_id == task.id)).all()
        db.execute(sa.update(Run).where(col(Run.id) == run.id).values(status=RunStatus.running))
    assert client.post(f"/t/{task.id}/pipeline/stop").status_code == 200
    page = _page(client, task.id)
    assert page.find(id="pipeline-state").text == "stopping…"
    assert page.find(id="pipeline-start").has_attr("disabled")
    again = client.post(f"/t/{task.id}/pipeline",
                        data={"pipeline_id": pipeline.id, "message_id": question.id})  # fmt: skip
    assert again.status_code == 409 and "is stopping" in again.text
