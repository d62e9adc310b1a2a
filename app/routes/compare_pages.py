"""The compare page: 2–4 branches side by side, differences, votes, continue with one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from sqlmodel import Session, select
from starlette.responses import RedirectResponse, Response

from app.models import (
    Comparison,
    Role,
    Task,
    User,
    Vote,
    VoteOutcome,
    Workspace,
)
from app.services import ServiceError
from app.services import comparisons as service
from app.services.access import comparison_for, require_role, task_for
from app.services.agents import agents_of
from app.services.checks import latest_checks
from app.services.threads import answers_to
from app.web.deps import CurrentUser, SessionDep
from app.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)
VOTE_LABELS = {"a": "A is better", "b": "B is better", "tie": "a tie", "both_bad": "both are bad"}


def _context(session: Session, comparison: Comparison, user: User, baseline: int) -> dict[str, Any]:
    task = session.get(Task, comparison.task_id)
    assert task is not None
    role = require_role(session=session, workspace_id=task.workspace_id, user=user,
                        min_role=Role.viewer)  # fmt: skip
    message_ids = service.branch_ids(session=session, comparison=comparison)
    baseline = baseline if 0 <= baseline < len(message_ids) else 0
    mine = session.exec(
        select(Vote).where(Vote.comparison_id == comparison.id, Vote.voter_user_id == user.id)
    ).first()
    columns = service.columns_of(session=session, message_ids=message_ids, baseline=baseline)
    label = None
    if mine:
        winner = next((c.letter for c in columns if c.message.id == mine.winner_message_id), None)
        label = VOTE_LABELS.get(mine.outcome) or f"{winner} is best"
    agents = agents_of(session=session, workspace_id=task.workspace_id)
    return {
        "task": task,
        "workspace": session.get(Workspace, task.workspace_id),
        "comparison": comparison,
        "columns": columns,
        "baseline": baseline,
        "revealed": not comparison.blind or mine is not None,
        "can_edit": role.allows(Role.editor),
        "any_live": any(c.live for c in columns),
        "my_vote": mine,
        "my_vote_label": label,
        "checks_by_message": latest_checks(session=session, message_ids=message_ids),
        # for the live cards (the shared message partial)
        "agents": agents,
        "agents_by_id": {a.id: a for a in agents},
    }


@router.post("/t/{task_id}/compare")
def start_comparison(
    task_id: int,
    session: SessionDep,
    user: CurrentUser,
    question_id: Annotated[int, Form()],
    blind: Annotated[bool, Form()] = False,
) -> Response:
    """Compare the answers of one question (by default: the answers of a fan-out)."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.viewer)
    answers = [m.id for m in answers_to(session=session, message_id=question_id) if m.id][:4]
    comparison = service.create_comparison(
        session=session, task=task, author=user, message_ids=answers, blind=blind
    )
    session.commit()
    return RedirectResponse(f"/c/{comparison.id}", status_code=303)


@router.get("/c/{comparison_id}")
def compare_page(
    request: Request, comparison_id: int, session: SessionDep, user: CurrentUser,
    baseline: int = 0,
) -> Response:  # fmt: skip
    comparison, task = comparison_for(
        session=session, comparison_id=comparison_id, user=user, min_role=Role.viewer
    )
    return render(request, "compare.html", _context(session, comparison, user, baseline))


@router.post("/c/{comparison_id}/vote")
def vote_page(
    request: Request,
    comparison_id: int,
    session: SessionDep,
    user: CurrentUser,
    outcome: Annotated[VoteOutcome, Form()],
    winner_message_id: Annotated[int | None, Form()] = None,
) -> Response:
    comparison, task = comparison_for(
        session=session, comparison_id=comparison_id, user=user, min_role=Role.editor
    )
    try:
        service.cast_vote(session=session, comparison=comparison, voter=user, outcome=outcome,
                          winner_message_id=winner_message_id)  # fmt: skip
    except ServiceError as exc:
        session.rollback()
        context = {**_context(session, comparison, user, 0), "error": exc.message}
        return render(request, "compare.html", context, status_code=exc.status_code)
    session.commit()
    return RedirectResponse(f"/c/{comparison.id}", status_code=303)


@router.post("/c/{comparison_id}/continue")
def continue_page(
    comparison_id: int,
    session: SessionDep,
    user: CurrentUser,
    message_id: Annotated[int, Form()],
) -> Response:
    comparison, task = comparison_for(
        session=session, comparison_id=comparison_id, user=user, min_role=Role.editor
    )
    service.continue_with(session=session, task=task, message_id=message_id, actor=user)
    session.commit()
    return RedirectResponse(f"/t/{task.id}", status_code=303)
