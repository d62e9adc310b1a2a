"""Runs: read one (with its queue position), cancel, retry."""

from fastapi import APIRouter

from app import live
from app.deps import CurrentUser, SessionDep
from app.dispatch import dispatch
from app.models import Role, RunPublic, RunStatus
from app.redis_conn import get_redis
from app.routes.api.presenters import run_public
from app.services import runs as operations
from app.services.access import run_for

router = APIRouter(prefix="/runs", tags=["runs"])


@router.get("/{run_id}", response_model=RunPublic)
def read_run(run_id: int, session: SessionDep, user: CurrentUser) -> RunPublic:
    """A run's state and figures; ``queue_position`` while it waits."""
    run, _ = run_for(session=session, run_id=run_id, user=user, min_role=Role.viewer)
    return run_public(session, run)


@router.post("/{run_id}/cancel", response_model=RunPublic)
def cancel_run(run_id: int, session: SessionDep, user: CurrentUser) -> RunPublic:
    """Cancel a queued run at once, or a running one at its next token (keeping its text)."""
    run, _ = run_for(session=session, run_id=run_id, user=user, min_role=Role.editor)
    operations.cancel(session=session, run=run, actor=user)
    session.commit()
    client = get_redis()
    if run.status == RunStatus.cancelled:
        live.append_run(client, run.id, "done", {"status": "cancelled", "error": run.error})  # type: ignore[arg-type]
    else:
        live.request_cancel(client, run.id)  # type: ignore[arg-type]
    return run_public(session, run)


@router.post("/{run_id}/retry", response_model=RunPublic)
def retry_run(run_id: int, session: SessionDep, user: CurrentUser) -> RunPublic:
    """Queue a failed or cancelled run again."""
    run, _ = run_for(session=session, run_id=run_id, user=user, min_role=Role.editor)
    operations.retry(session=session, run=run, actor=user)
    session.commit()
    # A fresh stream: late viewers must not stop at the previous attempt's terminal event.
    get_redis().delete(live.run_stream(run.id), live.cancel_flag(run.id))  # type: ignore[arg-type]
    dispatch([run.id])  # type: ignore[list-item]
    return run_public(session, run)
