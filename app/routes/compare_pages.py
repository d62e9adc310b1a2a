"""The compare page: 2–4 branches side by side, differences, votes, continue with one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Form, Header, Request
from jinja2_fragments import render_block
from sqlmodel import Session
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from app.db import get_engine
from app.engine import judging
from app.engine.dispatch import dispatch
from app.models import (
    Agent,
    Comparison,
    Message,
    Role,
    Task,
    User,
    Vote,
    VoteOutcome,
    Workspace,
)
from app.services import ServiceError
from app.services import comparisons as service
from app.services.access import (
    comparison_and_role_for,
    comparison_for,
    require_role,
    task_for,
)
from app.services.agents import agents_of
from app.services.checks import latest_checks
from app.services.threads import answers_to
from app.web.deps import CurrentUser, SessionDep
from app.web.forms import form_id
from app.web.streams import (
    LiveEvent,
    StreamUser,
    Tail,
    Viewer,
    event_stream,
    state_fragment,
    tail,
    text_fragment,
)
from app.web.templating import render, templates

router = APIRouter(tags=["pages"], include_in_schema=False)
VOTE_LABELS = {"a": "A is better", "b": "B is better", "tie": "a tie", "both_bad": "both are bad"}


def _vote_label(vote: Vote, columns: list[service.Column]) -> str:
    winner = next((c.letter for c in columns if c.message.id == vote.winner_message_id), None)
    return VOTE_LABELS.get(vote.outcome) or f"{winner} is best"


def _judge_context(session: Session, comparison: Comparison, context: dict[str, Any]) -> dict:
    """The judge panel: the judgements asked (finished runs settled first), the judges' votes
    with their reasons, and the agents that can judge."""
    task = context["task"]
    judgements = judging.judgements_of(session=session, comparison=comparison)
    votes = {v.id: v for v in service.votes_of(session=session, comparison=comparison) if v.judge}
    names = {a.id: a.name for a in context["agents"]}
    shown, voted = [], set()
    for j in judgements:  # newest first: a judge's newer verdict replaced its older ones
        vote = votes.get(j.vote_id) if j.vote_id and j.vote_id not in voted else None
        voted.add(j.vote_id)
        shown.append({
            "judgement": j,
            "judge": names.get(j.agent_id, "A deleted agent") if j.agent_id else "A deleted agent",
            "vote": vote,
            "label": _vote_label(vote, context["columns"]) if vote else None,
        })  # fmt: skip
    return {
        "judgements": shown,
        "judging": any(j.status == "pending" for j in judgements),
        "judge_agents": judging.judge_agents(session=session, workspace_id=task.workspace_id),
    }


def _context(
    session: Session, comparison: Comparison, user: User, baseline: int, role: Role | None = None
) -> dict[str, Any]:
    """What the compare page shows; ``role``: the user's, when the caller has read it already."""
    task = session.get(Task, comparison.task_id)
    assert task is not None
    if role is None:
        role = require_role(session=session, workspace_id=task.workspace_id, user=user,
                            min_role=Role.viewer)  # fmt: skip
    message_ids = service.branch_ids(session=session, comparison=comparison)
    baseline = baseline if 0 <= baseline < len(message_ids) else 0
    mine = service.vote_of(session=session, comparison=comparison, voter=user)
    # A task's answers are its workspace's agents': read once, for the columns and the cards.
    agents = agents_of(session=session, workspace_id=task.workspace_id)
    agents_by_id: dict[int | None, Agent] = {a.id: a for a in agents}
    columns = service.columns_of(
        session=session, message_ids=message_ids, baseline=baseline, agents=agents_by_id
    )
    label = _vote_label(mine, columns) if mine else None
    first = columns[0].message if columns else None
    question = session.get(Message, first.parent_id) if first and first.parent_id else None
    return {
        "question": question if question and question.role == "user" else None,
        "task": task,
        "workspace": session.get(Workspace, task.workspace_id),
        "comparison": comparison,
        "columns": columns,
        "baseline": baseline,
        "revealed": not comparison.blind or mine is not None,
        "can_edit": role.allows(Role.editor),
        "any_live": any(c.live for c in columns),
        "live_url": f"/c/{comparison.id}/live" if any(c.live for c in columns) else None,
        "my_vote": mine,
        "my_vote_label": label,
        "checks_by_message": latest_checks(session=session, message_ids=message_ids),
        # for the live cards (the shared message partial)
        "agents": agents,
        "agents_by_id": agents_by_id,
    }


