"""A lean SSE viewer of a run, for benchmarks that follow one run with many viewers.

The viewers stand for browsers on other machines, yet a benchmark runs them on the cores the
stack uses. httpx's async client spends ~200 µs of CPU per event and connection step; with 100
viewers that was more CPU than the web process's (172 against 70 ms for one 2,000-word run), so
the instrument slowed what it measured. This one speaks HTTP/1.1 over an asyncio stream: one
request written by hand, the chunked body read chunk by chunk, the events parsed like
``bench.stack.follow_run`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx

from bench.stack import TERMINAL, Event, EventParser, StackError


def cookie_header(cookies: httpx.Cookies) -> str:
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


async def view_run(
    base_url: str, cookies: str, run_id: int, opened: asyncio.Event | None = None
) -> list[Event]:
    """Every event of ``run_id`` until ``done`` or ``error``, as ``afollow_run`` gives them;
    sets ``opened`` at the first event (the server has checked access and follows the run)."""
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"GET /api/v1/runs/{run_id}/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Accept: text/event-stream\r\nCookie: {cookies}\r\nConnection: close\r\n\r\n".encode()
        )
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        if not head.startswith("http/1.1 200"):
            raise StackError(f"run {run_id} events: {head.splitlines()[0]}")
        body = _chunked(reader) if "transfer-encoding: chunked" in head else _plain(reader)
        parser, events, pending = EventParser(), [], b""
        async for data in body:
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                event = parser.feed(line.removesuffix(b"\r").decode())
                if event is None:
                    continue
                events.append(event)
                if opened is not None:
                    opened.set()
                if event.type in TERMINAL:
                    return events
        raise StackError(f"run {run_id} events ended without done/error: {events[-3:]}")
    finally:
        writer.close()


async def _chunked(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            return
        yield (await reader.readexactly(size + 2))[:-2]


async def _plain(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while data := await reader.read(65536):
        yield data
