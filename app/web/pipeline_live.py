"""A running pipeline on its task page: the panel that says where it stands (and stops it), and
the cards of each new step, appended to the branch as the steps start (over the page's one
SSE connection: ``routes/task_pages.task_live``)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from app.db import get_engine
from app.engine.pipelines import Progress, progress
from app.engine.runs import queue_position
from app.models import Check, Message, Pipeline, Role, Run, Task, User
from app.services.access import require_role, run_for, task_for
from app.services.agents import agents_of
from app.web.templating import templates

# A new step is at most this many messages below the newest one a page shows (an instruction,
# a check's summary, the answer).
MAX_STEP_DEPTH = 6


def panel_context(session: Session, task: Task, can_edit: bool) -> dict[str, object]:
    pipelines = session.exec(
        select(Pipeline)
        .where(Pipeline.workspace_id == task.workspace_id)
        .order_by(col(Pipeline.name))
    ).all()
    return {
        "task": task,
        "pipelines": pipelines,
        "can_edit": can_edit,
        "pipeline_progress": progress(session=session, task=task),
    }


def panel_html(user: User, task_id: int, leaf_id: int | None) -> tuple[str, Progress | None]:
    """The task's pipeline panel as it is now in SQL, and where its pipeline stands."""
    with Session(get_engine()) as session:
        task = task_for(session=session, task_id=task_id, user=user, min_role=Role.viewer)
        role = require_role(session=session, workspace_id=task.workspace_id, user=user,
                            min_role=Role.viewer)  # fmt: skip
        context = panel_context(session, task, role.allows(Role.editor))
        context["leaf_id"] = leaf_id
        html = templates.get_template("_pipeline.html").render(context)
        return html, context["pipeline_progress"]  # type: ignore[return-value]


def step_html(user: User, task_id: int, leaf_id: int, run_id: int) -> tuple[str, int] | None:
    """The cards from below the page's newest message down to a new run's answer, and that
    answer's id; None when the run does not carry on the branch the page shows."""
    with Session(get_engine()) as session:
        run, task = run_for(session=session, run_id=run_id, user=user, min_role=Role.viewer)
        if run.task_id != task_id or run.output_message_id is None:
            return None
        path: list[Message] = []
        node = session.get(Message, run.output_message_id)
        while node is not None and node.id != leaf_id and len(path) < MAX_STEP_DEPTH:
            path.append(node)
            node = session.get(Message, node.parent_id) if node.parent_id else None
        if not path or node is None or node.id != leaf_id:
            return None
        ids = [m.id for m in path]
        # A check's summary appears under its answer by itself (the check slot).
        checked = set(
            session.exec(select(Check.message_id).where(col(Check.message_id).in_(ids))).all()
        )
        runs = {
            r.output_message_id: r
            for r in session.exec(select(Run).where(col(Run.output_message_id).in_(ids))).all()
        }
        role = require_role(session=session, workspace_id=task.workspace_id, user=user,
                            min_role=Role.viewer)  # fmt: skip
        agents = agents_of(session=session, workspace_id=task.workspace_id)
        template = templates.get_template("_message.html")
        cards = []
        for message in reversed(path):
            if message.id in checked:
                continue
            message_run = runs.get(message.id)
            cards.append(
                template.render(
                    task=task,
                    message=message,
                    run=message_run,
                    siblings={},
                    agents=agents,
                    agents_by_id={a.id: a for a in agents},
                    can_edit=role.allows(Role.editor),
                    position=queue_position(session=session, run=message_run)
                    if message_run
                    else None,
                )  # fmt: skip
            )
        assert run.output_message_id is not None
        # The composer now replies below the new step (swapped out of band).
        cards.append(
            f'<input type="hidden" name="parent_id" value="{run.output_message_id}"'
            ' id="composer-parent" hx-swap-oob="true">'
        )
        return "".join(cards), run.output_message_id


def steps_since(user: User, task_id: int, leaf_id: int) -> list[tuple[int, str, int]]:
    """The steps that started below ``leaf_id`` before a page's stream began following the
    feed: (run id, cards, its answer's id) in order."""
    with Session(get_engine()) as session:
        task_for(session=session, task_id=task_id, user=user, min_role=Role.viewer)
        run_ids = session.exec(
            select(Run.id)
            .where(Run.task_id == task_id, col(Run.output_message_id) > leaf_id)
            .order_by(col(Run.id))
        ).all()
    found = []
    for run_id in run_ids:
        assert run_id is not None
        step = step_html(user, task_id, leaf_id, run_id)
        if step is not None:
            html, leaf_id = step
            found.append((run_id, html, leaf_id))
    return found
