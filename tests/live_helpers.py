"""Reading server-sent events as a browser does (the WHATWG parser: CR, LF and CRLF end lines)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass
class Event:
    type: str
    data: str
    last_id: str  # the last event id the browser holds after this event


def parse(chunks: Iterator[bytes]) -> Iterator[Event]:
    """Events from a raw SSE body, dispatched as an EventSource would."""
    buffer = ""
    last_id = ""
    kind, data = "", []
    for chunk in chunks:
        buffer += chunk.decode()
        while True:
            match = LINE_END.search(buffer)
            # A CR at the very end may be the first half of a CRLF: wait for more.
            if match is None or (match.group() == "\r" and match.end() == len(buffer)):
                break
            line, buffer = buffer[: match.start()], buffer[match.end() :]
            if line == "":
                if data:
                    yield Event(kind or "message", "\n".join(data), last_id)
                kind, data = "", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)
            elif name == "id" and "\0" not in value:
                last_id = value


def read_until(
    client, url: str, stop: Callable[[Event], bool], headers: dict[str, str] | None = None
) -> list[Event]:
    """Events of ``url`` up to and including the first one ``stop`` accepts, or the end."""
    events: list[Event] = []
    with client.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200, response.read()
        for event in parse(response.iter_raw()):
            events.append(event)
            if stop(event):
                break
    return events
