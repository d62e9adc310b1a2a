"""Identical lookups in flight at the same moment are done once, and never reused after."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from app.web.in_flight import InFlight

pytestmark = pytest.mark.timeout(30)


class _HeldLookup:
    """A blocking lookup that waits (in its thread) until released; counts its calls."""

    def __init__(self, answer: Any = "allowed") -> None:
        self.answer = answer
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, key: str) -> Any:
        self.calls += 1
        self.started.set()
        assert self.release.wait(10)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return f"{self.answer} {key}"


def _run(test: Any) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(test())).result()


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0)


def test_callers_that_arrive_while_a_lookup_runs_share_it() -> None:
    lookup, in_flight = _HeldLookup(), InFlight()

    async def test() -> list[str]:
        first = asyncio.create_task(in_flight.run("k", lookup, "k"))
        await asyncio.to_thread(lookup.started.wait, 10)
        others = [asyncio.create_task(in_flight.run("k", lookup, "k")) for _ in range(99)]
        await asyncio.sleep(0)  # every caller is waiting now
        lookup.release.set()
        return await asyncio.gather(first, *others)

    assert _run(test) == ["allowed k"] * 100
    assert lookup.calls == 1


def test_a_lookup_that_has_ended_is_never_reused() -> None:
    lookup, in_flight = _HeldLookup(), InFlight()
    lookup.release.set()

    async def test() -> None:
        assert await in_flight.run("k", lookup, "k") == "allowed k"
        assert len(in_flight) == 0
        lookup.answer = "revoked"
        assert await in_flight.run("k", lookup, "k") == "revoked k"

    _run(test)
    assert lookup.calls == 2


def test_different_keys_are_looked_up_apart() -> None:
    lookup, in_flight = _HeldLookup(), InFlight()
    lookup.release.set()

    async def test() -> list[str]:
        return await asyncio.gather(
            in_flight.run("a", lookup, "a"), in_flight.run("b", lookup, "b")
        )

    assert _run(test) == ["allowed a", "allowed b"]
    assert lookup.calls == 2


def test_every_waiting_caller_gets_the_lookups_error() -> None:
    lookup, in_flight = _HeldLookup(PermissionError("not yours")), InFlight()

    async def test() -> list[Any]:
        callers = [asyncio.create_task(in_flight.run("k", lookup, "k")) for _ in range(3)]
        await asyncio.to_thread(lookup.started.wait, 10)
        lookup.release.set()
        return await asyncio.gather(*callers, return_exceptions=True)

    results = _run(test)
    assert [type(r) for r in results] == [PermissionError] * 3
    assert lookup.calls == 1


def test_a_caller_that_goes_away_does_not_cancel_the_others_lookup() -> None:
    lookup, in_flight = _HeldLookup(), InFlight()

    async def test() -> str:
        leaving = asyncio.create_task(in_flight.run("k", lookup, "k"))
        await asyncio.to_thread(lookup.started.wait, 10)
        staying = asyncio.create_task(in_flight.run("k", lookup, "k"))
        await asyncio.sleep(0)
        leaving.cancel()
        await asyncio.gather(leaving, return_exceptions=True)
        lookup.release.set()
        return await staying

    assert _run(test) == "allowed k"
    assert lookup.calls == 1
