"""The task page: one branch of the message tree, its live runs, and every operation on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Form, Header, Query, Request
from sqlmodel import Session, col, select
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from app.db import get_engine
from app.engine import checks as check_operations
from app.engine import live
from app.engine import pipelines as pipeline_engine
from app.engine import runs as operations
from app.engine.dispatch import announce_cancel, dispatch, dispatch_checks, dispatch_retry
from app.engine.pipelines import continues_after
from app.engine.runs import ACTIVE_STATUSES, Started, queue_position
from app.engine.starting import waiting_notes
from app.models import (
    CHECK_ACTIVE,
    Check,
    Message,
    MessageRole,
    Pipeline,
    Role,
    Run,
    RunStatus,
    Task,
    User,
    Workspace,
)
from app.models.common import utcnow
from app.redis_conn import get_redis
from app.services import NotFound, ServiceError, sharing
from app.services.access import (
    check_for,
    message_for,
    require_role,
    run_for,
    task_and_role_for,
    task_for,
)
from app.services.agents import agents_of, named_in
from app.services.comparisons import battle, comparisons_of
from app.services.labels import message_labels, tree_marks
from app.services.threads import answers_with_runs, branch, tree
from app.web.deps import CurrentUser, SessionDep
from app.web.forms import form_id, form_ids
from app.web.pipeline_live import panel_html, step_html, steps_since
from app.web.streams import (
    MAX_RUNS,
    LiveEvent,
    StreamUser,
    Tail,
    Viewer,
    event_stream,
    feed_position,
    live_url,
    run_ids_param,
    state_fragment,
    tail,
    text_fragment,
)
from app.web.templating import render, templates

router = APIRouter(tags=["pages"], include_in_schema=False)

# A branch shows its newest messages; earlier ones load on demand, this many at a time (ten
# questions and their answers: screens of them; each one costs the page its rendering).
WINDOW = 20
# A run first in line that has waited this long is not waiting for its queue.
STALLED_AFTER = timedelta(minutes=2)
# Built once (building a statement costs more than running these).
_PIPELINES = (
    select(Pipeline)
    .where(Pipeline.workspace_id == sa.bindparam("workspace_id"))
    .order_by(col(Pipeline.name))
)
_CHECKS_OF = select(Check).where(col(Check.message_id).in_(sa.bindparam("ids", expanding=True)))


def task_context(
    session: Session, task: Task, user: User, at: int | None, upto: int | None = None,
    role: Role | None = None,
) -> dict[str, Any]:  # fmt: skip
    """What the task page shows; ``role``: the user's, when the caller has read it already."""
    if role is None:
        role = require_role(session=session, workspace_id=task.workspace_id, user=user,
                            min_role=Role.viewer)  # fmt: skip
    # The window of the branch shown (and its leaf) is loaded; of the rest only ids and roles.
    shown = branch(session=session, task=task, at=at, upto=upto, window=WINDOW)
    end = shown.start + len(shown.messages)
    agents = agents_of(session=session, workspace_id=task.workspace_id)
    positions = {
        message_id: queue_position(session=session, run=run)
        for message_id, run in shown.runs.items()
    }
    # Offer a comparison where a question has several answers on this branch.
    compare_question = next(
        (i for i in reversed(shown.ids)
         if shown.roles[i] == "user" and shown.children_count.get(i, 0) > 1),
        None,
    )  # fmt: skip
    # A fan-out is seen at once: the answers of the leaf's question side by side.
    leaf = shown.messages[-1] if shown.messages else None
    fanout: list[tuple[Message, Run | None]] = []
    if (
        leaf is not None
        and leaf.parent_id
        and shown.siblings.get(leaf.id or 0)
        and (shown.siblings[leaf.id or 0].total > 1 and leaf.role == "assistant")
    ):
        fanout = answers_with_runs(session=session, message_id=leaf.parent_id)
    shown_runs = [shown.runs.get(m.id or 0) for m in shown.messages]
    shown_runs += [run for _, run in fanout]
    live_runs = list(dict.fromkeys(
        run.id for run in shown_runs if run is not None and run.status in ACTIVE_STATUSES
    ))  # fmt: skip
    # A run first in its queue that still waits: the queue does not explain it; say so.
    now = utcnow()
    stalled = {
        message_id for message_id, run in shown.runs.items()
        if run.status == RunStatus.queued and positions.get(message_id) in (None, 1)
        and now - run.queued_at > STALLED_AFTER
    }  # fmt: skip
    agents_by_id = {a.id: a for a in agents}
    on_screen = shown.messages + [m for m, _ in fanout]
    # The composer replies under the leaf: not while the leaf's answer is still being written.
    leaf_run = shown.runs.get(shown.leaf.id or 0) if shown.leaf is not None else None
    waiting = leaf_run if leaf_run is not None and leaf_run.status in ACTIVE_STATUSES else None
    waiting_agent = next((a.name for a in agents if waiting and a.id == waiting.agent_id), None)
    checks = {
        check.message_id: check
        for check in session.exec(_CHECKS_OF, params={"ids": [m.id for m in shown.messages]})
    }
    # The leaf's check and run, when the window ends with it (read above already).
    leaf_known = (
        (checks.get(shown.leaf.id), shown.runs.get(shown.leaf.id or 0))
        if shown.leaf is not None and shown.messages and shown.messages[-1].id == shown.leaf.id
        else None
    )
    # A running pipeline: the page follows it (new steps appended below the newest message).
    pipeline_progress = pipeline_engine.progress(session=session, task=task)
    page_live_url = live_url(f"/t/{task.id}/live", live_runs)
    if pipeline_progress and pipeline_progress.live and shown.leaf is not None:
        page_live_url = f"{page_live_url or f'/t/{task.id}/live?runs='}&follow={shown.leaf.id}"
    return {
        "task": task,
        "workspace": session.get(Workspace, task.workspace_id),
        "labels": message_labels(session=session, messages=on_screen, agents_by_id=agents_by_id),
        "action_error": None,
        "starting_notes": waiting_notes(
            session, get_redis(), [run for run in shown_runs if run is not None]
        ),
        "waiting": waiting,
        "waiting_agent": waiting_agent or "The agent",
        "branch": shown,
        "stalled": stalled,
        "live_url": page_live_url,
        "pipeline_progress": pipeline_progress,
        "share_links": sharing.active_links_of_task(
            session=session, task=task, user=user, role=role
        ),
        "comparisons": comparisons_of(session=session, task=task),
        "fanout": fanout,
        "fanout_positions": {
            m.id: queue_position(session=session, run=run) for m, run in fanout if run
        },
        "agents": agents,
        "agents_by_id": agents_by_id,
        # The first question: its picker ticks the agents the brief names (and the assignee).
        "preticked": named_in(task.brief, agents) if not shown.ids else [],
        "can_edit": role.allows(Role.editor),
        "positions": positions,
        "compare_question": compare_question,
        "window_start": shown.start,
        "window_end": end,
        "pipelines": session.exec(_PIPELINES, params={"workspace_id": task.workspace_id}).all(),
        "check_slot": _awaiting_check(session, shown),
        "follow": _following(session, shown.leaf, leaf_known),
        "checks": checks,
    }


