"""Ids posted in page forms, parsed the way the API's validation would: ascii digits within the
database's integer range, or a clear 400 (never ``int()``'s ValueError, or a 5,000-digit number
the database cannot hold)."""

from __future__ import annotations

from app.services import ServiceError

MAX_ID = 2**63 - 1


def form_id(value: str, message: str) -> int:
    """``value`` as an id; ServiceError(``message``) when it is not one."""
    value = value.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 19) or int(value) > MAX_ID:
        raise ServiceError(message)
    return int(value)


def form_ids(values: list[str] | None, message: str) -> list[int]:
    """The ids among ``values`` (empty choices are skipped); ServiceError for any other."""
    return [form_id(value, message) for value in values or [] if value.strip()]
