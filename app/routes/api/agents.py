"""Agents of a workspace."""

from fastapi import APIRouter, status
from starlette.responses import Response

from app.models import Agent, AgentCreate, AgentPublic, AgentUpdate, Role
from app.services.access import agent_for
from app.services.agents import agents_of, create_agent, delete_agent, update_agent
from app.web.deps import CurrentUser, EditableWorkspace, SessionDep, ViewableWorkspace

router = APIRouter(tags=["agents"])


@router.get("/workspaces/{slug}/agents", response_model=list[AgentPublic])
def list_agents(access: ViewableWorkspace, session: SessionDep) -> list[Agent]:
    """The workspace's agents, by name."""
    return agents_of(session=session, workspace_id=access.workspace.id)  # type: ignore[arg-type]


@router.post(
    "/workspaces/{slug}/agents", response_model=AgentPublic, status_code=status.HTTP_201_CREATED
)
def create_agent_api(
    body: AgentCreate, access: EditableWorkspace, session: SessionDep, user: CurrentUser
) -> Agent:
    """Create an agent: a role prompt bound to a model."""
    agent = create_agent(
        session=session,
        workspace_id=access.workspace.id,  # type: ignore[arg-type]
        actor=user,
        fields=body,
    )
    session.commit()
    return agent


@router.patch("/agents/{agent_id}", response_model=AgentPublic)
def update_agent_api(
    agent_id: int, body: AgentUpdate, session: SessionDep, user: CurrentUser
) -> Agent:
    """Change an agent's settings."""
    agent = agent_for(session=session, agent_id=agent_id, user=user, min_role=Role.editor)
    update_agent(session=session, agent=agent, actor=user, changes=body)
    session.commit()
    return agent


@router.delete("/agents/{agent_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_agent_api(agent_id: int, session: SessionDep, user: CurrentUser) -> Response:
    """Delete an agent; its past answers stay."""
    agent = agent_for(session=session, agent_id=agent_id, user=user, min_role=Role.editor)
    delete_agent(session=session, agent=agent, actor=user)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