def _following(
    session: Session, message: Message | None, known: tuple[Check | None, Run | None] | None = None
) -> int | None:
    """``message``'s id when a pipeline's next step is to come under it (the page then looks
    for that step, and shows it once it exists); ``known``: its check and run, if read."""
    if message is None or not continues_after(session=session, message=message, known=known):
        return None
    return message.id


def _awaiting_check(session: Session, shown: Any) -> int | None:
    """The leaf answer when it holds tests whose check has not appeared yet (its card then
    waits for the check: the Tester hand-off checks such an answer once it is finished)."""
    leaf = shown.leaf
    run = shown.runs.get(leaf.id) if leaf is not None else None
    if leaf is None or run is None or run.status != RunStatus.succeeded:
        return None
    return leaf.id if check_operations.has_tests(leaf.content) else None


@router.get("/t/{task_id}")
def task_page(
    request: Request,
    task_id: int,
    session: SessionDep,
    user: CurrentUser,
    at: int | None = None,
    upto: int | None = None,
    started: bool = False,
) -> Response:
    task, role = task_and_role_for(
        session=session, task_id=task_id, user=user, min_role=Role.viewer
    )
    context = {**task_context(session, task, user, at, upto, role), "started": started}
    return render(request, "task.html", context, block="thread")


@router.get("/t/{task_id}/earlier")
def earlier_messages(
    request: Request, task_id: int, at: int, upto: int, session: SessionDep, user: CurrentUser
) -> Response:
    """The messages of a branch before the ones shown (a window at a time)."""
    task, role = task_and_role_for(
        session=session, task_id=task_id, user=user, min_role=Role.viewer
    )
    context = task_context(session, task, user, at, upto, role)
    return render(request, "task.html", context, block="window")


