"""Evaluation suites: save or import them, run them against agents, read and export results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, status
from pydantic import BaseModel
from starlette.responses import Response

from app.engine.dispatch import announce_cancel, dispatch, dispatch_retry
from app.models import Role, Suite, SuitePublic, SuiteRun, SuiteRunCreate, SuiteRunPublic, Workspace
from app.services import ServiceError
from app.services.access import suite_for, suite_run_for
from app.services.exports import to_csv
from app.services.suite_results import RESULT_COLUMNS, Grid, grid, result_records
from app.services.suites import (
    cancel_suite_run,
    delete_suite,
    export_suite,
    import_suite,
    previous_run,
    retry_suite_run,
    runs_of_suite,
    save_suite,
    start_suite_run,
    suites_of,
)
from app.web.deps import CurrentUser, EditableWorkspace, SessionDep, ViewableWorkspace

router = APIRouter(tags=["suites"])

# Checked against the suite schema by the service, so the API and a file say the same things.
SuiteDocument = Annotated[
    dict[str, Any],
    Body(description="A suite document: name, description, prompts with their checks."),
]

MAX_BODY_BYTES = 1_000_000


class SuiteRunStarted(BaseModel):
    suite_run: SuiteRunPublic
    run_ids: list[int]
    queued: bool


class AgentSummaryPublic(BaseModel):
    agent_id: int
    name: str
    passed: int
    failed: int
    unfinished: int
    other: int
    pass_rate: float | None
    pass_rate_low: float | None
    pass_rate_high: float | None
    median_time_to_first_token_ms: float | None
    median_tokens_per_second: float | None


class CellPublic(BaseModel):
    prompt_index: int
    agent_id: int | None
    status: str
    findings: list[dict[str, Any]]
    task_id: int | None
    run_id: int | None
    answer_message_id: int | None
    change: str | None


class SuiteRunResults(BaseModel):
    """A suite run's grid; ``previous_number`` is the run ``change`` compares against."""

    suite_run: SuiteRunPublic
    finished: bool
    previous_number: int | None
    agents: list[AgentSummaryPublic]
    cells: list[CellPublic]


def _results(found: Grid) -> SuiteRunResults:
    return SuiteRunResults(
        suite_run=SuiteRunPublic.model_validate(found.suite_run, from_attributes=True),
        finished=found.finished,
        previous_number=found.previous.number if found.previous else None,
        agents=[
            AgentSummaryPublic(
                agent_id=a.agent_id,
                name=a.name,
                passed=a.passed,
                failed=a.failed,
                unfinished=a.unfinished,
                other=a.other,
                pass_rate=a.pass_rate,
                pass_rate_low=a.interval[0] if a.interval else None,
                pass_rate_high=a.interval[1] if a.interval else None,
                median_time_to_first_token_ms=a.median_time_to_first_token_ms,
                median_tokens_per_second=a.median_tokens_per_second,
            )  # fmt: skip
            for a in found.agents
        ],
        cells=[
            CellPublic(
                prompt_index=c.prompt_index,
                agent_id=c.agent_id,
                status=c.status,
                findings=c.findings,
                task_id=c.task_id,
                run_id=c.run.id if c.run else None,
                answer_message_id=c.answer_id,
                change=c.change,
            )  # fmt: skip
            for c in found.cells.values()
        ],
    )


def _workspace(session: SessionDep, suite: Suite) -> Workspace:
    workspace = session.get(Workspace, suite.workspace_id)
    assert workspace is not None
    return workspace


@router.get("/workspaces/{slug}/suites", response_model=list[SuitePublic])
def list_suites(access: ViewableWorkspace, session: SessionDep) -> list[Suite]:
    """The workspace's suites, by name."""
    return suites_of(session=session, workspace_id=access.workspace.id)  # type: ignore[arg-type]


@router.post(
    "/workspaces/{slug}/suites", response_model=SuitePublic, status_code=status.HTTP_201_CREATED
)
def create_suite_api(
    access: EditableWorkspace,
    session: SessionDep,
    user: CurrentUser,
    body: SuiteDocument,
) -> Suite:
    """Save a suite given as JSON (the shape of an exported suite file)."""
    suite = save_suite(session=session, workspace=access.workspace, author=user, document=body)
    session.commit()
    return suite


