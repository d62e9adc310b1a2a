"""Model servers that are starting: what each is doing ("building llama-server, 3 of about 7
minutes"), in Redis under ``sb:endpoint:{id}:starting``.

Whoever starts the server (``switchboard up`` for the embedded one) says so, and says it again
while it works: the note expires on its own (``NOTE_TTL_S``) should that process die. While a
note stands, the endpoint's runs wait in their queue (a worker gives each back, as when no slot
is free) and the pages say why.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis
from sqlmodel import Session, col, select

from app.models import Model, Run

NOTE_TTL_S = 120


def starting_key(endpoint_id: int) -> str:
    return f"sb:endpoint:{endpoint_id}:starting"


def say_starting(client: redis.Redis, endpoint_id: int, note: str) -> None:
    """The endpoint is starting and not taking runs yet: ``note`` says what it is doing."""
    client.set(starting_key(endpoint_id), note, ex=NOTE_TTL_S)


def say_started(client: redis.Redis, endpoint_id: int) -> None:
    client.delete(starting_key(endpoint_id))


def starting_note(client: redis.Redis, endpoint_id: int) -> str | None:
    """What the endpoint is doing while it starts; None when it is not starting (or Redis is
    away: then nobody can say, and its runs go ahead)."""
    try:
        note = client.get(starting_key(endpoint_id))
    except redis.RedisError:
        return None
    return str(note) if note else None


def starting_notes(client: redis.Redis, endpoint_ids: Iterable[int]) -> dict[int, str]:
    """Endpoint id → note, for those of ``endpoint_ids`` that are starting."""
    notes = {endpoint_id: starting_note(client, endpoint_id) for endpoint_id in endpoint_ids}
    return {endpoint_id: note for endpoint_id, note in notes.items() if note}


def waiting_notes(session: Session, client: redis.Redis, runs: Iterable[Run]) -> dict[int, str]:
    """Run id → why it waits, for the queued ones among ``runs`` whose model server starts."""
    model_ids = {run.model_id for run in runs if run.status == "queued" and run.model_id}
    if not model_ids:
        return {}
    endpoint_of = dict(
        session.exec(select(Model.id, Model.endpoint_id).where(col(Model.id).in_(model_ids))).all()
    )
    notes = starting_notes(client, set(endpoint_of.values()))
    return {
        run.id: notes[endpoint_of[run.model_id]]
        for run in runs
        if run.id is not None and run.model_id in endpoint_of and endpoint_of[run.model_id] in notes
        and run.status == "queued"
    }  # fmt: skip
