"""Identical lookups that are in flight at the same moment, done once.

A hundred viewers of one run, signed in as one person, connect together: each would look up
the same sign-in and the same access. :class:`InFlight` lets the callers that arrive while such
a lookup runs wait for it and share its answer (or its error). Nothing outlives the lookup: a
caller that comes after it has finished starts a new one, so an access decision is never
reused, and a revoked access takes effect at the next connect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")


class InFlight:
    """Blocking lookups run in the thread pool, one at a time per key (one per event loop)."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[Any]] = {}

    async def run(self, key: Hashable, lookup: Callable[..., T], *args: Any) -> T:
        """``lookup(*args)``, or the result of the same key's lookup already running."""
        future = self._running.get(key)
        if future is None:
            future = asyncio.ensure_future(run_in_threadpool(lookup, *args))
            self._running[key] = future
            future.add_done_callback(lambda done: self._finished(key, done))
        # A caller that goes away (its client disconnected) must not cancel the others' lookup.
        return await asyncio.shield(future)  # type: ignore[no-any-return]

    def _finished(self, key: Hashable, done: asyncio.Future[Any]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved: every caller may have gone before it ended

    def __len__(self) -> int:
        """Lookups running now."""
        return len(self._running)