async def body_text(request: Request) -> str:
    """The request body as text (a suite file), at most 1 MB."""
    data = await request.body()
    if len(data) > MAX_BODY_BYTES:
        raise ServiceError("Keep a suite file under 1 MB.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ServiceError("A suite file is text in UTF-8 (YAML or JSON).") from None


@router.post(
    "/workspaces/{slug}/suites/import",
    response_model=SuitePublic,
    status_code=status.HTTP_201_CREATED,
)
def import_suite_api(
    text: Annotated[str, Depends(body_text)],
    access: EditableWorkspace,
    session: SessionDep,
    user: CurrentUser,
) -> Suite:
    """Save a suite from a YAML or JSON file sent as the request body."""
    suite = import_suite(session=session, workspace=access.workspace, author=user, text=text)
    session.commit()
    return suite


@router.get("/suites/{suite_id}", response_model=SuitePublic)
def read_suite(suite_id: int, session: SessionDep, user: CurrentUser) -> Suite:
    return suite_for(session=session, suite_id=suite_id, user=user, min_role=Role.viewer)


@router.put("/suites/{suite_id}", response_model=SuitePublic)
def replace_suite(
    suite_id: int,
    session: SessionDep,
    user: CurrentUser,
    body: SuiteDocument,
) -> Suite:
    """Replace a suite's contents; its earlier runs keep the prompts they were run with."""
    suite = suite_for(session=session, suite_id=suite_id, user=user, min_role=Role.editor)
    save_suite(session=session, workspace=_workspace(session, suite), author=user,
               document=body, suite=suite)  # fmt: skip
    session.commit()
    return suite


@router.delete("/suites/{suite_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_suite_api(suite_id: int, session: SessionDep, user: CurrentUser) -> Response:
    suite = suite_for(session=session, suite_id=suite_id, user=user, min_role=Role.editor)
    delete_suite(session=session, suite=suite, actor=user)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/suites/{suite_id}/export", response_class=Response)
def export_suite_api(
    suite_id: int, session: SessionDep, user: CurrentUser, format: str = "yaml"
) -> Response:
    """The suite as a YAML (default) or JSON file."""
    suite = suite_for(session=session, suite_id=suite_id, user=user, min_role=Role.viewer)
    media = "application/json" if format == "json" else "application/yaml"
    return Response(export_suite(suite, format), media_type=f"{media}; charset=utf-8")


@router.get("/suites/{suite_id}/runs", response_model=list[SuiteRunPublic])
def list_suite_runs(suite_id: int, session: SessionDep, user: CurrentUser) -> list[SuiteRun]:
    """The suite's runs, newest first."""
    suite = suite_for(session=session, suite_id=suite_id, user=user, min_role=Role.viewer)
    return runs_of_suite(session=session, suite=suite)


@router.post(
    "/suites/{suite_id}/runs", response_model=SuiteRunStarted, status_code=status.HTTP_201_CREATED
)
def start_suite_run_api(
    suite_id: int, body: SuiteRunCreate, session: SessionDep, user: CurrentUser
) -> SuiteRunStarted:
    """Run the suite against 1–8 agents: every prompt × agent a run on the usual queues."""
    suite = suite_for(session=session, suite_id=suite_id, user=user, min_role=Role.editor)
    suite_run, runs = start_suite_run(
        session=session, suite=suite, workspace=_workspace(session, suite), author=user,
        agent_ids=body.agent_ids, judge_agent_id=body.judge_agent_id,
    )  # fmt: skip
    session.commit()
    run_ids = [run.id for run in runs if run.id is not None]
    queued = dispatch(run_ids)
    return SuiteRunStarted(
        suite_run=SuiteRunPublic.model_validate(suite_run, from_attributes=True),
        run_ids=run_ids,
        queued=queued,
    )


@router.get("/suite-runs/{suite_run_id}", response_model=SuiteRunResults)
def read_suite_run(suite_run_id: int, session: SessionDep, user: CurrentUser) -> SuiteRunResults:
    """The results grid: a cell per prompt × agent, per-agent pass rate and speed, and what
    got better or worse against the previous run of the same suite."""
    suite_run, _ = suite_run_for(session=session, suite_run_id=suite_run_id, user=user,
                                 min_role=Role.viewer)  # fmt: skip
    previous = previous_run(session=session, suite_run=suite_run)
    return _results(grid(session=session, suite_run=suite_run, previous=previous))


@router.get("/suite-runs/{suite_run_id}/results")
def suite_run_results(
    suite_run_id: int, session: SessionDep, user: CurrentUser
) -> list[dict[str, Any]]:
    """One record per prompt × agent, with the answer's figures (the CSV's rows as JSON)."""
    suite_run, suite = suite_run_for(session=session, suite_run_id=suite_run_id, user=user,
                                     min_role=Role.viewer)  # fmt: skip
    return result_records(session=session, suite=suite, suite_run=suite_run)


@router.get("/suite-runs/{suite_run_id}/results.csv", response_class=Response)
def suite_run_results_csv(suite_run_id: int, session: SessionDep, user: CurrentUser) -> Response:
    """The results as CSV (each cell's findings as JSON in one column)."""
    suite_run, suite = suite_run_for(session=session, suite_run_id=suite_run_id, user=user,
                                     min_role=Role.viewer)  # fmt: skip
    records = result_records(session=session, suite=suite, suite_run=suite_run)
    return Response(
        to_csv(records, RESULT_COLUMNS),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="suite-run-{suite_run.id}.csv"'},
    )


@router.post("/suite-runs/{suite_run_id}/cancel", response_model=list[int])
def cancel_suite_run_api(suite_run_id: int, session: SessionDep, user: CurrentUser) -> list[int]:
    """Cancel every unfinished run of the suite run; the ids of the runs cancelled."""
    suite_run, _ = suite_run_for(session=session, suite_run_id=suite_run_id, user=user,
                                 min_role=Role.editor)  # fmt: skip
    cancelled = cancel_suite_run(session=session, suite_run=suite_run, actor=user)
    session.commit()
    for run in cancelled:
        announce_cancel(run)
    return [run.id for run in cancelled if run.id is not None]


@router.post("/suite-runs/{suite_run_id}/retry", response_model=list[int])
def retry_suite_run_api(suite_run_id: int, session: SessionDep, user: CurrentUser) -> list[int]:
    """Queue again every answer that failed or was cancelled; the ids of those runs."""
    suite_run, _ = suite_run_for(session=session, suite_run_id=suite_run_id, user=user,
                                 min_role=Role.editor)  # fmt: skip
    again = retry_suite_run(session=session, suite_run=suite_run, actor=user)
    session.commit()
    for run in again:
        dispatch_retry(run.id)  # type: ignore[arg-type]
    return [run.id for run in again if run.id is not None]