def _after(session: Session, task: Task, started: Started) -> Response:
    """Commit, dispatch, and show the branch the operation created."""
    session.commit()
    dispatch([run.id for run in started.runs if run.id is not None])
    target = started.runs[-1].output_message_id if started.runs else None
    # ``started``: the page scrolls to what was just started, not to its top.
    return RedirectResponse(f"/t/{task.id}?at={target}&started=1", status_code=303)


@dataclass(frozen=True)
class ActionError:
    """A message's action refused: which form (fork, edit, rerun, handoff, check), why, and
    what was typed in it; the page shows that form open under its message."""

    message_id: int
    form: str
    message: str
    typed: dict[str, Any]


def _refused(
    session: Session, request: Request, task: Task, user: User, error: ServiceError,
    at: int | None, draft: str | None = None, action: tuple[str, dict[str, Any]] | None = None,
) -> Response:  # fmt: skip
    """The task page again with the reason shown: next to the composer (and what was typed in
    it) when the composer was sent, next to a message's action (open, as it was filled in) when
    one was sent, at the top otherwise."""
    session.rollback()
    context = task_context(session, task, user, at)
    if action is not None and at is not None:
        form, typed = action
        context["action_error"] = ActionError(at, form, error.message, typed)
    elif draft is None:
        context["error"] = error.message
    else:
        context.update(composer_error=error.message, draft=draft)
    return render(request, "task.html", context, status_code=error.status_code)


def _agent_ids(values: list[str]) -> list[int]:
    return form_ids(values, "Pick agents from the list.")


@router.post("/t/{task_id}/ask")
def ask_page(
    request: Request,
    task_id: int,
    session: SessionDep,
    user: CurrentUser,
    content: Annotated[str, Form(max_length=100_000)],
    parent_id: Annotated[int | None, Form()] = None,
    agent_ids: Annotated[list[str] | None, Form()] = None,
) -> Response:
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.editor)
    try:
        started = operations.ask(
            session=session, task=task, author=user, content=content, parent_id=parent_id,
            agent_ids=_agent_ids(agent_ids or []) or None,
        )  # fmt: skip
    except ServiceError as exc:
        return _refused(session, request, task, user, exc, parent_id, content)
    return _after(session, task, started)


@router.post("/t/{task_id}/battle")
def battle_page(
    request: Request,
    task_id: int,
    session: SessionDep,
    user: CurrentUser,
    content: Annotated[str, Form(max_length=100_000)],
    parent_id: Annotated[int | None, Form()] = None,
) -> Response:
    """Send the message to two agents drawn at random and open their blind comparison."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.editor)
    try:
        fought = battle(
            session=session, task=task, author=user, content=content, parent_id=parent_id
        )
    except ServiceError as exc:
        return _refused(session, request, task, user, exc, parent_id, content)
    session.commit()
    dispatch([run.id for run in fought.started.runs if run.id is not None])
    return RedirectResponse(f"/c/{fought.comparison.id}", status_code=303)


# An operation on one message of a task, given the session and that task.
MessageOperation = Callable[[Session, Task], Started]


def _message_operation(
    request: Request, session: Session, user: User, message_id: int, operation: MessageOperation,
    form: str, typed: dict[str, Any],
) -> Response:  # fmt: skip
    """Run an action on a message; refused, the page shows its form again with ``typed``."""
    _, task = message_for(session=session, message_id=message_id, user=user, min_role=Role.editor)
    try:
        started = operation(session, task)
    except ServiceError as exc:
        return _refused(session, request, task, user, exc, message_id, action=(form, typed))
    return _after(session, task, started)


@router.get("/t/{task_id}/tree")
def tree_fragment(
    request: Request, task_id: int, session: SessionDep, user: CurrentUser, at: int | None = None
) -> Response:
    """All branches of the task as a compact tree (loaded when the tree view opens)."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.viewer)
    agents = {a.id: a for a in agents_of(session=session, workspace_id=task.workspace_id)}
    try:
        current = [m.id for m in branch(session=session, task=task, at=at).messages if m.id]
    except NotFound:
        current = []
    context = {"task": task, "roots": tree(session=session, task=task), "agents_by_id": agents,
               "marks": tree_marks(session=session, task=task, current=current)}  # fmt: skip
    return templates.TemplateResponse(request, "_tree.html", context)


