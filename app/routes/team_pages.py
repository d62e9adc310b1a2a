"""Sharing pages: members and invite links (owners), joining by link, read-only share links
to one task or comparison (live), and deleting a workspace."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from app.engine import live
from app.models import (
    Comparison,
    Role,
    RunStatus,
    ShareLink,
    ShareLinkKind,
    Task,
    User,
    Workspace,
)
from app.redis_conn import get_redis
from app.services import NotFound, ServiceError, sharing
from app.services.access import comparison_for, task_for
from app.services.accounts import create_user
from app.services.agents import agents_of
from app.services.comparisons import branch_ids, columns_of
from app.services.labels import message_labels
from app.services.threads import branch
from app.services.workspaces import delete_workspace
from app.web.deps import (
    Access,
    CurrentUser,
    OptionalUser,
    OwnedWorkspace,
    SessionDep,
    SettingsDep,
    SignInRequired,
    ViewableWorkspace,
)
from app.web.new_links import recall, remember
from app.web.sessions import signed_in_redirect
from app.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


def public_url(request: Request, path: str) -> str:
    return str(request.base_url).rstrip("/") + path


def _members_context(session: Session, access: Access) -> dict[str, Any]:
    workspace, role = access
    invites = sharing.links_of(session=session, workspace=workspace, kind=ShareLinkKind.invite)
    return {
        "workspace": workspace,
        "members": sharing.members(session=session, workspace=workspace),
        "is_owner": role == Role.owner,
        "roles": list(Role),
        "invites": [(link, sharing.joined_through(session=session, link=link)) for link in invites],
        "share_links": sharing.active_read_only_links(session=session, workspace=workspace)
        if role == Role.owner
        else [],
    }


def _members_page(request: Request, session: Session, access: Access,
                  status_code: int = 200, **extra: Any) -> Response:  # fmt: skip
    context = {**_members_context(session, access), **extra}
    return render(request, "members.html", context, status_code=status_code)


@router.get("/w/{slug}/members")
def members_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    access: ViewableWorkspace,
    new: int | None = None,
) -> Response:
    """``new``: the invite just made, its address shown while the browser that made it holds
    it (a reload shows it again)."""
    extra: dict[str, Any] = {}
    link = session.get(ShareLink, new) if new is not None else None
    if link is not None and link.workspace_id == access.workspace.id:
        token = recall(request, link) if link.created_by_id == user.id else None
        if token:
            extra["new_link"] = public_url(request, f"/join/{token}")
        else:
            extra["new_link_gone"] = True
    return _members_page(request, session, access, **extra)


@router.post("/w/{slug}/invites")
def create_invite_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    access: OwnedWorkspace,
    role: Annotated[Role, Form()],
    expires_in_days: Annotated[int, Form()] = 7,
    max_uses: Annotated[int, Form()] = 10,
) -> Response:
    workspace = access.workspace
    try:
        issued = sharing.create_invite(
            session=session, workspace=workspace, owner=user, role=role,
            expires_in_days=expires_in_days, max_uses=max_uses,
        )  # fmt: skip
    except ServiceError as exc:
        session.rollback()
        return _members_page(request, session, access, 400, error=exc.message)
    session.commit()
    assert issued.link.id is not None
    members = f"/w/{workspace.slug}/members"
    response = RedirectResponse(f"{members}?new={issued.link.id}", status_code=303)
    remember(response, request, issued.link.id, issued.token, members)
    return response


@router.post("/links/{link_id}/revoke")
def revoke_link_page(
    request: Request, link_id: int, session: SessionDep, user: CurrentUser,
    back_to_members: Annotated[bool, Form()] = False,
    back_to_task: Annotated[int | None, Form()] = None,
) -> Response:  # fmt: skip
    """Owners revoke any link of their workspace; others the read-only links they made."""
    back = None
    if back_to_task is not None:  # checked first: a bad one changes nothing
        back = task_for(session=session, task_id=back_to_task, user=user, min_role=Role.viewer)
    link = sharing.revoke_link(session=session, link_id=link_id, actor=user)
    session.commit()
    workspace = session.get(Workspace, link.workspace_id)
    assert workspace is not None
    if back is not None:
        return RedirectResponse(f"/t/{back.id}#share", status_code=303)
    if link.kind == ShareLinkKind.invite or back_to_members:
        return RedirectResponse(f"/w/{workspace.slug}/members", status_code=303)
    target = f"/t/{link.task_id}" if link.task_id else f"/c/{link.comparison_id}"
    return RedirectResponse(target, status_code=303)


@router.post("/w/{slug}/members/{user_id}/role")
def change_role_page(
    request: Request,
    user_id: int,
    session: SessionDep,
    user: CurrentUser,
    access: OwnedWorkspace,
    role: Annotated[Role, Form()],
) -> Response:
    workspace = access.workspace
    try:
        sharing.change_role(session=session, workspace=workspace, actor=user, user_id=user_id,
                            role=role)  # fmt: skip
    except ServiceError as exc:
        session.rollback()
        return _members_page(request, session, access, exc.status_code, error=exc.message)
    session.commit()
    return RedirectResponse(f"/w/{workspace.slug}/members", status_code=303)


@router.post("/w/{slug}/members/{user_id}/remove")
def remove_member_page(
    request: Request, user_id: int, session: SessionDep, user: CurrentUser,
    access: OwnedWorkspace,
) -> Response:  # fmt: skip
    workspace = access.workspace
    try:
        sharing.remove_member(session=session, workspace=workspace, actor=user, user_id=user_id)
    except ServiceError as exc:
        session.rollback()
        return _members_page(request, session, access, exc.status_code, error=exc.message)
    session.commit()
    return RedirectResponse(f"/w/{workspace.slug}/members", status_code=303)


@router.post("/w/{slug}/leave")
def leave_page(
    request: Request, session: SessionDep, user: CurrentUser, access: ViewableWorkspace
) -> Response:
    workspace = access.workspace
    try:
        sharing.remove_member(session=session, workspace=workspace, actor=user, user_id=user.id)  # type: ignore[arg-type]
    except ServiceError as exc:
        session.rollback()
        return _members_page(request, session, access, exc.status_code, error=exc.message)
    session.commit()
    return RedirectResponse("/", status_code=303)


@router.post("/w/{slug}/delete")
def delete_workspace_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    access: OwnedWorkspace,
    confirm: Annotated[str, Form(max_length=100)],
) -> Response:
    workspace = access.workspace
    if confirm.strip() != workspace.slug:
        return _members_page(request, session, access, 400,
                             error=f"Type {workspace.slug} to confirm the deletion.")  # fmt: skip
    stream_keys = delete_workspace(session=session, workspace=workspace, actor=user)
    session.commit()
    live.forget(get_redis(), stream_keys)
    return RedirectResponse("/", status_code=303)


# --- joining by an invite link -------------------------------------------------------------


def _join_context(session: Session, token: str) -> dict[str, Any]:
    link = sharing.find_link(session=session, token=token, kind=ShareLinkKind.invite)
    return {"link": link, "workspace": session.get(Workspace, link.workspace_id), "token": token}


@router.get("/join/{token}")
def join_page(request: Request, token: str, session: SessionDep, user: OptionalUser) -> Response:
    """An invite: join as the signed-in person, or create an account and join."""
    return render(request, "join.html", _join_context(session, token))


@router.post("/join/{token}")
def join(token: str, session: SessionDep, user: CurrentUser) -> Response:
    workspace, _ = sharing.join(session=session, token=token, user=user)
    session.commit()
    return RedirectResponse(f"/w/{workspace.slug}", status_code=303)


@router.post("/join/{token}/signup")
def join_with_new_account(
    request: Request,
    token: str,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    display_name: Annotated[str, Form(max_length=120)] = "",
) -> Response:
    context = _join_context(session, token)
    try:
        new_user = create_user(session=session, email=email, password=password,
                               display_name=display_name)  # fmt: skip
        workspace, _ = sharing.join(session=session, token=token, user=new_user)
    except ServiceError as exc:
        session.rollback()
        context.update(error=exc.message, email=email, display_name=display_name)
        return render(request, "join.html", context, status_code=exc.status_code)
    return signed_in_redirect(session, settings, new_user, f"/w/{workspace.slug}", request)


# --- read-only share links -----------------------------------------------------------------


def _shown_once(request: Request, issued: sharing.IssuedLink) -> Response:
    """Post/redirect/get: the new link's page, which a reload shows again."""
    assert issued.link.id is not None
    page = f"/links/{issued.link.id}/new"
    response = RedirectResponse(page, status_code=303)
    remember(response, request, issued.link.id, issued.token, page)
    return response


