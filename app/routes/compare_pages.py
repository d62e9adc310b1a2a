"""The compare page: 2–4 branches side by side, differences, votes, continue with one."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from sqlmodel import Session, col, select
from starlette.responses import RedirectResponse, Response

from app.deps import CurrentUser, SessionDep
from app.models import (
    Agent,
    Comparison,
    Message,
    Model,
    Role,
    Run,
    RunStatus,
    Task,
    User,
    Vote,
    VoteOutcome,
    Workspace,
)
from app.routes.api.comparisons import comparison_for
from app.services import ServiceError
from app.services import comparisons as service
from app.services.access import require_role, task_for
from app.services.threads import answers_to
from app.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)
LETTERS = "ABCD"
VOTE_LABELS = {"a": "A is better", "b": "B is better", "tie": "a tie", "both_bad": "both are bad"}


def columns_of(session: Session, message_ids: list[int], baseline: int) -> list[SimpleNamespace]:
    messages = [session.get(Message, message_id) for message_id in message_ids]
    base = messages[baseline]
    base_text = base.content if base else ""
    columns = []
    for letter, message in zip(LETTERS, messages, strict=False):
        assert message is not None
        run = session.exec(select(Run).where(Run.output_message_id == message.id)).first()
        agent = session.get(Agent, message.agent_id) if message.agent_id else None
        model = session.get(Model, run.model_id) if run and run.model_id else None
        columns.append(
            SimpleNamespace(
                letter=letter, message=message, run=run, agent=agent, model=model,
                live=bool(run and run.status in (RunStatus.queued, RunStatus.running)),
                pieces=service.word_diff(base_text, message.content),
            )
        )  # fmt: skip
    return columns


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
    columns = columns_of(session, message_ids, baseline)
    label = None
    if mine:
        winner = next((c.letter for c in columns if c.message.id == mine.winner_message_id), None)
        label = VOTE_LABELS.get(mine.outcome) or f"{winner} is best"
    agents = session.exec(
        select(Agent).where(Agent.workspace_id == task.workspace_id).order_by(col(Agent.name))
    ).all()
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
    comparison = comparison_for(session, comparison_id, user, Role.viewer)
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
    comparison = comparison_for(session, comparison_id, user, Role.editor)
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
    comparison = comparison_for(session, comparison_id, user, Role.editor)
    task = session.get(Task, comparison.task_id)
    assert task is not None
    service.continue_with(session=session, task=task, message_id=message_id, actor=user)
    session.commit()
    return RedirectResponse(f"/t/{task.id}", status_code=303)
