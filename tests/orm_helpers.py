"""What went through the ORM's execution path (a page's reads of ids and counts should not)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.orm import Session as OrmSession


@contextmanager
def orm_statements() -> Iterator[list[object]]:
    """The statements every session executes through the ORM while the block runs."""
    seen: list[object] = []

    def note(state: ORMExecuteState) -> None:
        seen.append(state.statement)

    event.listen(OrmSession, "do_orm_execute", note)
    try:
        yield seen
    finally:
        event.remove(OrmSession, "do_orm_execute", note)


def went_through_orm(seen: list[object], *statements: object) -> list[object]:
    """Those of ``statements`` that ``seen`` holds (the very objects, built once per process)."""
    return [s for s in statements if any(s is executed for executed in seen)]