@router.get("/m/{message_id}/actions")
def message_actions(
    request: Request,
    message_id: int,
    session: SessionDep,
    user: CurrentUser,
    form: Annotated[str, Query(pattern=r"^(fork|edit|rerun|handoff|test-against)?$")] = "",
) -> Response:
    """A form of one message (fork, edit, rerun, hand off; all of them without ``form``),
    loaded when its action is opened."""
    message, task = message_for(
        session=session, message_id=message_id, user=user, min_role=Role.editor
    )
    context = task_context(session, task, user, message_id)
    run = context["branch"].runs.get(message_id)
    if run is None:  # a message above the window shown (the branch goes on far below it)
        run = session.exec(select(Run).where(Run.output_message_id == message_id)).first()
    context.update(message=message, run=run, form=form)
    if message.role == MessageRole.assistant and check_operations.has_tests(message.content):
        handed = check_operations.handed_answer(session=session, message=message)
        answers = check_operations.code_answers(session=session, task_id=task.id, tests=message)  # type: ignore[arg-type]
        context.update(code_answers=answers, handed_id=handed.id if handed else None)
    return templates.TemplateResponse(request, "_actions.html", context)


@router.post("/m/{message_id}/checks")
def run_check_page(
    request: Request, message_id: int, session: SessionDep, user: CurrentUser
) -> Response:
    """Run an answer's code in the sandbox; its check card appears under the answer."""
    _, task = message_for(session=session, message_id=message_id, user=user, min_role=Role.editor)
    try:
        check = check_operations.create_check(
            session=session, task=task, author=user, code_message_id=message_id
        )
    except ServiceError as exc:
        return _refused(session, request, task, user, exc, message_id, action=("check", {}))
    session.commit()
    dispatch_checks([check.id])  # type: ignore[list-item]
    return RedirectResponse(f"/t/{task.id}?at={check.message_id}", status_code=303)


@router.post("/m/{message_id}/test-against")
def test_against_page(
    request: Request,
    message_id: int,
    session: SessionDep,
    user: CurrentUser,
    code_message_id: Annotated[str, Form()] = "",
) -> Response:
    """Run a Tester's answer's tests against the code of the answer the person picked; the
    check's card appears under the tests."""
    _, task = message_for(session=session, message_id=message_id, user=user, min_role=Role.editor)
    try:
        code_id = form_id(code_message_id, "Pick an answer with code from the list.")
        check = check_operations.create_check(
            session=session, task=task, author=user, code_message_id=code_id,
            test_message_id=message_id,
        )  # fmt: skip
    except ServiceError as exc:
        return _refused(session, request, task, user, exc, message_id)
    session.commit()
    dispatch_checks([check.id])  # type: ignore[list-item]
    return RedirectResponse(f"/t/{task.id}?at={check.message_id}", status_code=303)


@router.get("/m/{message_id}/follow")
def follow_pipeline(
    request: Request, message_id: int, session: SessionDep, user: CurrentUser
) -> Response:
    """Under the last step a page shows of a pipeline that goes on: once the next step exists,
    the page goes to it (a new page, so its live stream includes the new run); until then the
    slot again; nothing once the pipeline stopped here."""
    message, task = message_for(
        session=session, message_id=message_id, user=user, min_role=Role.viewer
    )
    child = session.exec(
        select(Message.id)
        .where(Message.parent_id == message_id)
        .order_by(col(Message.id).desc())
        .limit(1)
    ).first()
    if child is not None:
        return Response(headers={"HX-Redirect": f"/t/{task.id}?at={child}&started=1"})
    context = {"follow": _following(session, message), "message": message}
    return templates.TemplateResponse(request, "_follow.html", context)


