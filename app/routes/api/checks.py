"""Checks: run an answer's code in the sandbox, read a check, cancel it."""

from fastapi import APIRouter, status

from app.engine import checks as operations
from app.engine.dispatch import dispatch_checks
from app.models import CheckCreate, CheckPublic, Role
from app.services import ServiceError
from app.services.access import check_for, message_for
from app.web.deps import CurrentUser, SessionDep

router = APIRouter(tags=["checks"])


@router.post(
    "/messages/{message_id}/checks",
    response_model=CheckPublic,
    status_code=status.HTTP_201_CREATED,
)
def create_check(
    message_id: int, session: SessionDep, user: CurrentUser, body: CheckCreate | None = None
) -> CheckPublic:
    """Run an answer's code in the sandbox; with ``test_message_id``, that answer's tests
    against it; with ``code_message_id``, this answer's tests against that answer's code."""
    _, task = message_for(session=session, message_id=message_id, user=user, min_role=Role.editor)
    body = body or CheckCreate()
    if body.test_message_id is not None and body.code_message_id is not None:
        raise ServiceError("Give test_message_id or code_message_id, not both.")
    code_id, test_id = message_id, body.test_message_id
    if body.code_message_id is not None:
        code_id, test_id = body.code_message_id, message_id
    check = operations.create_check(
        session=session, task=task, author=user, code_message_id=code_id, test_message_id=test_id
    )
    session.commit()
    dispatch_checks([check.id])  # type: ignore[list-item]
    return CheckPublic.model_validate(check)


@router.get("/checks/{check_id}", response_model=CheckPublic)
def read_check(check_id: int, session: SessionDep, user: CurrentUser) -> CheckPublic:
    """A check's state and, once it ended, its verdict."""
    check, _ = check_for(session=session, check_id=check_id, user=user, min_role=Role.viewer)
    return CheckPublic.model_validate(check)


@router.post("/checks/{check_id}/cancel", response_model=CheckPublic)
def cancel_check(check_id: int, session: SessionDep, user: CurrentUser) -> CheckPublic:
    """End a queued or running check cancelled (a running one's result is discarded)."""
    check, _ = check_for(session=session, check_id=check_id, user=user, min_role=Role.editor)
    operations.cancel_check(session=session, check=check, actor=user)
    session.commit()
    return CheckPublic.model_validate(check)
