"""Workspaces: list the caller's, create one, read one."""

from fastapi import APIRouter, status

from app.models import Workspace, WorkspaceCreate, WorkspacePublic
from app.models.workspaces import Role
from app.services.workspaces import create_workspace, workspaces_of
from app.web.deps import CurrentUser, SessionDep, ViewableWorkspace

router = APIRouter(prefix="/workspaces", tags=["workspaces"])


def _public(workspace: Workspace, role: str) -> WorkspacePublic:
    return WorkspacePublic.model_validate(
        {**workspace.model_dump(), "role": role}, from_attributes=True
    )


@router.get("", response_model=list[WorkspacePublic])
def list_workspaces(session: SessionDep, user: CurrentUser) -> list[WorkspacePublic]:
    """The workspaces the caller belongs to, newest first."""
    return [_public(ws, role) for ws, role in workspaces_of(session=session, user=user)]


@router.post("", response_model=WorkspacePublic, status_code=status.HTTP_201_CREATED)
def create_workspace_api(
    body: WorkspaceCreate, session: SessionDep, user: CurrentUser
) -> WorkspacePublic:
    """Create a workspace; the caller becomes its owner."""
    workspace = create_workspace(
        session=session, name=body.name, description=body.description, owner=user
    )
    session.commit()
    return _public(workspace, Role.owner)


@router.get("/{slug}", response_model=WorkspacePublic)
def read_workspace(
    access: ViewableWorkspace, session: SessionDep, user: CurrentUser
) -> WorkspacePublic:
    """One workspace the caller belongs to; 404 for any other."""
    return _public(access.workspace, access.role)
