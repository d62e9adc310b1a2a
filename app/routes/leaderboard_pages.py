"""The leaderboard page of a workspace: ratings from votes, speed and size, a chart."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.services import ServiceError
from app.services.chart import rating_chart
from app.services.leaderboard import Filters, Grouping, leaderboard
from app.web.deps import SessionDep, ViewableWorkspace
from app.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


def parse_filters(by: str, judges: str, since: str, until: str) -> Filters:
    """Query-string filters; a clear message for each mistake."""
    if by not in (Grouping.model, Grouping.agent):
        raise ServiceError("Group the leaderboard by model or by agent.")

    def day(value: str, label: str) -> date | None:
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ServiceError(f"The {label} date must look like 2026-11-30.") from None

    start, end = day(since, "from"), day(until, "to")
    if start and end and end < start:
        raise ServiceError("The “to” date comes before the “from” date.")
    return Filters(
        by=Grouping(by),
        include_judges=judges in ("1", "on", "true"),
        since=datetime.combine(start, time(), UTC) if start else None,
        until=datetime.combine(end + timedelta(days=1), time(), UTC) if end else None,
    )


@router.get("/w/{slug}/leaderboard")
def leaderboard_page(
    request: Request,
    session: SessionDep,
    access: ViewableWorkspace,
    by: str = "model",
    judges: str = "",
    since: str = "",
    until: str = "",
) -> Response:
    """Which model (or agent) people prefer in this workspace, against its size and speed."""
    workspace = access.workspace
    form = {"by": by, "judges": judges, "since": since, "until": until}
    try:
        filters = parse_filters(by, judges, since, until)
    except ServiceError as exc:
        context = {"workspace": workspace, "form": form, "error": exc.message, "board": None}
        return render(request, "leaderboard.html", context, status_code=exc.status_code)
    board = leaderboard(session=session, workspace_id=workspace.id, filters=filters)  # type: ignore[arg-type]
    context = {
        "workspace": workspace,
        "form": form,
        "board": board,
        "chart": rating_chart(board.rows),
        "query": request.url.query,
    }
    return render(request, "leaderboard.html", context)
