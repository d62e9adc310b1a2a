"""A whole task — every branch, run, comparison and vote — as JSON or Markdown."""

from __future__ import annotations

from sqlmodel import Session, col, select

from app.models import (
    Agent,
    Comparison,
    ComparisonBranch,
    Message,
    Model,
    Run,
    Task,
    Vote,
)


def task_record(*, session: Session, task: Task) -> dict[str, object]:
    """Everything about a task as plain data (the JSON export)."""
    messages = session.exec(
        select(Message).where(Message.task_id == task.id).order_by(col(Message.id))
    ).all()
    runs = session.exec(select(Run).where(Run.task_id == task.id).order_by(col(Run.id))).all()
    agents = {
        a.id: a.name
        for a in session.exec(select(Agent).where(Agent.workspace_id == task.workspace_id)).all()
    }
    model_ids = {r.model_id for r in runs if r.model_id}
    models = {
        m.id: m.name for m in session.exec(select(Model).where(col(Model.id).in_(model_ids))).all()
    }
    comparisons = session.exec(
        select(Comparison).where(Comparison.task_id == task.id).order_by(col(Comparison.id))
    ).all()
    comparison_ids = [c.id for c in comparisons]
    branches = session.exec(
        select(ComparisonBranch)
        .where(col(ComparisonBranch.comparison_id).in_(comparison_ids))
        .order_by(col(ComparisonBranch.position))
    ).all()
    votes = session.exec(
        select(Vote).where(col(Vote.comparison_id).in_(comparison_ids)).order_by(col(Vote.id))
    ).all()
    return {
        "task": {
            "id": task.id, "title": task.title, "brief": task.brief, "status": task.status,
            "created_at": task.created_at.isoformat(),
        },
        "messages": [
            {
                "id": m.id, "parent_id": m.parent_id, "role": m.role, "kind": m.kind,
                "content": m.content, "agent": agents.get(m.agent_id) if m.agent_id else None,
                "created_at": m.created_at.isoformat(),
            }
            for m in messages
        ],
        "runs": [
            {
                "id": r.id, "status": r.status, "agent": agents.get(r.agent_id),
                "model": models.get(r.model_id), "input_message_id": r.input_message_id,
                "output_message_id": r.output_message_id, "error": r.error,
                "attempts": r.attempts, "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens, "tokens_per_second": r.tokens_per_second,
                "queued_at": r.queued_at.isoformat(),
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            }
            for r in runs
        ],
        "comparisons": [
            {
                "id": c.id, "blind": c.blind,
                "message_ids": [b.message_id for b in branches if b.comparison_id == c.id],
                "votes": [
                    {"outcome": v.outcome, "winner_message_id": v.winner_message_id,
                     "by": "judge" if v.judge else "person", "reason": v.reason}
                    for v in votes if v.comparison_id == c.id
                ],
            }
            for c in comparisons
        ],
    }  # fmt: skip


def _branches(messages: list[dict]) -> list[list[dict]]:
    """Every root-to-leaf path of the message tree, in the order the leaves were written."""
    by_id = {m["id"]: m for m in messages}
    parents = {m["parent_id"] for m in messages}
    leaves = [m for m in messages if m["id"] not in parents]
    paths: list[list[dict]] = []
    for leaf in leaves:
        path: list[dict] = []
        node: dict | None = leaf
        while node is not None:
            path.append(node)
            node = by_id.get(node["parent_id"])
        paths.append(list(reversed(path)))
    return paths


def task_markdown(record: dict) -> str:
    """The export as Markdown: the brief, then each branch as a conversation, then comparisons."""
    task = record["task"]
    lines = [f"# {task['title']}", "", f"Status: {task['status']}", ""]
    if task["brief"]:
        lines += [task["brief"], ""]
    runs = {r["output_message_id"]: r for r in record["runs"]}
    for number, path in enumerate(_branches(record["messages"]), start=1):
        lines += [f"## Branch {number}", ""]
        for message in path:
            if message.get("kind") == "check":
                speaker = "Check result"
            elif message["role"] == "user":
                speaker = "You"
            else:
                run = runs.get(message["id"])
                model = f" ({run['model']})" if run and run["model"] else ""
                speaker = f"{message['agent'] or 'Agent'}{model}"
            lines += [f"### {speaker} · message {message['id']}", "", message["content"], ""]
    if record["comparisons"]:
        lines += ["## Comparisons", ""]
        for comparison in record["comparisons"]:
            columns = ", ".join(f"message {m}" for m in comparison["message_ids"])
            votes = "; ".join(
                f"{v['by']}: {v['outcome']}"
                + (f" (message {v['winner_message_id']})" if v["winner_message_id"] else "")
                + (f" — {v['reason']}" if v.get("reason") else "")
                for v in comparison["votes"]
            )
            blind = " (blind)" if comparison["blind"] else ""
            lines.append(
                f"- Comparison {comparison['id']}{blind}: {columns} — votes: {votes or 'none'}"
            )
        lines.append("")
    return "\n".join(lines)
