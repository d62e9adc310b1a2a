"""Sending a committed run to its queue: the run is marked sent with its commit, so a send that
succeeds writes nothing (no write to race the worker's claim); a send the broker refuses marks it
unsent, and the sweeper sends it once ``UNSENT_GRACE`` has passed — and marks it sent, so the
next sweep leaves it alone. And an endpoint's slots: none is given while its server starts, but
a slot already held is renewed."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from celery import Celery
from sqlmodel import Session, col

from app.config import get_settings
from app.db import get_engine, session_scope
from app.engine import dispatch, runner, sweeper
from app.engine.delivery import UNSENT_GRACE
from app.engine.starting import say_started, say_starting
from app.models import Run
from app.models.common import utcnow
from app.redis_conn import get_redis
from app.services.tasks import create_task
from tests.factories import make_agent, make_model, make_user, make_workspace


def _queued_run(session: Session) -> Run:
    user = make_user(session)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url="http://127.0.0.1:9/v1")
    agent = make_agent(session, workspace=workspace, model=model, name="Coder")
    _, started = create_task(
        session=session, workspace=workspace, author=user, title="Send", brief="Go.",
        agent_ids=[agent.id],
    )  # fmt: skip
    assert started is not None
    session.commit()
    return started.runs[0]


def _row(run_id: int) -> Run:
    with Session(get_engine()) as db:
        run = db.get(Run, run_id)
        assert run is not None
        return run


@pytest.fixture
def broker_away(monkeypatch: pytest.MonkeyPatch) -> None:
    """A producer whose broker refuses connections (nothing listens on port 1)."""
    app = Celery("unreachable", set_as_current=False)
    app.conf.update(
        broker_url="redis://127.0.0.1:1/0", task_serializer="json", task_ignore_result=True,
        task_publish_retry_policy={"max_retries": 0},
        broker_connection_retry=False, broker_connection_max_retries=0,
    )  # fmt: skip
    monkeypatch.setattr(dispatch, "producer", lambda: app)


def test_a_run_is_marked_sent_with_its_commit_and_a_send_writes_nothing(session):
    run = _queued_run(session)
    committed = _row(run.id)
    assert committed.dispatched_at == committed.queued_at is not None

    assert dispatch.dispatch([run.id])
    assert _row(run.id).dispatched_at == committed.dispatched_at  # not written again


def test_a_refused_send_is_marked_unsent_and_the_sweeper_sends_it_once(session, broker_away):
    run = _queued_run(session)
    assert not dispatch.dispatch([run.id])
    assert _row(run.id).dispatched_at is None

    settings = get_settings()
    assert run.id not in sweeper.sweep(settings=settings)  # within its grace: the request's
    with session_scope() as db:
        db.execute(
            sa.update(Run)
            .where(col(Run.id) == run.id)
            .values(queued_at=utcnow() - UNSENT_GRACE - timedelta(seconds=1))
        )
    assert run.id in sweeper.sweep(settings=settings)
    assert _row(run.id).dispatched_at is not None  # marked before it is sent
    assert run.id not in sweeper.sweep(settings=settings)


def test_no_new_slot_while_the_server_starts_but_a_held_one_is_renewed(session):
    run = _queued_run(session)
    model_endpoint = runner.seat_of(session, run.id)
    assert model_endpoint is not None
    other = runner.Seat(run.id + 1000, model_endpoint.endpoint_id, 2)
    held = runner.Seat(run.id, model_endpoint.endpoint_id, 2)
    client = get_redis()
    assert runner.take_slot(client, held, 30)
    say_starting(client, held.endpoint_id, "loading the model")
    try:
        assert not runner.take_slot(client, other, 30)
        assert runner.take_slot(client, held, 30)  # the heartbeat keeps what it has
    finally:
        say_started(client, held.endpoint_id)
        runner.release_slot(client, held)
    assert runner.take_slot(client, other, 30)
    runner.release_slot(client, other)
