"""Evaluation suites as pages: the list, one suite (edit, export, run), a run's results grid.

The grid is live through htmx polling: while anything is unfinished its fragment asks again
every two seconds, and stops once every cell is decided (no stream to hold open per cell).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from app.engine.dispatch import announce_cancel, dispatch, dispatch_retry
from app.evals.kinds import describe
from app.evals.schema import parse_suite
from app.models import Role, Suite, Workspace
from app.services import ServiceError
from app.services.access import require_role, suite_for, suite_run_for
from app.services.agents import agents_of
from app.services.suite_results import grid
from app.services.suites import (
    cancel_suite_run,
    delete_suite,
    export_suite,
    import_suite,
    needs_judge,
    previous_run,
    retry_suite_run,
    runs_of_suite,
    save_suite,
    start_suite_run,
    suites_of,
)
from app.web.deps import CurrentUser, EditableWorkspace, SessionDep, ViewableWorkspace
from app.web.forms import form_id, form_ids
from app.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)

MAX_UPLOAD_BYTES = 1_000_000
EXAMPLE = """\
name: Basics
prompts:
  - prompt: Say hello.
    checks:
      - {kind: contains, text: hello, ignore_case: true}
"""


def _workspace(session: Session, suite: Suite) -> Workspace:
    workspace = session.get(Workspace, suite.workspace_id)
    assert workspace is not None
    return workspace


def _list_context(session: Session, workspace: Workspace, role: Role) -> dict[str, Any]:
    return {
        "workspace": workspace,
        "suites": suites_of(session=session, workspace_id=workspace.id),  # type: ignore[arg-type]
        "can_edit": role.allows(Role.editor),
        "form": {"text": EXAMPLE},
    }


@router.get("/w/{slug}/suites")
def suites_page(request: Request, session: SessionDep, access: ViewableWorkspace) -> Response:
    """The workspace's evaluation suites."""
    return render(request, "suites/list.html", _list_context(session, *access))