@router.get("/links/{link_id}/new")
def new_link_page(
    request: Request, link_id: int, session: SessionDep, user: CurrentUser
) -> Response:
    """A read-only link just made, to copy (only its maker sees this page)."""
    link = session.get(ShareLink, link_id)
    if link is None or link.created_by_id != user.id or link.kind == ShareLinkKind.invite:
        raise NotFound("No such link.")
    if link.comparison_id is not None:
        _, task = comparison_for(session=session, comparison_id=link.comparison_id, user=user,
                                 min_role=Role.viewer)  # fmt: skip
    else:
        task = task_for(session=session, task_id=link.task_id or 0, user=user,
                        min_role=Role.viewer)  # fmt: skip
    token = recall(request, link)
    share_url = public_url(request, f"/s/{token}") if token else None
    context = {"share_url": share_url, "share_link": link, "task": task}
    return render(request, "share_created.html", context)


@router.post("/t/{task_id}/share")
def share_task_page(
    request: Request,
    task_id: int,
    session: SessionDep,
    user: CurrentUser,
    allow_anonymous: Annotated[bool, Form()] = False,
) -> Response:
    """A read-only link to this task (anyone with access may make one)."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.viewer)
    issued = sharing.create_read_only_link(session=session, author=user, task=task,
                                           allow_anonymous=allow_anonymous)  # fmt: skip
    session.commit()
    return _shown_once(request, issued)


@router.post("/c/{comparison_id}/share")
def share_comparison_page(
    request: Request,
    comparison_id: int,
    session: SessionDep,
    user: CurrentUser,
    allow_anonymous: Annotated[bool, Form()] = False,
) -> Response:
    comparison, _ = comparison_for(
        session=session, comparison_id=comparison_id, user=user, min_role=Role.viewer
    )
    issued = sharing.create_read_only_link(session=session, author=user, comparison=comparison,
                                           allow_anonymous=allow_anonymous)  # fmt: skip
    session.commit()
    return _shown_once(request, issued)


def _shared_context(
    session: Session, token: str, user: User | None, at: int | None
) -> dict[str, Any]:
    link = sharing.find_link(session=session, token=token)
    if link.kind == ShareLinkKind.invite:
        raise NotFound("No such page.")
    if user is None and not link.allow_anonymous:
        raise SignInRequired()
    comparison = session.get(Comparison, link.comparison_id) if link.comparison_id else None
    task = session.get(Task, comparison.task_id if comparison else link.task_id)
    assert task is not None
    agents = {a.id: a for a in agents_of(session=session, workspace_id=task.workspace_id)}
    context: dict[str, Any] = {
        "token": token, "task": task, "at": at, "agents_by_id": agents,
        "workspace": session.get(Workspace, task.workspace_id), "columns": None,
    }  # fmt: skip
    if comparison is not None:
        ids = branch_ids(session=session, comparison=comparison)
        context["columns"] = columns_of(session=session, message_ids=ids, baseline=0)
        context["active"] = any(c.live for c in context["columns"])
    else:
        shown = branch(session=session, task=task, at=at)
        context["branch"] = shown
        context["labels"] = message_labels(session=session, messages=shown.messages,
                                           agents_by_id=agents)  # fmt: skip
        context["active"] = any(
            r.status in (RunStatus.queued, RunStatus.running) for r in shown.runs.values()
        )
    return context


@router.get("/s/{token}")
def shared_page(
    request: Request, token: str, session: SessionDep, user: OptionalUser, at: int | None = None
) -> Response:
    """A read-only view of one task or comparison; it refreshes itself while runs go on."""
    return render(request, "shared.html", _shared_context(session, token, user, at))


@router.get("/s/{token}/live")
def shared_live(
    request: Request, token: str, session: SessionDep, user: OptionalUser, at: int | None = None
) -> Response:
    return render(request, "shared.html", _shared_context(session, token, user, at), block="live")