@router.post("/t/{task_id}/compare")
def start_comparison(
    task_id: int,
    session: SessionDep,
    user: CurrentUser,
    question_id: Annotated[int, Form()],
    blind: Annotated[bool, Form()] = False,
) -> Response:
    """Compare the answers of one question (by default: the answers of a fan-out); the same
    answers compared again open the comparison made before, with its votes."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.viewer)
    answers = [m.id for m in answers_to(session=session, message_id=question_id) if m.id][:4]
    comparison = service.compare_once(
        session=session, task=task, author=user, message_ids=answers, blind=blind
    )
    session.commit()
    return RedirectResponse(f"/c/{comparison.id}", status_code=303)


@router.get("/c/{comparison_id}")
def compare_page(
    request: Request, comparison_id: int, session: SessionDep, user: CurrentUser,
    baseline: int = 0,
) -> Response:  # fmt: skip
    comparison, _, role = comparison_and_role_for(
        session=session, comparison_id=comparison_id, user=user, min_role=Role.viewer
    )
    context = _context(session, comparison, user, baseline, role)
    context.update(_judge_context(session, comparison, context))
    return render(request, "compare.html", context)


@router.get("/c/{comparison_id}/judge")
def judge_panel(
    request: Request, comparison_id: int, session: SessionDep, user: CurrentUser
) -> Response:
    """The judge panel alone: it replaces itself every two seconds while a judge is at work."""
    comparison, _ = comparison_for(
        session=session, comparison_id=comparison_id, user=user, min_role=Role.viewer
    )
    context = _context(session, comparison, user, 0)
    context.update(_judge_context(session, comparison, context))
    return render(request, "compare.html", context, block="judge_panel")


@router.post("/c/{comparison_id}/judge")
def ask_judge(
    request: Request,
    comparison_id: int,
    session: SessionDep,
    user: CurrentUser,
    agent_id: Annotated[str, Form()] = "",
) -> Response:
    """Have an agent judge the comparison (blind: it sees the question and the answers)."""
    comparison, task = comparison_for(
        session=session, comparison_id=comparison_id, user=user, min_role=Role.editor
    )
    try:
        judge = form_id(agent_id, "Choose the agent that judges.")
        _, started = judging.ask_judge(
            session=session, comparison=comparison, agent_id=judge, author=user
        )
    except ServiceError as exc:
        session.rollback()
        context = _context(session, comparison, user, 0)
        context.update(_judge_context(session, comparison, context))
        context.update(judge_error=exc.message, judge_agent_id=agent_id)
        return render(request, "compare.html", context, status_code=exc.status_code)
    session.commit()
    dispatch([run.id for run in started.runs if run.id is not None])
    return RedirectResponse(f"/c/{comparison.id}#judge-panel", status_code=303)


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
        context.update(_judge_context(session, comparison, context))
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


# --- the comparison's live answers over one SSE connection (htmx's SSE extension) ------------


def _live_runs(user: User, comparison_id: int) -> list[int]:
    """404 unless the user may see the comparison; the runs of its columns still live."""
    with Session(get_engine()) as session:
        comparison, _ = comparison_for(
            session=session, comparison_id=comparison_id, user=user, min_role=Role.viewer
        )
        context = _context(session, comparison, user, 0)
        return [c.run.id for c in context["columns"] if c.live and c.run and c.run.id]


def _finished(user: User, comparison_id: int, event: LiveEvent, last: bool) -> tuple[str, str]:
    """A finished answer's column body, or the whole grid with its differences once the last
    one is done; blind comparisons stay blind until the vote."""
    with Session(get_engine()) as session:
        comparison, _ = comparison_for(
            session=session, comparison_id=comparison_id, user=user, min_role=Role.viewer
        )
        context = _context(session, comparison, user, 0)
        if last:
            grid = render_block(templates.env, "compare.html", "columns", context)
            return "compare-done", grid
        column = next(c for c in context["columns"] if c.run and c.run.id == event.run_id)
        column.live = False
        html = templates.get_template("_compare_body.html").render({**context, "column": column})
        return f"run-{event.run_id}-done", html


@router.get("/c/{comparison_id}/live")
async def comparison_live(
    comparison_id: int,
    request: Request,
    user: StreamUser,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """The comparison's live answers, multiplexed: ``run-{id}-text``, ``-token``, ``-state``,
    ``-done`` (the finished column), then ``compare-done`` (the grid with its differences)."""
    run_ids = await run_in_threadpool(_live_runs, user, comparison_id)  # 404 before streaming
    resumed = Tail.parse(last_event_id)
    position = Tail(positions=dict(resumed))
    viewer = Viewer(request, user)
    live = set(run_ids)

    async def events() -> AsyncIterator[ServerSentEvent]:
        starts = {run_id: resumed.get(f"r{run_id}") for run_id in run_ids}
        async for event in tail(viewer, runs=starts, tail_state=position):
            assert event.run_id is not None
            if text := text_fragment(event):
                name, html = text
            elif event.type == "state":
                name = f"run-{event.run_id}-state"
                html = await run_in_threadpool(state_fragment, user, event.run_id)
            else:
                live.discard(event.run_id)
                name, html = await run_in_threadpool(
                    _finished, user, comparison_id, event, not live
                )
            yield ServerSentEvent(html, event=name, id=position.cursor())

    return event_stream(events(), page=True)
