"""Comparisons of branches, votes, and continuing a task on a chosen branch."""

from fastapi import APIRouter, status
from pydantic import Field
from sqlmodel import Session, SQLModel

from app.engine import judging
from app.engine.dispatch import dispatch
from app.models import (
    Comparison,
    ComparisonCreate,
    ComparisonPublic,
    Judgement,
    JudgementCreate,
    JudgementPublic,
    Role,
    VoteCreate,
    VotePublic,
)
from app.services import comparisons as service
from app.services.access import comparison_for, message_for, task_for
from app.web.deps import CurrentUser, SessionDep

router = APIRouter(tags=["comparisons"])


class BattleCreate(SQLModel):
    content: str = Field(min_length=1, max_length=100_000)
    parent_id: int | None = Field(default=None, description="Reply under this message.")
    distinct_models: bool = Field(default=True, description="Draw agents of two models.")


class BattlePublic(SQLModel):
    comparison_id: int
    run_ids: list[int]


class ContinueWith(SQLModel):
    message_id: int = Field(description="The last message of the branch to continue on.")


def public(session: Session, comparison: Comparison) -> ComparisonPublic:
    return ComparisonPublic(
        id=comparison.id,  # type: ignore[arg-type]
        task_id=comparison.task_id,
        blind=comparison.blind,
        message_ids=service.branch_ids(session=session, comparison=comparison),
        votes=[
            VotePublic.model_validate(vote, from_attributes=True)
            for vote in service.votes_of(session=session, comparison=comparison)
        ],
    )


@router.post("/comparisons", response_model=ComparisonPublic, status_code=status.HTTP_201_CREATED)
def create_comparison(
    body: ComparisonCreate, session: SessionDep, user: CurrentUser
) -> ComparisonPublic:
    """Compare 2–4 branches of one task, each named by its last message."""
    _, task = message_for(
        session=session, message_id=body.message_ids[0], user=user, min_role=Role.viewer
    )
    comparison = service.create_comparison(
        session=session, task=task, author=user, message_ids=body.message_ids, blind=body.blind
    )
    session.commit()
    return public(session, comparison)


@router.get("/comparisons/{comparison_id}", response_model=ComparisonPublic)
def read_comparison(comparison_id: int, session: SessionDep, user: CurrentUser) -> ComparisonPublic:
    """A comparison with its branches and votes."""
    comparison, _ = comparison_for(
        session=session, comparison_id=comparison_id, user=user, min_role=Role.viewer
    )
    return public(session, comparison)


@router.post(
    "/comparisons/{comparison_id}/votes",
    response_model=VotePublic,
    status_code=status.HTTP_201_CREATED,
)
def vote(
    comparison_id: int, body: VoteCreate, session: SessionDep, user: CurrentUser
) -> VotePublic:
    """Vote (editors and owners); voting again replaces your vote."""
    comparison, _ = comparison_for(
        session=session, comparison_id=comparison_id, user=user, min_role=Role.editor
    )
    cast = service.cast_vote(
        session=session, comparison=comparison, voter=user, outcome=body.outcome,
        winner_message_id=body.winner_message_id,
    )  # fmt: skip
    session.commit()
    return VotePublic.model_validate(cast, from_attributes=True)


@router.post(
    "/comparisons/{comparison_id}/judgements",
    response_model=JudgementPublic,
    status_code=status.HTTP_201_CREATED,
)
def ask_judge(
    comparison_id: int, body: JudgementCreate, session: SessionDep, user: CurrentUser
) -> Judgement:
    """Have an agent judge the comparison, blind: a run on its model's queue whose verdict
    becomes the judge's vote (``status`` says when it is ``voted``, or why not)."""
    comparison, _ = comparison_for(
        session=session, comparison_id=comparison_id, user=user, min_role=Role.editor
    )
    judgement, started = judging.ask_judge(
        session=session, comparison=comparison, agent_id=body.agent_id, author=user
    )
    session.commit()
    dispatch([run.id for run in started.runs if run.id is not None])
    return judgement


@router.get("/comparisons/{comparison_id}/judgements", response_model=list[JudgementPublic])
def list_judgements(comparison_id: int, session: SessionDep, user: CurrentUser) -> list[Judgement]:
    """The judgements asked on a comparison, newest first."""
    comparison, _ = comparison_for(
        session=session, comparison_id=comparison_id, user=user, min_role=Role.viewer
    )
    return judging.judgements_of(session=session, comparison=comparison)


@router.put("/tasks/{task_id}/main-branch", status_code=status.HTTP_204_NO_CONTENT)
def continue_with(task_id: int, body: ContinueWith, session: SessionDep, user: CurrentUser) -> None:
    """Continue the task on this branch: its page opens there from now on."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.editor)
    service.continue_with(session=session, task=task, message_id=body.message_id, actor=user)
    session.commit()


@router.post(
    "/tasks/{task_id}/battles", response_model=BattlePublic, status_code=status.HTTP_201_CREATED
)
def create_battle(
    task_id: int, body: BattleCreate, session: SessionDep, user: CurrentUser
) -> BattlePublic:
    """Send a message to two agents drawn at random; their answers open a blind comparison."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.editor)
    fought = service.battle(
        session=session, task=task, author=user, content=body.content,
        parent_id=body.parent_id, distinct_models=body.distinct_models,
    )  # fmt: skip
    session.commit()
    run_ids = [run.id for run in fought.started.runs if run.id is not None]
    dispatch(run_ids)
    return BattlePublic(comparison_id=fought.comparison.id, run_ids=run_ids)  # type: ignore[arg-type]
