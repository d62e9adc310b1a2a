"""Pipelines: saved sequences of hand-offs, started on a message of a task."""

from fastapi import APIRouter, status
from pydantic import Field
from sqlmodel import SQLModel, col, select

from app.engine.dispatch import dispatch
from app.engine.pipelines import create_pipeline, start_pipeline
from app.models import Pipeline, PipelineCreate, PipelinePublic, Role
from app.routes.api.presenters import StartedPublic, started_public
from app.services.access import message_for, pipeline_for
from app.web.deps import CurrentUser, EditableWorkspace, SessionDep, ViewableWorkspace

router = APIRouter(tags=["pipelines"])


class PipelineStart(SQLModel):
    message_id: int = Field(description="The question to answer, or the answer to hand on.")


@router.get("/workspaces/{slug}/pipelines", response_model=list[PipelinePublic])
def list_pipelines(access: ViewableWorkspace, session: SessionDep) -> list[Pipeline]:
    """The workspace's pipelines."""
    workspace = access.workspace
    return list(
        session.exec(
            select(Pipeline)
            .where(Pipeline.workspace_id == workspace.id)
            .order_by(col(Pipeline.name))
        ).all()
    )


@router.post(
    "/workspaces/{slug}/pipelines",
    response_model=PipelinePublic,
    status_code=status.HTTP_201_CREATED,
)
def create_pipeline_api(
    body: PipelineCreate, access: EditableWorkspace, session: SessionDep, user: CurrentUser
) -> Pipeline:
    """Save a pipeline: steps of ``{agent_id, instruction}``, rounds, an optional stop word."""
    workspace = access.workspace
    pipeline = create_pipeline(
        session=session,
        workspace_id=workspace.id,  # type: ignore[arg-type]
        author=user,
        **body.model_dump(),
    )
    session.commit()
    return pipeline


@router.post(
    "/pipelines/{pipeline_id}/runs",
    response_model=StartedPublic,
    status_code=status.HTTP_201_CREATED,
)
def start_pipeline_api(
    pipeline_id: int, body: PipelineStart, session: SessionDep, user: CurrentUser
) -> StartedPublic:
    """Start the pipeline on a message; each step appears as messages on one branch."""
    pipeline = pipeline_for(
        session=session, pipeline_id=pipeline_id, user=user, min_role=Role.editor
    )
    _, task = message_for(
        session=session, message_id=body.message_id, user=user, min_role=Role.editor
    )
    started = start_pipeline(
        session=session, task=task, pipeline=pipeline, author=user, message_id=body.message_id
    )
    session.commit()
    queued = dispatch([run.id for run in started.runs if run.id is not None])
    return started_public(session, started, queued)
