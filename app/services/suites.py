"""Evaluation suites of a workspace: save, import, export, and run one against 1–8 agents.

A suite run puts every prompt to every agent as a normal run (the usual queues, live progress,
cancel, retry), each in a task of its own; those tasks belong to the suite run and stay off the
board. What the checks find is recorded by ``app.engine.evaluations`` as the runs finish.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from app.engine.runs import ACTIVE_STATUSES, MAX_FANOUT, cancel, retry
from app.evals.schema import dump_suite, parse_suite, validate_suite
from app.models import (
    Agent,
    Run,
    RunStatus,
    Suite,
    SuiteResult,
    SuiteRun,
    Task,
    User,
    Workspace,
)
from app.models.common import utcnow
from app.services import Conflict, NotFound, ServiceError
from app.services.tasks import create_task
from app.services.workspaces import record_event


def suites_of(*, session: Session, workspace_id: int) -> list[Suite]:
    return list(
        session.exec(
            select(Suite).where(Suite.workspace_id == workspace_id).order_by(col(Suite.name))
        ).all()
    )


def _name_taken(session: Session, workspace_id: int, name: str, but: int | None) -> bool:
    query = select(Suite.id).where(Suite.workspace_id == workspace_id, Suite.name == name)
    if but is not None:
        query = query.where(Suite.id != but)
    return session.exec(query).first() is not None


def save_suite(
    *,
    session: Session,
    workspace: Workspace,
    author: User,
    document: dict[str, Any],
    suite: Suite | None = None,
) -> Suite:
    """Create a suite from a suite document (or replace ``suite``'s contents with it)."""
    clean = validate_suite(document)
    if _name_taken(session, workspace.id, clean["name"], suite.id if suite else None):  # type: ignore[arg-type]
        raise Conflict(f"This workspace has a suite named “{clean['name']}” already.")
    if suite is None:
        suite = Suite(workspace_id=workspace.id, created_by_id=author.id, **clean)  # type: ignore[arg-type]
        verb = "created"
    else:
        suite.name, suite.description, suite.prompts = (
            clean["name"], clean["description"], clean["prompts"],
        )  # fmt: skip
        suite.updated_at = utcnow()
        verb = "updated"
    session.add(suite)
    session.flush()
    record_event(
        session=session, workspace_id=workspace.id, actor=author, verb=verb,  # type: ignore[arg-type]
        subject_type="suite", subject_id=suite.id, data={"name": suite.name},
    )  # fmt: skip
    return suite


def import_suite(*, session: Session, workspace: Workspace, author: User, text: str) -> Suite:
    """A new suite from a YAML or JSON file's text; a clear error and nothing saved otherwise."""
    return save_suite(session=session, workspace=workspace, author=author,
                      document=parse_suite(text))  # fmt: skip


def suite_document(suite: Suite) -> dict[str, Any]:
    """The suite as its file holds it."""
    return {"name": suite.name, "description": suite.description, "prompts": suite.prompts}


def export_suite(suite: Suite, fmt: str) -> str:
    if fmt not in ("yaml", "json"):
        raise ServiceError("Export a suite as yaml or json.")
    return dump_suite(suite_document(suite), fmt)


def delete_suite(*, session: Session, suite: Suite, actor: User) -> None:
    """Delete the suite, its runs, and their tasks (which would otherwise land on the board).
    A run still going ends when its worker finds it gone."""
    rows = session.exec(
        select(SuiteResult.task_id, SuiteResult.judge_task_id)
        .join(SuiteRun, col(SuiteRun.id) == col(SuiteResult.suite_run_id))
        .where(SuiteRun.suite_id == suite.id)
    ).all()
    task_ids = {task_id for row in rows for task_id in row if task_id is not None}
    if task_ids:
        session.execute(sa.delete(Task).where(col(Task.id).in_(task_ids)))
    record_event(
        session=session, workspace_id=suite.workspace_id, actor=actor, verb="deleted",
        subject_type="suite", subject_id=suite.id, data={"name": suite.name},
    )  # fmt: skip
    session.delete(suite)
    session.flush()


def needs_judge(prompts: list[dict[str, Any]]) -> bool:
    return any(check["kind"] == "judge" for p in prompts for check in p.get("checks", []))


def _workspace_agent(session: Session, workspace: Workspace, agent_id: int, role: str) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None or agent.workspace_id != workspace.id:
        raise NotFound(f"No such agent in this workspace: {agent_id}.")
    if agent.model_id is None:
        raise ServiceError(f"{agent.name} has no model; choose one on the Agents page ({role}).")
    return agent


def start_suite_run(
    *,
    session: Session,
    suite: Suite,
    workspace: Workspace,
    author: User,
    agent_ids: list[int],
    judge_agent_id: int | None = None,
) -> tuple[SuiteRun, list[Run]]:
    """A run of the suite: each prompt asked of each agent in a task of its own. The caller
    commits, then dispatches the runs."""
    if not agent_ids:
        raise ServiceError("Choose at least one agent.")
    if len(agent_ids) > MAX_FANOUT:
        raise ServiceError(f"Run a suite against at most {MAX_FANOUT} agents at once.")
    if len(set(agent_ids)) != len(agent_ids):
        raise ServiceError("Each agent can be chosen once.")
    agents = [_workspace_agent(session, workspace, a, "answering") for a in agent_ids]
    if needs_judge(suite.prompts):
        if judge_agent_id is None:
            raise ServiceError("This suite has judge checks: choose a judge agent.")
        _workspace_agent(session, workspace, judge_agent_id, "judge")
    elif judge_agent_id is not None:
        _workspace_agent(session, workspace, judge_agent_id, "judge")
    number = (
        session.exec(select(func.max(SuiteRun.number)).where(SuiteRun.suite_id == suite.id)).one()
        or 0
    ) + 1
    suite_run = SuiteRun(
        suite_id=suite.id,  # type: ignore[arg-type]
        number=number,
        prompts=suite.prompts,
        agent_ids=agent_ids,
        judge_agent_id=judge_agent_id,
        created_by_id=author.id,
    )
    session.add(suite_run)
    session.flush()
    runs: list[Run] = []
    for index, prompt in enumerate(suite.prompts):
        for agent in agents:
            task, started = create_task(
                session=session, workspace=workspace, author=author,
                title=f"{suite.name} · run {number} · prompt {index + 1} · {agent.name}"[:200],
                brief=prompt["prompt"], agent_ids=[agent.id],  # type: ignore[list-item]
            )  # fmt: skip
            assert started is not None
            run = started.runs[0]
            runs.append(run)
            session.add(
                SuiteResult(
                    suite_run_id=suite_run.id,  # type: ignore[arg-type]
                    prompt_index=index,
                    agent_id=agent.id,
                    task_id=task.id,
                    run_id=run.id,
                )
            )
    session.flush()
    record_event(
        session=session, workspace_id=workspace.id, actor=author, verb="started",  # type: ignore[arg-type]
        subject_type="suite_run", subject_id=suite_run.id,
        data={"suite_id": suite.id, "name": suite.name, "number": number},
    )  # fmt: skip
    return suite_run, runs


def runs_of_suite(*, session: Session, suite: Suite) -> list[SuiteRun]:
    """The suite's runs, newest first."""
    return list(
        session.exec(
            select(SuiteRun)
            .where(SuiteRun.suite_id == suite.id)
            .order_by(col(SuiteRun.number).desc())
        ).all()
    )


def previous_run(*, session: Session, suite_run: SuiteRun) -> SuiteRun | None:
    """The run of the same suite just before this one, if any."""
    return session.exec(
        select(SuiteRun)
        .where(SuiteRun.suite_id == suite_run.suite_id, SuiteRun.number < suite_run.number)
        .order_by(col(SuiteRun.number).desc())
    ).first()


def _runs_of(session: Session, suite_run: SuiteRun, *, judges: bool) -> list[Run]:
    results = session.exec(
        select(SuiteResult).where(SuiteResult.suite_run_id == suite_run.id)
    ).all()
    ids = {r.run_id for r in results} | ({r.judge_run_id for r in results} if judges else set())
    return list(session.exec(select(Run).where(col(Run.id).in_(ids)).order_by(col(Run.id))).all())


def cancel_suite_run(*, session: Session, suite_run: SuiteRun, actor: User) -> list[Run]:
    """Cancel every unfinished run of the suite run (answers and judges); the caller commits,
    then announces each cancel."""
    cancelled = []
    for run in _runs_of(session, suite_run, judges=True):
        if run.status in ACTIVE_STATUSES:
            cancelled.append(cancel(session=session, run=run, actor=actor))
    if not cancelled:
        raise Conflict("Nothing of this suite run is still running.")
    return cancelled


def retry_suite_run(*, session: Session, suite_run: SuiteRun, actor: User) -> list[Run]:
    """Queue again every answer of the suite run that failed or was cancelled; the caller
    commits, then dispatches each retry."""
    again = [
        retry(session=session, run=run, actor=actor)
        for run in _runs_of(session, suite_run, judges=False)
        if run.status in (RunStatus.failed, RunStatus.cancelled)
    ]
    if not again:
        raise Conflict("No answer of this suite run failed or was cancelled.")
    return again
