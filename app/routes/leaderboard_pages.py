"""The leaderboard page of a workspace: ratings from votes, speed and size, a chart."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.services import NotFound, ServiceError
from app.services.chart import rating_chart
from app.services.leaderboard import filters_from, leaderboard
from app.services.suites import suites_of
from app.services.tags import workspace_tags
from app.web.deps import SessionDep, ViewableWorkspace
from app.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/w/{slug}/leaderboard")
def leaderboard_page(
    request: Request,
    session: SessionDep,
    access: ViewableWorkspace,
    by: str = "model",
    judges: str = "",
    since: str = "",
    until: str = "",
    tag: str = "",
    suite: str = "",
) -> Response:
    """Which model (or agent) people prefer in this workspace, against its size and speed."""
    workspace = access.workspace
    form = {"by": by, "judges": judges, "since": since, "until": until, "tag": tag,
            "suite": suite}  # fmt: skip
    tags = workspace_tags(session=session, workspace_id=workspace.id)  # type: ignore[arg-type]
    suites = suites_of(session=session, workspace_id=workspace.id)  # type: ignore[arg-type]
    try:
        filters = filters_from(by=by, judges=judges, since=since, until=until, tag=tag,
                               suite=suite)  # fmt: skip
        if filters.suite_id is not None and filters.suite_id not in {s.id for s in suites}:
            raise NotFound("No such suite in this workspace.")
    except ServiceError as exc:
        context = {"workspace": workspace, "form": form, "tags": tags, "error": exc.message,
                   "board": None, "suites": suites}  # fmt: skip
        return render(request, "leaderboard.html", context, status_code=exc.status_code)
    board = leaderboard(session=session, workspace_id=workspace.id, filters=filters)  # type: ignore[arg-type]
    context = {
        "workspace": workspace,
        "form": form,
        "tags": tags,
        "board": board,
        "chart": rating_chart(board.rows),
        "suites": suites,
        "query": request.url.query,
    }
    return render(request, "leaderboard.html", context)
