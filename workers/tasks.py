"""Celery tasks: like views, they take ids, open a session, call a service, and hold no logic."""

from __future__ import annotations

import os
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_prerun

from app import logs
from app.config import get_settings
from app.engine import checks, evaluations, judging, pipelines, runner, sweeper
from app.engine.dispatch import (
    ADVANCE_PIPELINE,
    RUN_AGENT,
    RUN_CHECK,
    SETTLE_JUDGEMENT,
    SWEEP_CHECKS,
    SWEEP_RUNS,
    dispatch,
    dispatch_checks,
)
from app.redis_conn import get_redis
from workers.celery_app import celery_app


@task_prerun.connect
def _about_no_run_yet(**_: Any) -> None:
    """A pool process goes from task to task: what the next one logs is not about the run the
    last one carried out (a run binds its own, app/logs.py)."""
    logs.unbind_run()


@celery_app.task(bind=True, name=RUN_AGENT, max_retries=None)
def run_agent(self: Task, run_id: int) -> None:
    """Carry out one agent run (idempotent: a redelivered run is claimed at most once)."""
    settings = get_settings()
    worker = runner.worker_name(self.request.hostname)
    try:
        runner.execute_run(
            run_id=run_id, worker=worker, settings=settings, client=get_redis(),
            time_limit_error=SoftTimeLimitExceeded,
        )  # fmt: skip
        # A hand-off's answer holding tests is checked against the answer it was handed.
        dispatch_checks(checks.auto_check(run_id=run_id))
        # A suite's answer is judged: its sandbox check and its judge's run are sent.
        follow = evaluations.after_run(run_id=run_id)
        dispatch_checks(follow.check_ids)
        dispatch(follow.run_ids)
    except runner.Requeue as full:
        raise self.retry(countdown=full.seconds) from None
    except runner.Held as held:
        # A redelivery (its worker died) or a duplicate: look again once the lease lapses.
        raise self.retry(countdown=held.seconds) from None
    except SoftTimeLimitExceeded:
        runner.fail(
            run_id=run_id,
            reason=f"It ran longer than the {settings.run_time_limit}s limit "
            "(SWITCHBOARD_RUN_TIME_LIMIT).",
            client=get_redis(),
            worker=worker,
        )
    except Exception as exc:
        # A bug must end the run with a reason, not leave it "running" until its lease ends.
        runner.fail(
            run_id=run_id,
            reason=f"The worker hit an unexpected error ({type(exc).__name__}); it is logged.",
            client=get_redis(),
            worker=worker,
        )
        raise


@celery_app.task(name=ADVANCE_PIPELINE)
def advance_pipeline(run_id: int) -> None:
    """After a pipeline step: start the next hand-off, unless the pipeline is done."""
    dispatch(pipelines.advance(run_id=run_id))


@celery_app.task(name=SETTLE_JUDGEMENT)
def settle_judgement(run_id: int) -> None:
    """After a judge's run: read its verdict and cast its vote, or record why there is none."""
    judging.settle(run_id=run_id)


@celery_app.task(bind=True, name=RUN_CHECK, max_retries=None)
def run_check(self: Task, check_id: int) -> None:
    """Run one check in the sandbox (idempotent: a redelivered check is claimed at most once);
    a pipeline waiting on it goes on."""
    worker = f"{self.request.hostname}:{os.getpid()}"
    try:
        if checks.execute_check(check_id=check_id, worker=worker, settings=get_settings()):
            dispatch(pipelines.advance_after_check(check_id=check_id))
    except Exception as exc:
        checks.end_check(
            check_id=check_id, status=checks.CheckStatus.error,
            reason=f"The checker hit an unexpected error ({type(exc).__name__}); it is logged.",
        )  # fmt: skip
        raise


@celery_app.task(name=SWEEP_CHECKS)
def sweep_checks() -> None:
    """Send again the checks a dead checker or a lost message left behind."""
    dispatch_checks(checks.sweep_checks(settings=get_settings()))


@celery_app.task(name=SWEEP_RUNS)
def sweep_runs() -> None:
    """Requeue runs a crash or a broker outage left behind; fail those that cannot go on;
    judge the suite answers a dead worker left unjudged."""
    dispatch(sweeper.sweep(settings=get_settings()))
    follow = evaluations.sweep_unjudged()
    dispatch_checks(follow.check_ids)
    dispatch(follow.run_ids)
