"""The leaderboard and the votes behind it, as JSON or CSV."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlmodel import Session
from starlette.responses import Response

from app.models import Suite
from app.services import NotFound
from app.services.exports import to_csv
from app.services.leaderboard import (
    LEADERBOARD_COLUMNS,
    VOTE_COLUMNS,
    Filters,
    filters_from,
    leaderboard,
    leaderboard_records,
    vote_records,
)
from app.web.deps import Access, SessionDep, ViewableWorkspace

router = APIRouter(prefix="/workspaces/{slug}", tags=["leaderboard"])


class LeaderboardPublic(BaseModel):
    by: str
    include_judges: bool
    tag: str | None
    since: str | None
    until: str | None
    human_votes: int
    judge_votes: int
    judge_agreement: float | None
    rows: list[dict[str, object]]


def _filters(
    session: Session,
    access: Access,
    by: str,
    judges: bool,
    since: str,
    until: str,
    tag: str,
    suite: str,
) -> Filters:
    filters = filters_from(by=by, judges="true" if judges else "", since=since, until=until,
                           tag=tag, suite=suite)  # fmt: skip
    if filters.suite_id is not None:
        found = session.get(Suite, filters.suite_id)
        if found is None or found.workspace_id != access.workspace.id:
            raise NotFound("No such suite in this workspace.")
    return filters


@router.get("/leaderboard", response_model=LeaderboardPublic)
def read_leaderboard(
    access: ViewableWorkspace,
    session: SessionDep,
    by: str = "model",
    judges: bool = False,
    since: str = "",
    until: str = "",
    tag: str = "",
    suite: str = "",
) -> LeaderboardPublic:
    """Bradley–Terry ratings with 95 % intervals, votes, speed and size per model (or agent),
    and the evaluation pass rate (from one suite's runs with ``suite``); ``since`` and ``until``
    are days (both included), ``tag`` counts only tasks with that tag."""
    board = leaderboard(
        session=session,
        workspace_id=access.workspace.id,  # type: ignore[arg-type]
        filters=_filters(session, access, by, judges, since, until, tag, suite),
    )
    return LeaderboardPublic(
        by=board.filters.by, include_judges=board.filters.include_judges,
        tag=board.filters.tag, since=since or None, until=until or None,
        human_votes=board.human_votes, judge_votes=board.judge_votes,
        judge_agreement=board.judge_agreement, rows=leaderboard_records(board),
    )  # fmt: skip


@router.get("/leaderboard.csv", response_class=Response)
def leaderboard_csv(
    access: ViewableWorkspace,
    session: SessionDep,
    by: str = "model",
    judges: bool = False,
    since: str = "",
    until: str = "",
    tag: str = "",
    suite: str = "",
) -> Response:
    """The leaderboard as CSV (the same filters as the JSON)."""
    board = leaderboard(
        session=session,
        workspace_id=access.workspace.id,  # type: ignore[arg-type]
        filters=_filters(session, access, by, judges, since, until, tag, suite),
    )
    return _csv(to_csv(leaderboard_records(board), LEADERBOARD_COLUMNS), "leaderboard")


@router.get("/votes")
def list_votes(access: ViewableWorkspace, session: SessionDep) -> list[dict[str, object]]:
    """Every vote of the workspace with the compared columns' agents and models."""
    return vote_records(session=session, workspace_id=access.workspace.id)  # type: ignore[arg-type]


@router.get("/votes.csv", response_class=Response)
def votes_csv(access: ViewableWorkspace, session: SessionDep) -> Response:
    """Every vote as CSV (the compared columns as JSON in one cell)."""
    records = vote_records(session=session, workspace_id=access.workspace.id)  # type: ignore[arg-type]
    return _csv(to_csv(records, VOTE_COLUMNS), "votes")


def _csv(text: str, name: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )
