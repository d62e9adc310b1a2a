"""Turning rows into API shapes (figures derived from the timestamps)."""

from __future__ import annotations

from sqlmodel import Session, SQLModel

from app.engine.runs import Started, queue_position
from app.models import Message, MessagePublic, Run, RunPublic


def _ms(later: object, earlier: object) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier).total_seconds() * 1000, 1)  # type: ignore[operator]


def run_public(session: Session, run: Run) -> RunPublic:
    return RunPublic.model_validate(
        {
            **run.model_dump(),
            "queue_wait_ms": _ms(run.started_at, run.queued_at),
            "time_to_first_token_ms": _ms(run.first_token_at, run.started_at),
            "queue_position": queue_position(session=session, run=run),
        }
    )


def message_public(message: Message) -> MessagePublic:
    return MessagePublic.model_validate(message, from_attributes=True)


class StartedPublic(SQLModel):
    """What an operation created; ``queued`` is false when the queue was unreachable (the runs
    are saved and start once it is back)."""

    message: MessagePublic | None
    runs: list[RunPublic]
    queued: bool


def started_public(session: Session, started: Started, queued: bool) -> StartedPublic:
    return StartedPublic(
        message=message_public(started.message) if started.message else None,
        runs=[run_public(session, run) for run in started.runs],
        queued=queued,
    )