@router.get("/checks/{check_id}/card")
def check_card(request: Request, check_id: int, session: SessionDep, user: CurrentUser) -> Response:
    """A check's card as it is now: the fragment a running card polls to replace itself."""
    check, task = check_for(session=session, check_id=check_id, user=user, min_role=Role.viewer)
    role = require_role(session=session, workspace_id=task.workspace_id, user=user,
                        min_role=Role.viewer)  # fmt: skip
    node = session.get(Message, check.message_id) if check.message_id else None
    context = {
        "check": check, "can_edit": role.allows(Role.editor), "follow": _following(session, node),
    }  # fmt: skip
    return templates.TemplateResponse(request, "_check.html", context)


@router.get("/m/{message_id}/check-slot")
def check_slot(
    request: Request, message_id: int, session: SessionDep, user: CurrentUser
) -> Response:
    """Under a finished answer that holds tests: its check's card once the check exists (put
    after the answer, out of band), else the slot again, for a minute at most."""
    message, task = message_for(
        session=session, message_id=message_id, user=user, min_role=Role.viewer
    )
    check = session.exec(select(Check).where(Check.test_message_id == message_id)).first()
    if check is None or check.message_id is None:
        waited = (utcnow() - message.created_at).total_seconds()
        waiting = {"message": message, "check_slot": message_id if waited < 60 else None}
        return templates.TemplateResponse(request, "_check_slot.html", waiting)
    context = task_context(session, task, user, check.message_id)
    branch_shown = context["branch"]
    node = session.get(Message, check.message_id)
    context.update(message=node, run=None, siblings=branch_shown.siblings, position=None)
    return templates.TemplateResponse(request, "_check_slot.html", context)


@router.get("/checks/{check_id}/badge")
def check_badge(
    request: Request,
    check_id: int,
    session: SessionDep,
    user: CurrentUser,
    element_id: Annotated[str, Query(pattern=r"^[a-z][a-z0-9-]{0,60}$")] = "check-badge",
) -> Response:
    """A check's verdict badge as it is now (compare polls it while the check runs)."""
    check, _ = check_for(session=session, check_id=check_id, user=user, min_role=Role.viewer)
    context = {"check": check, "element_id": element_id}
    return templates.TemplateResponse(request, "_check_badge.html", context)


@router.post("/checks/{check_id}/cancel")
def cancel_check_page(check_id: int, session: SessionDep, user: CurrentUser) -> Response:
    check, task = check_for(session=session, check_id=check_id, user=user, min_role=Role.editor)
    if check.status in CHECK_ACTIVE:
        check_operations.cancel_check(session=session, check=check, actor=user)
        session.commit()
    return RedirectResponse(f"/t/{task.id}?at={check.message_id}", status_code=303)


@router.post("/m/{message_id}/reply")
def fork_page(
    request: Request,
    message_id: int,
    session: SessionDep,
    user: CurrentUser,
    content: Annotated[str, Form(max_length=100_000)],
    agent_ids: Annotated[list[str] | None, Form()] = None,
) -> Response:
    def ask_under(session: Session, task: Task) -> Started:
        return operations.ask(
            session=session, task=task, author=user, content=content, parent_id=message_id,
            agent_ids=_agent_ids(agent_ids or []) or None,
        )  # fmt: skip

    typed = {"content": content, "agent_ids": agent_ids or []}
    return _message_operation(request, session, user, message_id, ask_under, "fork", typed)


@router.post("/m/{message_id}/edit")
def edit_page(
    request: Request,
    message_id: int,
    session: SessionDep,
    user: CurrentUser,
    content: Annotated[str, Form(max_length=100_000)],
    agent_ids: Annotated[list[str] | None, Form()] = None,
) -> Response:
    def fork(session: Session, task: Task) -> Started:
        return operations.fork_with_edit(
            session=session, task=task, author=user, message_id=message_id, content=content,
            agent_ids=_agent_ids(agent_ids or []) or None,
        )  # fmt: skip

    typed = {"content": content, "agent_ids": agent_ids or []}
    return _message_operation(request, session, user, message_id, fork, "edit", typed)


