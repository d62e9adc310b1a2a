"""The demo workspace: starter agents and one task, so a newcomer has something to try."""

from __future__ import annotations

from sqlmodel import Session, col, select

from app.models import Agent, Model, Task, User, Workspace
from app.services.workspaces import create_workspace, record_event

STARTER_AGENTS: tuple[dict[str, str], ...] = (
    {
        "name": "Coder",
        "colour": "#4f6bed",
        "role_prompt": "You are Coder. Write correct, small, readable code that solves the task. "
        "Answer with the code first, then at most three sentences on how it works.",
    },
    {
        "name": "Tester",
        "colour": "#1a9c6b",
        "role_prompt": "You are Tester. Write focused tests for the code you are given and list "
        "the cases it gets wrong. Start your reply with PASS if it is correct, FAIL otherwise.",
    },
    {
        "name": "Reviewer",
        "colour": "#c2410c",
        "role_prompt": "You are Reviewer. Point out bugs, unclear names and missing cases in "
        "what you are given, most important first, in a short list.",
    },
    {
        "name": "Explorer",
        "colour": "#8b5cf6",
        "role_prompt": "You are Explorer. Suggest two or three different ways to approach the "
        "task, with one line on the trade-off of each.",
    },
)

DEMO_TASK_TITLE = "Write a function that reverses the words in a sentence"
DEMO_TASK_BRIEF = (
    "Python, no imports. Keep punctuation attached to its word. "
    "Fan it out to Coder and Explorer, then hand the best answer to Tester."
)


def create_starter_agents(*, session: Session, workspace: Workspace) -> list[Agent]:
    """Coder, Tester, Reviewer and Explorer, bound to the first available model if any."""
    model = session.exec(select(Model).where(col(Model.available)).order_by(col(Model.id))).first()
    agents = [
        Agent(
            workspace_id=workspace.id,  # type: ignore[arg-type]
            model_id=model.id if model else None,
            name=starter["name"],
            colour=starter["colour"],
            role_prompt=starter["role_prompt"],
        )
        for starter in STARTER_AGENTS
    ]
    session.add_all(agents)
    session.flush()
    return agents


def create_demo_workspace(*, session: Session, owner: User) -> Workspace:
    """A workspace named "Demo" with the starter agents and one task in the backlog."""
    workspace = create_workspace(
        session=session,
        name="Demo",
        owner=owner,
        description="Starter agents and a first task to fan out.",
    )
    agents = create_starter_agents(session=session, workspace=workspace)
    task = Task(
        workspace_id=workspace.id,  # type: ignore[arg-type]
        title=DEMO_TASK_TITLE,
        brief=DEMO_TASK_BRIEF,
        assignee_agent_id=agents[0].id,
        created_by_id=owner.id,
    )
    session.add(task)
    session.flush()
    record_event(
        session=session,
        workspace_id=workspace.id,  # type: ignore[arg-type]
        actor=owner,
        verb="created",
        subject_type="task",
        subject_id=task.id,
        data={"title": task.title},
    )
    return workspace
