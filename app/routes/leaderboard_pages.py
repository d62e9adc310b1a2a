"""The leaderboard page of a workspace: ratings from votes, speed and size, a chart."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.services import NotFound, ServiceError
from app.services.chart import rating_chart
from app.services.leaderboard import Filters, Grouping, leaderboard
from app.services.suites import suites_of
from app.web.deps import SessionDep, ViewableWorkspace
from app.web.forms import form_id
from app.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


def parse_filters(by: str, judges: str, since: str, until: str, suite: str = "") -> Filters:
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
    suite_id = form_id(suite, "Pick a suite from the list.") if suite.strip() else None
    if start and end and end < start:
        raise ServiceError("The “to” date comes before the “from” date.")
    return Filters(
        by=Grouping(by),
        include_judges=judges in ("1", "on", "true"),
        since=datetime.combine(start, time(), UTC) if start else None,
        until=datetime.combine(end + timedelta(days=1), time(), UTC) if end else None,
        suite_id=suite_id,
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
    suite: str = "",
) -> Response:
    """Which model (or agent) people prefer in this workspace, against its size and speed."""
    workspace = access.workspace
    form = {"by": by, "judges": judges, "since": since, "until": until, "suite": suite}
    suites = suites_of(session=session, workspace_id=workspace.id)  # type: ignore[arg-type]
    try:
        filters = parse_filters(by, judges, since, until, suite)
        if filters.suite_id is not None and filters.suite_id not in {s.id for s in suites}:
            raise NotFound("No such suite in this workspace.")
    except ServiceError as exc:
        context = {"workspace": workspace, "form": form, "error": exc.message, "board": None,
                   "suites": suites}  # fmt: skip
        return render(request, "leaderboard.html", context, status_code=exc.status_code)
    board = leaderboard(session=session, workspace_id=workspace.id, filters=filters)  # type: ignore[arg-type]
    context = {
        "workspace": workspace,
        "form": form,
        "board": board,
        "chart": rating_chart(board.rows),
        "suites": suites,
        "query": request.url.query,
    }
    return render(request, "leaderboard.html", context)
