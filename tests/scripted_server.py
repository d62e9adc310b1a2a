"""A scripted OpenAI-compatible model server for the model client's fault-injection tests.

A raw ASGI app, served by uvicorn on a free 127.0.0.1 port in a background thread. Each test
says how a path answers — a plain :class:`Reply`, or a :class:`Stream` of steps (send bytes,
pause, drop the connection) — and afterwards reads what the server received: method, path,
headers, JSON body, and whether the client disconnected before the answer was complete.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from app.runtime.preflight import free_loopback_port

Scope = dict[str, Any]
Message = dict[str, Any]


@dataclass(frozen=True)
class Send:
    """Write these bytes to the response body."""

    data: bytes


@dataclass(frozen=True)
class Pause:
    """Wait, or stop the script as soon as the client disconnects."""

    seconds: float


@dataclass(frozen=True)
class Hold:
    """Wait until the test sets ``gate`` (a barrier, not a time), or stop as soon as the client
    disconnects; ``reached`` is set when the script gets here."""

    gate: threading.Event
    reached: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Drop:
    """Close the connection without ending the chunked body."""


Step = Send | Pause | Hold | Drop


@dataclass(frozen=True)
class Reply:
    """A complete answer; a dict or list body is sent as JSON."""

    status: int
    body: object = ""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stream:
    """A ``text/event-stream`` answer played step by step after ``headers_after`` seconds."""

    steps: Sequence[Step]
    status: int = 200
    headers_after: float = 0.0


Behaviour = Reply | Stream | Callable[["Received"], "Reply | Stream"]


def sse(payload: object) -> Send:
    """One ``data:`` event carrying ``payload`` as JSON."""
    return Send(b"data: " + json.dumps(payload).encode() + b"\n\n")


def chunk(
    content: str | None = None,
    *,
    finish: str | None = None,
    usage: Mapping[str, int] | None = None,
    empty_choices: bool = False,
) -> dict[str, Any]:
    """An OpenAI ``chat.completion.chunk``."""
    body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": []}
    if not empty_choices:
        delta = {} if content is None else {"content": content}
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    if usage is not None:
        body["usage"] = dict(usage)
    return body


def text_chunk(
    text: str | None = None,
    *,
    finish: str | None = None,
    usage: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """An OpenAI ``text_completion`` chunk, as ``/v1/completions`` streams them."""
    body: dict[str, Any] = {
        "id": "cmpl-1",
        "object": "text_completion",
        "choices": [{"index": 0, "text": text or "", "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = dict(usage)
    return body


def comment(text: str = "keep-alive") -> Send:
    return Send(f": {text}\n\n".encode())


DONE = Send(b"data: [DONE]\n\n")


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    disconnected: threading.Event = field(default_factory=threading.Event)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class ScriptedServer:
    """The ASGI app; ``on()`` scripts a path, ``received`` lists what came in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, Behaviour] = {}
        self._received: list[Received] = []
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def on(self, path: str, behaviour: Behaviour) -> None:
        with self._lock:
            self._routes[path] = behaviour

    def reset(self) -> None:
        with self._lock:
            self._routes.clear()
            self._received.clear()

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def only_request(self) -> Received:
        requests = self.received
        assert len(requests) == 1, f"expected one request, got {len(requests)}"
        return requests[0]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        record = Received(
            method=scope["method"],
            path=scope["path"],
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
            body=body,
        )
        with self._lock:
            self._received.append(record)
            behaviour = self._routes.get(scope["path"])
        if behaviour is None:
            behaviour = Reply(404, {"error": {"message": "File Not Found", "type": "not_found"}})
        if not isinstance(behaviour, Reply | Stream):
            behaviour = behaviour(record)  # answers that depend on the request
        if isinstance(behaviour, Reply):
            await _reply(behaviour, send)
        else:
            await _stream(behaviour, record, receive, send)


async def _reply(reply: Reply, send: Any) -> None:
    headers = dict(reply.headers)
    if isinstance(reply.body, dict | list):
        data = json.dumps(reply.body).encode()
        headers.setdefault("content-type", "application/json")
    else:
        data = str(reply.body).encode()
        headers.setdefault("content-type", "text/plain")
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": data})


async def _stream(script: Stream, record: Received, receive: Any, send: Any) -> None:
    gone = asyncio.Event()

    async def watch() -> None:
        message = await receive()
        if message["type"] == "http.disconnect":
            record.disconnected.set()
            gone.set()

    watcher = asyncio.create_task(watch())
    try:
        if script.headers_after and await _pause(gone, script.headers_after):
            return
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": script.status, "headers": headers})
        for step in script.steps:
            if isinstance(step, Drop):
                return  # uvicorn closes the socket of a response left incomplete
            if isinstance(step, Pause):
                if await _pause(gone, step.seconds):
                    return
                continue
            if isinstance(step, Hold):
                if await _hold(gone, step):
                    return
                continue
            await send({"type": "http.response.body", "body": step.data, "more_body": True})
        watcher.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()


async def _pause(gone: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True when the client disconnected meanwhile."""
    try:
        await asyncio.wait_for(gone.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def _hold(gone: asyncio.Event, hold: Hold) -> bool:
    """Wait for the gate; True when the client disconnected meanwhile."""
    hold.reached.set()
    while not hold.gate.is_set():
        if await _pause(gone, 0.02):
            return True
    return False


class ServerThread:
    """uvicorn serving ``app`` on a free loopback port, in a daemon thread."""

    def __init__(self, app: ScriptedServer) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        app.port = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            http="h11",
            loop="asyncio",
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the scripted model server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()


unused_port = free_loopback_port


def answer(text: str, *, pause: float = 0.0, prompt_tokens: int = 11) -> Stream:
    """A complete streamed answer: one chunk per word, a finish, usage and [DONE]."""
    words = text.split(" ")
    steps: list[Step] = []
    for index, word in enumerate(words):
        steps.append(sse(chunk(word if index == 0 else " " + word)))
        if pause:
            steps.append(Pause(pause))
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
             "total_tokens": prompt_tokens + len(words)}  # fmt: skip
    steps += [sse(chunk(finish="stop")), sse(chunk(usage=usage, empty_choices=True)), DONE]
    return Stream(steps)


def completion(pieces: Sequence[str], *, pause: float = 0.0, finish: str = "stop") -> Stream:
    """A streamed ``/v1/completions`` answer: one chunk per piece, a finish with usage, [DONE]."""
    steps: list[Step] = []
    for piece in pieces:
        steps.append(sse(text_chunk(piece)))
        if pause:
            steps.append(Pause(pause))
    usage = {"prompt_tokens": 40, "completion_tokens": len(pieces)}
    return Stream([*steps, sse(text_chunk(finish=finish, usage=usage)), DONE])
