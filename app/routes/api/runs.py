"""Runs: read one (with its queue position), cancel, retry."""

from fastapi import APIRouter

from app.engine import runs as operations
from app.engine.dispatch import announce_cancel, dispatch_retry
from app.models import Role, RunPublic
from app.routes.api.presenters import run_public
from app.services.access import run_for
from app.web.deps import CurrentUser, SessionDep

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
    announce_cancel(run)
    return run_public(session, run)


@router.post("/{run_id}/retry", response_model=RunPublic)
def retry_run(run_id: int, session: SessionDep, user: CurrentUser) -> RunPublic:
    """Queue a failed or cancelled run again."""
    run, _ = run_for(session=session, run_id=run_id, user=user, min_role=Role.editor)
    operations.retry(session=session, run=run, actor=user)
    session.commit()
    dispatch_retry(run_id)
    return run_public(session, run)
