"""Members, invite links, read-only share links, and deleting a workspace."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, status
from pydantic import Field
from sqlmodel import SQLModel
from starlette.responses import Response

from app.engine import live
from app.models import Role, ShareLink, ShareLinkKind
from app.redis_conn import get_redis
from app.services import NotFound, sharing
from app.services.access import comparison_for, task_for
from app.services.workspaces import delete_workspace
from app.web.deps import CurrentUser, OwnedWorkspace, SessionDep, ViewableWorkspace

router = APIRouter(tags=["sharing"])


class MemberPublic(SQLModel):
    user_id: int
    email: str
    display_name: str
    role: Role


class RoleUpdate(SQLModel):
    role: Role


class InviteCreate(SQLModel):
    role: Role = Role.viewer
    expires_in_days: int | None = Field(default=7, ge=1, le=90)
    max_uses: int | None = Field(default=10, ge=1, le=1000)


class ShareCreate(SQLModel):
    allow_anonymous: bool = False
    expires_in_days: int | None = Field(default=None, ge=1, le=90)


class LinkPublic(SQLModel):
    id: int
    kind: str
    role: str | None
    task_id: int | None
    comparison_id: int | None
    allow_anonymous: bool
    expires_at: datetime | None
    max_uses: int | None
    use_count: int
    revoked_at: datetime | None
    joined: list[str] = []


class ShareLinkPublic(LinkPublic):
    created_at: datetime
    created_by: str | None = Field(description="The email of who made it.")


class LinkCreated(LinkPublic):
    url: str = Field(description="The link to hand out; shown this once, never stored.")


def _link(link: ShareLink, joined: list[str] | None = None) -> LinkPublic:
    return LinkPublic.model_validate({**link.model_dump(), "joined": joined or []})


def _created(request: Request, issued: sharing.IssuedLink, path: str) -> LinkCreated:
    url = str(request.base_url).rstrip("/") + f"{path}/{issued.token}"
    return LinkCreated.model_validate({**issued.link.model_dump(), "url": url})


@router.get("/workspaces/{slug}/members", response_model=list[MemberPublic])
def list_members(access: ViewableWorkspace, session: SessionDep) -> list[MemberPublic]:
    """Who is in the workspace, with their roles."""
    workspace = access.workspace
    return [
        MemberPublic(user_id=u.id, email=u.email, display_name=u.display_name, role=m.role)  # type: ignore[arg-type]
        for u, m in sharing.members(session=session, workspace=workspace)
    ]


@router.put("/workspaces/{slug}/members/{user_id}", response_model=MemberPublic)
def change_role(
    user_id: int, body: RoleUpdate, access: OwnedWorkspace, session: SessionDep,
    user: CurrentUser,
) -> MemberPublic:  # fmt: skip
    """Change a member's role (owners); the last owner cannot step down."""
    workspace = access.workspace
    membership = sharing.change_role(session=session, workspace=workspace, actor=user,
                                     user_id=user_id, role=body.role)  # fmt: skip
    session.commit()
    person = next(u for u, m in sharing.members(session=session, workspace=workspace)
                  if m.id == membership.id)  # fmt: skip
    return MemberPublic(user_id=user_id, email=person.email, display_name=person.display_name,
                        role=membership.role)  # type: ignore[arg-type]  # fmt: skip


@router.delete("/workspaces/{slug}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(
    user_id: int, access: ViewableWorkspace, session: SessionDep, user: CurrentUser
) -> Response:
    """Remove a member (owners), or leave (yourself); never the last owner."""
    if user_id != user.id and access.role != Role.owner:
        raise NotFound("Not found.")
    sharing.remove_member(session=session, workspace=access.workspace, actor=user, user_id=user_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/workspaces/{slug}/invites", response_model=list[LinkPublic])
def list_invites(access: OwnedWorkspace, session: SessionDep) -> list[LinkPublic]:
    """Invite links with who joined through each (owners)."""
    workspace = access.workspace
    links = sharing.links_of(session=session, workspace=workspace, kind=ShareLinkKind.invite)
    return [
        _link(link, [u.email for u in sharing.joined_through(session=session, link=link)])
        for link in links
    ]


@router.get("/workspaces/{slug}/share-links", response_model=list[ShareLinkPublic])
def list_share_links(access: OwnedWorkspace, session: SessionDep) -> list[ShareLinkPublic]:
    """The read-only task and comparison links that still work, with who made each (owners)."""
    return [
        ShareLinkPublic.model_validate(
            {**link.model_dump(), "created_by": creator.email if creator else None}
        )
        for link, creator in sharing.active_read_only_links(session=session,
                                                             workspace=access.workspace)
    ]  # fmt: skip


@router.post(
    "/workspaces/{slug}/invites", response_model=LinkCreated, status_code=status.HTTP_201_CREATED
)
def create_invite(
    request: Request, body: InviteCreate, access: OwnedWorkspace, session: SessionDep,
    user: CurrentUser,
) -> LinkCreated:  # fmt: skip
    """An invite link granting editor or viewer (owners)."""
    workspace = access.workspace
    issued = sharing.create_invite(
        session=session, workspace=workspace, owner=user, role=body.role,
        expires_in_days=body.expires_in_days, max_uses=body.max_uses,
    )  # fmt: skip
    session.commit()
    return _created(request, issued, "/join")


@router.post("/invites/{token}/accept", status_code=status.HTTP_204_NO_CONTENT)
def accept_invite(token: str, session: SessionDep, user: CurrentUser) -> Response:
    """Join a workspace with an invite token."""
    sharing.join(session=session, token=token, user=user)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/tasks/{task_id}/share-links", response_model=LinkCreated,
    status_code=status.HTTP_201_CREATED,
)  # fmt: skip
def share_task(
    request: Request, task_id: int, body: ShareCreate, session: SessionDep, user: CurrentUser
) -> LinkCreated:
    """A read-only link to a task (anyone with access)."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.viewer)
    issued = sharing.create_read_only_link(
        session=session, author=user, task=task, allow_anonymous=body.allow_anonymous,
        expires_in_days=body.expires_in_days,
    )  # fmt: skip
    session.commit()
    return _created(request, issued, "/s")


@router.post(
    "/comparisons/{comparison_id}/share-links", response_model=LinkCreated,
    status_code=status.HTTP_201_CREATED,
)  # fmt: skip
def share_comparison(
    request: Request, comparison_id: int, body: ShareCreate, session: SessionDep,
    user: CurrentUser,
) -> LinkCreated:  # fmt: skip
    """A read-only link to a comparison (anyone with access)."""
    comparison, _ = comparison_for(
        session=session, comparison_id=comparison_id, user=user, min_role=Role.viewer
    )
    issued = sharing.create_read_only_link(
        session=session, author=user, comparison=comparison,
        allow_anonymous=body.allow_anonymous, expires_in_days=body.expires_in_days,
    )  # fmt: skip
    session.commit()
    return _created(request, issued, "/s")


@router.delete("/links/{link_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_link(link_id: int, session: SessionDep, user: CurrentUser) -> Response:
    """Revoke a link: owners any of their workspace's, others the read-only ones they made."""
    sharing.revoke_link(session=session, link_id=link_id, actor=user)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/workspaces/{slug}", status_code=status.HTTP_204_NO_CONTENT)
def delete_workspace_api(
    access: OwnedWorkspace, session: SessionDep, user: CurrentUser
) -> Response:
    """Delete the workspace and everything in it (owners)."""
    stream_keys = delete_workspace(session=session, workspace=access.workspace, actor=user)
    session.commit()
    live.forget(get_redis(), stream_keys)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
