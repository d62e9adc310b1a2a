"""The run engine's state changes under races and duplicate deliveries, without a worker: two
real connections (or threads with a barrier) do what a worker and a request, or two deliveries,
would do at the same moment.

The task-settling race needs READ COMMITTED, so it runs on PostgreSQL only (CI sets
``SWITCHBOARD_TEST_DATABASE_URL``); the others run on either database.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.db import get_engine, session_scope
from app.engine import delivery, pipelines, runner, sweeper
from app.engine import runs as operations
from app.models import Message, Run, RunStatus, Task
from app.models.common import utcnow
from app.services.tasks import create_task
from tests.factories import make_agent, make_model, make_user, make_workspace, sign_in

LEASE = timedelta(seconds=30)


@pytest.fixture
def setup(session: Session) -> dict[str, Any]:
    """An owner, a workspace, two agents on a model nobody serves (no worker runs here)."""
    user = make_user(session)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url="http://127.0.0.1:9/v1")
    agents = [
        make_agent(session, workspace=workspace, model=model, name=name)
        for name in ("Coder", "Tester")
    ]
    return {"user": user, "workspace": workspace, "agents": agents, "model": model}


def new_task(session: Session, setup: dict[str, Any], agents: list[Any] | None = None) -> Task:
    """A task whose first question is answered by ``agents`` (queued runs, not sent)."""
    task, started = create_task(
        session=session, workspace=setup["workspace"], author=setup["user"], title="Race",
        brief="Go.", agent_ids=[a.id for a in (agents or setup["agents"][:1])],
    )  # fmt: skip
    assert started is not None
    session.commit()
    return task


def runs_of(task_id: int) -> list[Run]:
    with Session(get_engine()) as db:
        return list(db.exec(select(Run).where(Run.task_id == task_id).order_by(Run.id)).all())


def start(run_id: int, worker: str) -> None:
    """What a worker does before it streams: claim the run, then begin it."""
    with session_scope() as db:
        assert runner.claim(session=db, run_id=run_id, worker=worker, lease=LEASE) == 0
    with session_scope() as db:
        assert runner.begin(session=db, run_id=run_id, worker=worker)


def in_threads(*calls: Callable[[], Any]) -> list[Any]:
    """Run each call in its own thread; their results (an exception is re-raised here)."""
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def target(index: int) -> None:
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # noqa: BLE001 (reported to the test below)
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


# --- settle_task: two runs finishing together --------------------------------------------


@pytest.mark.skipif(
    get_engine().dialect.name != "postgresql", reason="READ COMMITTED needs PostgreSQL"
)
def test_two_runs_finishing_together_settle_their_task(session, setup):
    task = new_task(session, setup, setup["agents"])
    first, second = (run.id for run in runs_of(task.id))
    start(first, "w1")
    start(second, "w2")
    assert session.get(Task, task.id).status == "running"
    barrier = threading.Barrier(2, timeout=10)

    def finish(run_id: int) -> None:
        # Each in its own connection and transaction, as two workers' record_outcome: both
        # runs are marked finished before either settles the task.
        with session_scope() as db:
            db.execute(
                sa.update(Run).where(col(Run.id) == run_id).values(status=RunStatus.succeeded)
            )
            db.flush()
            barrier.wait()
            runner.settle_task(session=db, task_id=task.id)

    in_threads(lambda: finish(first), lambda: finish(second))

    with Session(get_engine()) as db:
        assert db.get(Task, task.id).status == "review"


# --- cancel: a conditional UPDATE, and a durable request ----------------------------------


def test_a_cancel_racing_the_workers_begin_never_overwrites_running(session, setup):
    task = new_task(session, setup)
    (run,) = runs_of(task.id)
    # The request reads the run while it is still queued ...
    with Session(get_engine(), expire_on_commit=False) as request:
        stale = request.get(Run, run.id)
        assert stale is not None and stale.status == RunStatus.queued
        # ... a worker claims and begins it in another connection ...
        start(run.id, "w1")
        # ... then the request cancels what it read.
        operations.cancel(session=request, run=stale, actor=setup["user"])
        request.commit()

    (after,) = runs_of(task.id)
    assert after.status == RunStatus.running, "the cancel overwrote a running run"
    assert after.claimed_by == "w1"
    assert after.cancel_requested_at is not None  # the worker sees it and stops
    assert runner.cancel_recorded(run_id=run.id)


def test_a_cancel_of_a_queued_run_ends_it_and_a_second_cancel_is_refused(session, setup):
    task = new_task(session, setup)
    (run,) = runs_of(task.id)
    cancelled = operations.cancel(session=session, run=run, actor=setup["user"])
    session.commit()
    assert cancelled.status == RunStatus.cancelled
    assert cancelled.error == "Cancelled before it started."
    with pytest.raises(operations.Conflict, match="cancelled already"):
        operations.cancel(session=session, run=cancelled, actor=setup["user"])
    session.rollback()
    with session_scope() as db:  # a worker's begin now finds nothing to start
        assert runner.claim(session=db, run_id=run.id, worker="w1", lease=LEASE) is None


def test_a_duplicate_deliverys_error_cannot_fail_a_run_another_worker_streams(session, setup):
    task = new_task(session, setup)
    (run,) = runs_of(task.id)
    start(run.id, "w1")

    runner.fail(run_id=run.id, reason="duplicate's error", client=None, worker="w2")
    assert runs_of(task.id)[0].status == RunStatus.running

    runner.fail(run_id=run.id, reason="its own error", client=None, worker="w1")
    (after,) = runs_of(task.id)
    assert (after.status, after.error) == (RunStatus.failed, "its own error")


def test_a_delivery_finding_a_live_lease_comes_back_when_it_lapses(session, setup):
    task = new_task(session, setup)
    (run,) = runs_of(task.id)
    start(run.id, "w1")
    with session_scope() as db:
        held = delivery.held_for(db, Run, run.id)
    assert held is not None and 0 < held <= LEASE.total_seconds()
    with session_scope() as db:  # the heartbeat renews it; another worker cannot take it
        assert runner.renew(session=db, run_id=run.id, worker="w1", lease=LEASE)
        assert not runner.renew(session=db, run_id=run.id, worker="w2", lease=LEASE)
        assert runner.claim(session=db, run_id=run.id, worker="w2", lease=LEASE) is None
    runner.fail(run_id=run.id, reason="done", client=None, worker="w1")
    with session_scope() as db:  # finished: nothing to come back for
        assert delivery.held_for(db, Run, run.id) is None


def test_a_run_whose_holder_died_on_this_machine_is_taken_over_without_waiting(session, setup):
    import socket
    import subprocess
    import sys

    task = new_task(session, setup)
    (run,) = runs_of(task.id)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)  # exited and reaped: its pid names no process now
    here = socket.gethostname()
    dead, alive = f"w@{here}:{gone.pid}", f"w@{here}:{os.getpid()}"
    assert runner.holder_is_gone(dead)
    assert not runner.holder_is_gone(alive)
    assert not runner.holder_is_gone(f"w@another-{here}:{gone.pid}")  # cannot know: wait
    assert not runner.holder_is_gone(None)
    start(run.id, dead)  # its lease is still held for LEASE

    with session_scope() as db:
        assert runner.claim(session=db, run_id=run.id, worker="w2", lease=LEASE) is None
        assert runner.claim(session=db, run_id=run.id, worker="w2", lease=LEASE, dead=alive) is None
        assert runner.claim(session=db, run_id=run.id, worker="w2", lease=LEASE, dead=dead) == 1
    (taken,) = runs_of(task.id)
    assert (taken.claimed_by, taken.status) == ("w2", RunStatus.queued)


# --- requeue: a run that waits for a slot is not "lost" -----------------------------------


def test_a_run_given_back_for_want_of_a_slot_is_not_sent_again_by_the_sweeper(session, setup):
    from app.config import get_settings

    settings = get_settings()
    task = new_task(session, setup)
    (run,) = runs_of(task.id)
    long_ago = utcnow() - timedelta(seconds=settings.broker_visibility_timeout + 60)
    with session_scope() as db:
        db.execute(sa.update(Run).where(col(Run.id) == run.id).values(dispatched_at=long_ago))
        assert runner.claim(session=db, run_id=run.id, worker="w1", lease=LEASE) == 0
    # No slot was free: the worker gives it back and its task retries (a new message).
    runner.release_claim(run_id=run.id, worker="w1", lease=LEASE)

    assert run.id not in sweeper.sweep(settings=settings)
    with session_scope() as db:  # and the retry takes it at once
        assert runner.claim(session=db, run_id=run.id, worker="w1", lease=LEASE) == 0


def test_a_run_whose_worker_died_while_it_waited_for_a_slot_is_sent_again(session, setup):
    from app.config import get_settings

    task = new_task(session, setup)
    (run,) = runs_of(task.id)
    with session_scope() as db:
        db.execute(sa.update(Run).where(col(Run.id) == run.id).values(dispatched_at=utcnow()))
        assert runner.claim(session=db, run_id=run.id, worker="w1", lease=LEASE) == 0
        db.execute(
            sa.update(Run)
            .where(col(Run.id) == run.id)
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )
    assert run.id in sweeper.sweep(settings=get_settings())


def test_the_runs_of_a_worker_process_killed_here_are_sent_again_without_waiting(session, setup):
    import socket
    import subprocess
    import sys

    from app.config import get_settings

    task = new_task(session, setup, setup["agents"])
    streaming, waiting = runs_of(task.id)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)  # exited and reaped: its pid names no process now
    # Two threads of the one killed process: one streamed, one waited for a slot.
    here = socket.gethostname()
    start(streaming.id, f"w@{here}:{gone.pid}:101")
    with session_scope() as db:
        assert runner.claim(
            session=db, run_id=waiting.id, worker=f"w@{here}:{gone.pid}:102", lease=LEASE
        ) == 0  # fmt: skip
    alive = new_task(session, setup)  # a run of a process that lives, under a live lease
    (held,) = runs_of(alive.id)
    start(held.id, runner.worker_name(f"w@{here}"))

    sent = sweeper.sweep(settings=get_settings())

    assert streaming.id in sent and waiting.id in sent  # their leases still ran for 30 s
    assert held.id not in sent
    with session_scope() as db:  # the deliveries take them at once, the other one is held
        assert runner.claim(session=db, run_id=streaming.id, worker="w2", lease=LEASE) == 1
        assert runner.claim(session=db, run_id=waiting.id, worker="w2", lease=LEASE) == 0
        assert runner.claim(session=db, run_id=held.id, worker="w2", lease=LEASE) is None


def test_two_threads_of_one_process_hold_claims_apart(session, setup):
    task = new_task(session, setup)
    (run,) = runs_of(task.id)
    names = in_threads(*[lambda: runner.worker_name("w@host")] * 2)
    assert names[0] != names[1]
    assert {name.split(":")[1] for name in names} == {str(os.getpid())}
    start(run.id, names[0])

    # A duplicate delivery on the other thread can neither claim nor fail the run.
    with session_scope() as db:
        assert runner.claim(session=db, run_id=run.id, worker=names[1], lease=LEASE) is None
    runner.fail(run_id=run.id, reason="duplicate", client=None, worker=names[1])
    (after,) = runs_of(task.id)
    assert (after.status, after.claimed_by) == (RunStatus.running, names[0])


def test_one_thread_per_endpoint_waits_for_a_slot_and_the_others_go_back_at_once():
    waiters = runner.SlotWaiters()
    barrier = threading.Barrier(4)

    def arrive(endpoint_id: int) -> bool:
        barrier.wait(10)
        return waiters.enter(endpoint_id)

    entered = in_threads(*[lambda: arrive(1)] * 3, lambda: arrive(2))

    assert sorted(entered[:3]) == [False, False, True]  # endpoint 1: one waits
    assert entered[3] is True  # endpoint 2 is not held back by endpoint 1
    waiters.leave(1)
    assert waiters.enter(1)


# --- a reply under an answer still being written ------------------------------------------


def test_a_reply_under_an_unfinished_answer_is_refused_by_the_api_and_the_page(
    client, session, setup
):
    sign_in(client, session, setup["user"])
    task = new_task(session, setup)
    (run,) = runs_of(task.id)
    answer_id = run.output_message_id
    expected = "Wait for Coder to finish, or stop it, before replying to this answer."

    api = client.post(f"/api/v1/messages/{answer_id}/replies", json={"content": "And then?"})
    page = client.post(f"/m/{answer_id}/reply", data={"content": "And then?"})

    assert api.status_code == 409, api.text
    assert api.json()["detail"] == expected
    assert page.status_code == 409
    assert expected in page.text
    with Session(get_engine()) as db:
        assert not db.exec(select(Message).where(Message.parent_id == answer_id)).all()

    runner.fail(run_id=run.id, reason="stopped", client=None)  # finished: replies are fine
    api = client.post(
        f"/api/v1/messages/{answer_id}/replies",
        json={"content": "And then?", "agent_ids": [setup["agents"][0].id]},
    )
    assert api.status_code == 201, api.text


# --- pipelines: a duplicate delivery of advance -------------------------------------------


def test_advance_delivered_twice_at_once_starts_the_next_step_once(session, setup, monkeypatch):
    coder, tester = setup["agents"]
    pipeline = pipelines.create_pipeline(
        session=session, workspace_id=setup["workspace"].id, author=setup["user"], name="CT",
        steps=[{"agent_id": coder.id, "instruction": ""},
               {"agent_id": tester.id, "instruction": "Test it."}],
    )  # fmt: skip
    session.commit()
    task = new_task(session, setup)
    (run,) = runs_of(task.id)
    start(run.id, "w1")
    with session_scope() as db:
        db.execute(
            sa.update(Run)
            .where(col(Run.id) == run.id)
            .values(
                status=RunStatus.succeeded,
                pipeline_id=pipeline.id,
                pipeline_round=0,
                pipeline_step=0,
            )
        )
        db.execute(
            sa.update(Message)
            .where(col(Message.id) == run.output_message_id)
            .values(content="def f(): pass")
        )
    # Both deliveries pass the "handed on already?" check before either hands it on.
    barrier = threading.Barrier(2, timeout=10)
    real_hand_off = pipelines.hand_off
    waited = threading.local()

    def hand_off_together(**kwargs: Any):
        if not getattr(waited, "done", False):
            waited.done = True
            barrier.wait()
        return real_hand_off(**kwargs)

    monkeypatch.setattr(pipelines, "hand_off", hand_off_together)

    results = in_threads(
        lambda: pipelines.advance(run_id=run.id), lambda: pipelines.advance(run_id=run.id)
    )

    following = [r for r in runs_of(task.id) if r.id != run.id]
    assert len(following) == 1, following
    assert sorted(results, key=len) == [[], [following[0].id]]
    assert following[0].pipeline_after_run_id == run.id
    with Session(get_engine()) as db:
        handed_on = db.exec(select(Message).where(Message.parent_id == run.output_message_id))
        assert len(handed_on.all()) == 1


# --- pool children and the parent's database connections ----------------------------------


def _child_connection(parent_connection_id: int, queue: Any) -> None:
    """In a forked child: what Celery does for a new pool process, then a query."""
    from celery import signals

    import workers.celery_app  # noqa: F401  (connects its signal handlers)

    signals.worker_process_init.send(sender=None)
    with get_engine().connect() as connection:
        connection.execute(sa.text("SELECT 1"))
        queue.put(id(connection.connection.dbapi_connection) == parent_connection_id)


def test_a_pool_child_does_not_reuse_the_parents_database_connection():
    engine = get_engine()
    engine.dispose()  # a pool of exactly one connection: the one the child must not take
    with engine.connect() as connection:  # the parent holds one in its pool, as a worker does
        connection.execute(sa.text("SELECT 1"))
        parent_connection_id = id(connection.connection.dbapi_connection)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_connection, args=(parent_connection_id, queue))
    child.start()
    reused = queue.get(timeout=30)
    child.join(30)

    assert child.exitcode == 0
    assert reused is False, "the child used the connection it inherited from its parent"
    with engine.connect() as connection:  # and the parent's own still works
        assert connection.execute(sa.text("SELECT 1")).scalar() == 1
