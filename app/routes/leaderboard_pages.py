"""The leaderboard page of a workspace: ratings from votes, speed and size, a chart."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.services import ServiceError
from app.services.chart import rating_chart
from app.services.leaderboard import filters_from, leaderboard
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
) -> Response:
    """Which model (or agent) people prefer in this workspace, against its size and speed."""
    workspace = access.workspace
    form = {"by": by, "judges": judges, "since": since, "until": until, "tag": tag}
    tags = workspace_tags(session=session, workspace_id=workspace.id)  # type: ignore[arg-type]
    try:
        filters = filters_from(by=by, judges=judges, since=since, until=until, tag=tag)
    except ServiceError as exc:
        context = {"workspace": workspace, "form": form, "tags": tags, "error": exc.message,
                   "board": None}  # fmt: skip
        return render(request, "leaderboard.html", context, status_code=exc.status_code)
    board = leaderboard(session=session, workspace_id=workspace.id, filters=filters)  # type: ignore[arg-type]
    context = {
        "workspace": workspace,
        "form": form,
        "tags": tags,
        "board": board,
        "chart": rating_chart(board.rows),
        "query": request.url.query,
    }
    return render(request, "leaderboard.html", context)