@router.post("/m/{message_id}/rerun")
def rerun_page(
    request: Request,
    message_id: int,
    session: SessionDep,
    user: CurrentUser,
    agent_id: Annotated[int | None, Form()] = None,
) -> Response:
    def rerun(session: Session, task: Task) -> Started:
        return operations.rerun(
            session=session, task=task, author=user, message_id=message_id, agent_id=agent_id
        )

    typed = {"agent_id": agent_id}
    return _message_operation(request, session, user, message_id, rerun, "rerun", typed)


@router.post("/m/{message_id}/handoff")
def handoff_page(
    request: Request,
    message_id: int,
    session: SessionDep,
    user: CurrentUser,
    agent_id: Annotated[int, Form()],
    instruction: Annotated[str, Form(max_length=100_000)],
) -> Response:
    def hand_off(session: Session, task: Task) -> Started:
        return operations.hand_off(
            session=session, task=task, author=user, message_id=message_id, agent_id=agent_id,
            instruction=instruction,
        )  # fmt: skip

    typed = {"agent_id": agent_id, "instruction": instruction}
    return _message_operation(request, session, user, message_id, hand_off, "handoff", typed)


@router.post("/t/{task_id}/assignee")
def reassign_page(
    task_id: int,
    session: SessionDep,
    user: CurrentUser,
    agent_id: Annotated[str, Form()] = "",
) -> Response:
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.editor)
    chosen = form_id(agent_id, "Pick an agent from the list.") if agent_id.strip() else None
    operations.reassign(session=session, task=task, actor=user, agent_id=chosen)
    session.commit()
    return RedirectResponse(f"/t/{task.id}", status_code=303)


@router.post("/r/{run_id}/cancel")
def cancel_page(run_id: int, session: SessionDep, user: CurrentUser) -> Response:
    run, task = run_for(session=session, run_id=run_id, user=user, min_role=Role.editor)
    if run.status in (RunStatus.queued, RunStatus.running):
        operations.cancel(session=session, run=run, actor=user)
        session.commit()
        announce_cancel(run)
    return RedirectResponse(f"/t/{task.id}?at={run.output_message_id}", status_code=303)


@router.post("/r/{run_id}/retry")
def retry_page(request: Request, run_id: int, session: SessionDep, user: CurrentUser) -> Response:
    run, task = run_for(session=session, run_id=run_id, user=user, min_role=Role.editor)
    if run.status in (RunStatus.failed, RunStatus.cancelled):
        try:
            operations.retry(session=session, run=run, actor=user)
        except ServiceError as exc:
            return _refused(session, request, task, user, exc, run.output_message_id)
        session.commit()
        dispatch_retry(run_id)
    return RedirectResponse(f"/t/{task.id}?at={run.output_message_id}", status_code=303)


# --- the page's live runs over one SSE connection (htmx's SSE extension): HTML fragments ---


def _card(user: User, run_id: int) -> str:
    """The message card of a run as it is now in SQL."""
    with Session(get_engine()) as session:
        run, task = run_for(session=session, run_id=run_id, user=user, min_role=Role.viewer)
        message = session.get(Message, run.output_message_id)
        context = task_context(session, task, user, run.output_message_id)
        context.update(
            message=message, run=run, siblings=context["branch"].siblings,
            position=queue_position(session=session, run=run),
        )  # fmt: skip
        if (
            message is not None
            and run.status == RunStatus.succeeded
            and check_operations.has_tests(message.content)
        ):
            context["check_slot"] = message.id  # its check appears under it when it is made
        context["follow"] = _following(session, message)
        return templates.get_template("_message.html").render(context)


def _runs_of_task(user: User, task_id: int, run_ids: list[int]) -> int:
    """404 unless every run belongs to the task and the user may see it; the workspace id."""
    with Session(get_engine()) as session:
        task = task_for(session=session, task_id=task_id, user=user, min_role=Role.viewer)
        for run_id in run_ids:
            run, _ = run_for(session=session, run_id=run_id, user=user, min_role=Role.viewer)
            if run.task_id != task_id:
                raise NotFound("No such run in this task.")
        return task.workspace_id