def _upload_text(upload: UploadFile | None) -> str:
    if upload is None or not upload.filename:
        return ""
    data = upload.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise ServiceError("Keep a suite file under 1 MB.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ServiceError("A suite file is text in UTF-8 (YAML or JSON).") from None


@router.post("/w/{slug}/suites")
def create_suite_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    access: EditableWorkspace,
    text: Annotated[str, Form(max_length=1_000_000)] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """A new suite from the text typed in, or from an uploaded YAML or JSON file."""
    workspace = access.workspace
    try:
        uploaded = _upload_text(file)
        suite = import_suite(session=session, workspace=workspace, author=user,
                             text=uploaded or text)  # fmt: skip
    except ServiceError as exc:
        session.rollback()
        context = {**_list_context(session, *access), "error": exc.message,
                   "form": {"text": text}}  # fmt: skip
        return render(request, "suites/list.html", context, status_code=exc.status_code)
    session.commit()
    return RedirectResponse(f"/suites/{suite.id}", status_code=303)


def _suite_context(session: Session, suite: Suite, role: Role) -> dict[str, Any]:
    workspace = _workspace(session, suite)
    return {
        "workspace": workspace,
        "suite": suite,
        "describe": describe,
        "agents": agents_of(session=session, workspace_id=workspace.id),  # type: ignore[arg-type]
        "needs_judge": needs_judge(suite.prompts),
        "suite_runs": runs_of_suite(session=session, suite=suite),
        "can_edit": role.allows(Role.editor),
        "form": {"text": export_suite(suite, "yaml")},
    }


def _role(session: Session, suite: Suite, user: Any) -> Role:
    return require_role(session=session, workspace_id=suite.workspace_id, user=user,
                        min_role=Role.viewer)  # fmt: skip


@router.get("/suites/{suite_id}")
def suite_page(request: Request, suite_id: int, session: SessionDep, user: CurrentUser) -> Response:
    """A suite: its prompts and checks, its runs, and the forms to edit and run it."""
    suite = suite_for(session=session, suite_id=suite_id, user=user, min_role=Role.viewer)
    return render(
        request, "suites/suite.html", _suite_context(session, suite, _role(session, suite, user))
    )


@router.post("/suites/{suite_id}")
def update_suite_page(
    request: Request,
    suite_id: int,
    session: SessionDep,
    user: CurrentUser,
    text: Annotated[str, Form(max_length=1_000_000)],
) -> Response:
    """Replace the suite's contents with the edited file (earlier runs keep their copy)."""
    suite = suite_for(session=session, suite_id=suite_id, user=user, min_role=Role.editor)
    try:
        save_suite(session=session, workspace=_workspace(session, suite), author=user,
                   document=parse_suite(text), suite=suite)  # fmt: skip
    except ServiceError as exc:
        session.rollback()
        session.refresh(suite)
        context = {**_suite_context(session, suite, Role.editor), "error": exc.message,
                   "form": {"text": text}}  # fmt: skip
        return render(request, "suites/suite.html", context, status_code=exc.status_code)
    session.commit()
    return RedirectResponse(f"/suites/{suite.id}", status_code=303)


@router.post("/suites/{suite_id}/delete")
def delete_suite_page(suite_id: int, session: SessionDep, user: CurrentUser) -> Response:
    suite = suite_for(session=session, suite_id=suite_id, user=user, min_role=Role.editor)
    slug = _workspace(session, suite).slug
    delete_suite(session=session, suite=suite, actor=user)
    session.commit()
    return RedirectResponse(f"/w/{slug}/suites", status_code=303)


@router.get("/suites/{suite_id}/export")
def export_suite_page(
    suite_id: int, session: SessionDep, user: CurrentUser, format: str = "yaml"
) -> Response:
    """The suite as a YAML or JSON file to download."""
    suite = suite_for(session=session, suite_id=suite_id, user=user, min_role=Role.viewer)
    text = export_suite(suite, format)
    media = "application/json" if format == "json" else "application/yaml"
    filename = "".join(ch if ch.isalnum() else "-" for ch in suite.name).strip("-") or "suite"
    return Response(
        text,
        media_type=f"{media}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}.{format}"'},
    )


@router.post("/suites/{suite_id}/runs")
def start_suite_run_page(
    request: Request,
    suite_id: int,
    session: SessionDep,
    user: CurrentUser,
    agent_ids: Annotated[list[str] | None, Form()] = None,
    judge_agent_id: Annotated[str, Form()] = "",
) -> Response:
    """Run the suite against the agents ticked: each prompt × agent a run on the queues."""
    suite = suite_for(session=session, suite_id=suite_id, user=user, min_role=Role.editor)
    try:
        chosen = form_ids(agent_ids, "Pick agents from the list.")
        judge = (
            form_id(judge_agent_id, "Pick the judge from the list.")
            if judge_agent_id.strip()
            else None
        )
        suite_run, runs = start_suite_run(
            session=session, suite=suite, workspace=_workspace(session, suite), author=user,
            agent_ids=chosen, judge_agent_id=judge,
        )  # fmt: skip
    except ServiceError as exc:
        session.rollback()
        context = {**_suite_context(session, suite, Role.editor), "error": exc.message}
        return render(request, "suites/suite.html", context, status_code=exc.status_code)
    session.commit()
    dispatch([run.id for run in runs if run.id is not None])
    return RedirectResponse(f"/suite-runs/{suite_run.id}", status_code=303)


@router.get("/suite-runs/{suite_run_id}")
def suite_run_page(
    request: Request, suite_run_id: int, session: SessionDep, user: CurrentUser
) -> Response:
    """The results grid: pass/fail per prompt × agent, per agent summaries, what changed."""
    suite_run, suite = suite_run_for(session=session, suite_run_id=suite_run_id, user=user,
                                     min_role=Role.viewer)  # fmt: skip
    previous = previous_run(session=session, suite_run=suite_run)
    context = {
        "workspace": _workspace(session, suite),
        "suite": suite,
        "grid": grid(session=session, suite_run=suite_run, previous=previous),
        "describe": describe,
        "can_edit": _role(session, suite, user).allows(Role.editor),
    }
    return render(request, "suites/run.html", context, block="grid")


@router.post("/suite-runs/{suite_run_id}/cancel")
def cancel_suite_run_page(suite_run_id: int, session: SessionDep, user: CurrentUser) -> Response:
    suite_run, _ = suite_run_for(session=session, suite_run_id=suite_run_id, user=user,
                                 min_role=Role.editor)  # fmt: skip
    cancelled = cancel_suite_run(session=session, suite_run=suite_run, actor=user)
    session.commit()
    for run in cancelled:
        announce_cancel(run)
    return RedirectResponse(f"/suite-runs/{suite_run.id}", status_code=303)


@router.post("/suite-runs/{suite_run_id}/retry")
def retry_suite_run_page(suite_run_id: int, session: SessionDep, user: CurrentUser) -> Response:
    suite_run, _ = suite_run_for(session=session, suite_run_id=suite_run_id, user=user,
                                 min_role=Role.editor)  # fmt: skip
    again = retry_suite_run(session=session, suite_run=suite_run, actor=user)
    session.commit()
    for run in again:
        dispatch_retry(run.id)  # type: ignore[arg-type]
    return RedirectResponse(f"/suite-runs/{suite_run.id}", status_code=303)