@router.get("/t/{task_id}/live")
async def task_live(
    task_id: int,
    request: Request,
    user: StreamUser,
    runs: str = "",
    follow: int | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """The live runs a task page shows, multiplexed: ``run-{id}-text`` (the whole text so far),
    ``-token`` (escaped text to append), ``-state``, ``-done`` (the finished card), and
    ``-composer`` after it (the composer's Send, for a page whose composer waited for that run).

    ``follow`` (the newest message the page shows): a running pipeline too — each new step's
    cards (``pipeline-step``, appended; their runs then stream like the others) and the
    pipeline's panel (``pipeline``) as it goes on, until it ends."""
    try:
        run_ids = run_ids_param(runs)
    except ValueError:
        raise ServiceError("List at most 50 run ids, separated by commas.") from None
    resumed = Tail.parse(last_event_id)
    # Runs a pipeline added after the page loaded are in the cursor, not in its address.
    if follow is not None:
        run_ids += [int(name[1:]) for name in resumed if name[:1] == "r"]
        run_ids = list(dict.fromkeys(run_ids))[:MAX_RUNS]
    workspace_id = await run_in_threadpool(_runs_of_task, user, task_id, run_ids)  # 404 first
    position = Tail(positions=dict(resumed), ticks=follow is not None)
    viewer = Viewer(request, user)
    starts = {run_id: resumed.get(f"r{run_id}") for run_id in run_ids}
    ready_composer = templates.get_template("_composer_actions.html").render(
        task={"id": task_id}, waiting=None
    )
    feed = None
    if follow is not None:  # from where the feed stands now: earlier steps come from SQL
        feed = (workspace_id, resumed.get("w") or await feed_position(workspace_id))
    leaf = int(resumed.get("l", follow or 0))
    shown_panel = ""

    async def panel() -> AsyncIterator[ServerSentEvent]:
        """The pipeline's panel when it changed; the stream ends with the pipeline."""
        nonlocal shown_panel
        html, now = await run_in_threadpool(panel_html, user, task_id, leaf)
        if html != shown_panel:
            shown_panel = html
            yield ServerSentEvent(html, event="pipeline", id=position.cursor())
        if (now is None or not now.live) and not streaming:
            position.finished = True

    streaming = set(run_ids)  # the runs not ended yet

    async def events() -> AsyncIterator[ServerSentEvent]:
        nonlocal leaf
        if follow is not None and "w" not in resumed:
            caught_up = await run_in_threadpool(steps_since, user, task_id, leaf)
            for run_id, html, newest in caught_up:
                leaf = newest
                position.positions["l"] = str(leaf)
                position.follow(run_id)
                streaming.add(run_id)
                yield ServerSentEvent(html, event="pipeline-step", id=position.cursor())
        async for event in tail(viewer, runs=starts, feed=feed, tail_state=position):
            if event.run_id is None:  # the workspace feed, or a pause to look again
                new_run = event.data.get("id") if event.type == "run" else None
                if (
                    isinstance(new_run, int)
                    and event.data.get("task_id") == task_id
                    and event.data.get("status") == "queued"
                ):
                    step = await run_in_threadpool(step_html, user, task_id, leaf, new_run)
                    if step is not None:
                        html, leaf = step
                        position.positions["l"] = str(leaf)
                        position.follow(new_run)
                        streaming.add(new_run)
                        yield ServerSentEvent(html, event="pipeline-step", id=position.cursor())
                if event.type == "tick" or event.data.get("task_id") == task_id:
                    async for update in panel():
                        yield update
                continue
            name, html = await run_in_threadpool(_run_fragment, user, event)
            yield ServerSentEvent(html, event=name, id=position.cursor())
            if event.run_id is not None and event.type in live.TERMINAL_TYPES:
                # A composer that waited for this answer offers Send again.
                yield ServerSentEvent(
                    ready_composer, event=f"run-{event.run_id}-composer", id=position.cursor()
                )
            if follow is not None and event.type in ("done", "error"):
                streaming.discard(event.run_id)
                async for update in panel():
                    yield update

    return event_stream(events(), page=True)


def _run_fragment(user: User, event: LiveEvent) -> tuple[str, str]:
    """The event name and HTML fragment a task page swaps in for one run event."""
    assert event.run_id is not None
    if text := text_fragment(event):
        return text
    if event.type == "state":
        return f"run-{event.run_id}-state", state_fragment(user, event.run_id)
    return f"run-{event.run_id}-done", _card(user, event.run_id)
