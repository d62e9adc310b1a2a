"""What the Switchboard benchmarks share: a throwaway stack, an SSE reader, a scripted model.

``stack()`` runs ``python -m app.runtime.cli up`` as a child process on a fresh data folder under
/tmp (short: the embedded Redis listens on a unix socket there) and free ports, signs in with
the one-time link it prints, waits until ``/healthz`` shows a worker, and on leaving stops it
with SIGINT, as Ctrl-C would. ``follow_run`` / ``afollow_run`` read a run's server-sent events
with receive timestamps. ``ScriptedModel`` is a tiny OpenAI-compatible server (raw ASGI on
uvicorn, in a child process) that streams a fixed answer as fast as it can, for measuring
Switchboard without a model's speed in the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.runtime.preflight import free_loopback_port

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/signin/link/\S+)")
STOP_TIMEOUT_S = 60.0

# --- the stack ------------------------------------------------------------------------------


class StackError(RuntimeError):
    """The stack did not start or an API call failed; the message says what happened."""


@dataclass
class Stack:
    """A running ``switchboard up``, signed in as its local admin."""

    process: subprocess.Popen[str]
    data_dir: Path
    base_url: str
    client: httpx.Client
    output: list[str] = field(default_factory=list)

    @property
    def cookies(self) -> httpx.Cookies:
        return self.client.cookies

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v1{path}``; the JSON answer, or StackError on anything but 2xx."""
        response = self.client.request(method, f"/api/v1{path}", **kwargs)
        if not response.is_success:
            raise StackError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.api("POST", path, json=body)

    def get(self, path: str) -> Any:
        return self.api("GET", path)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.api("PATCH", path, json=body)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by the stack's processes, by part: ``model``
        (llama-server), ``worker`` (Celery and its pool), ``web``, ``redis``, ``up``."""
        return cpu_seconds(self.data_dir)

    def embedded_endpoint(self) -> dict[str, Any]:
        """The embedded model's endpoint as ``GET /api/v1/endpoints`` shows it."""
        for endpoint in self.get("/endpoints"):
            if endpoint["is_embedded"]:
                return endpoint  # type: ignore[no-any-return]
        raise StackError("no embedded model endpoint is registered")

    def embedded_key(self) -> str:
        """The embedded model's API key (the API never shows it), for direct requests."""
        return (self.data_dir / "embedded_model_key").read_text().strip()

    def workspace(self, name: str) -> str:
        """A new workspace; its slug."""
        return str(self.post("/workspaces", {"name": name, "description": "benchmark"})["slug"])

    def agent(
        self, slug: str, *, name: str, model_id: int, role_prompt: str, max_tokens: int,
        loop_guard: bool = True,
    ) -> int:  # fmt: skip
        """A new agent at temperature 0; its id."""
        body = {"name": name, "model_id": model_id, "role_prompt": role_prompt,
                "max_tokens": max_tokens, "temperature": 0.0, "loop_guard": loop_guard}  # fmt: skip
        return int(self.post(f"/workspaces/{slug}/agents", body)["id"])

    def run(self, run_id: int) -> dict[str, Any]:
        return self.get(f"/runs/{run_id}")  # type: ignore[no-any-return]

    def wait_finished(self, run_id: int, timeout: float = 300.0) -> dict[str, Any]:
        """The run once SQL shows it finished (its ``done`` event can arrive a little before)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run["status"] in ("succeeded", "failed", "cancelled"):
                return run
            time.sleep(0.05)
        raise StackError(f"run {run_id} did not finish within {timeout:.0f}s")


def _clean_env(settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(settings)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _pump(process: subprocess.Popen[str], log: Path, lines: list[str], got: threading.Event):
    """Copy the stack's output to ``log`` (the pipe must never fill) and spot the link."""
    assert process.stdout is not None
    with log.open("a") as sink:
        for line in process.stdout:
            sink.write(line)
            sink.flush()
            lines.append(line)
            if LINK.search(line):
                got.set()
    got.set()  # the process ended: stop waiting


def _leftovers(data_dir: Path) -> list[int]:
    """Processes of ours still running with this data folder (a stack stopped mid-start leaves
    its embedded Redis and llama-server behind): found by their environment, never by name."""
    marker = f"SWITCHBOARD_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


_TICK = os.sysconf("SC_CLK_TCK")
_PARTS = (("llama-server", "model"), ("celery", "worker"), ("uvicorn", "web"),
          ("redis-server", "redis"), ("app.runtime.cli", "up"))  # fmt: skip


def part_of(pid: int) -> str:
    """Which part of the stack a process is: by its command line, or its parent's (uvicorn
    starts its workers as bare ``multiprocessing`` children)."""
    for who in (pid, _parent(pid)):
        command = Path(f"/proc/{who}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        part = next((name for marker, name in _PARTS if marker in command), None)
        if part is not None:
            return part
    return "other"


def _parent(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces): state, ppid, …"""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def cpu_seconds(data_dir: Path) -> dict[str, float]:
    """CPU seconds of each part of the stack on ``data_dir`` (processes alive now)."""
    totals: dict[str, float] = {}
    for pid in _leftovers(data_dir):
        with contextlib.suppress(OSError):
            part = part_of(pid)
            totals[part] = totals.get(part, 0.0) + process_cpu_seconds(pid)
    return totals


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) one process has used so far."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _stop(process: subprocess.Popen[str], data_dir: Path) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pid in _leftovers(data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _leftovers(data_dir):
        time.sleep(0.2)
    for pid in _leftovers(data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def stack(
    *,
    embedded_model: bool = True,
    settings: dict[str, str] | None = None,
    keep: bool = False,
    start_timeout: float = 600.0,
) -> Iterator[Stack]:
    """Start ``switchboard up`` on a fresh data folder, signed in; stop it on leaving.

    ``keep`` leaves the data folder (its ``up.log`` and ``llama-server.log``) for reading.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="sbb-", dir="/tmp"))
    port = free_loopback_port()
    env = _clean_env(
        {
            "SWITCHBOARD_DATA_DIR": str(data_dir),
            "SWITCHBOARD_PORT": str(port),
            "SWITCHBOARD_EMBEDDED_MODEL_PORT": str(free_loopback_port()),
            "SWITCHBOARD_EMBEDDED_MODEL": "true" if embedded_model else "false",
            "SWITCHBOARD_LOG_LEVEL": "warning",
            **(settings or {}),
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "app.runtime.cli", "up"],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, bufsize=1,
    )  # fmt: skip
    lines: list[str] = []
    got_link = threading.Event()
    threading.Thread(
        target=_pump, args=(process, data_dir / "up.log", lines, got_link), daemon=True
    ).start()
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=True, timeout=120)
    try:
        got_link.wait(start_timeout)
        link = next((m.group(1) for line in lines if (m := LINK.search(line))), None)
        if link is None:
            tail = "".join(lines[-20:])
            raise StackError(f"switchboard up printed no sign-in link:\n{tail}")
        _wait_for(client, "/healthz", lambda body: body.get("worker", {}).get("ok"), 120)
        client.get(link).raise_for_status()
        if not client.get("/api/v1/me").is_success:
            raise StackError("the one-time sign-in link did not sign in")
        yield Stack(process, data_dir, str(client.base_url).rstrip("/"), client, lines)
    finally:
        client.close()
        _stop(process, data_dir)
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def _wait_for(client: httpx.Client, path: str, ready: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            response = client.get(path)
            last = response.text
            if ready(response.json()):
                return
        time.sleep(0.25)
    raise StackError(f"{path} not ready within {timeout:.0f}s: {last[:500]}")


def wait_for_quiet(limit_s: float, threshold: float = 1.0) -> None:
    """Wait up to ``limit_s`` for the 1-minute load average to fall below ``threshold`` (this
    machine is shared; a benchmark started under a test suite measures the test suite)."""
    deadline = time.monotonic() + limit_s
    while os.getloadavg()[0] >= threshold and time.monotonic() < deadline:
        time.sleep(5)


def load_note() -> str:
    """The machine's load when a benchmark starts, to read its figures by."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} cores"


# --- server-sent events ---------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One SSE event and when it was received (``time.perf_counter()``)."""

    type: str
    data: dict[str, Any]
    id: str | None
    at: float


class EventParser:
    """Server-sent events, line by line, into :class:`Event` (the viewers' side)."""

    def __init__(self) -> None:
        self.type, self.data, self.id = "message", "", None

    def feed(self, line: str) -> Event | None:
        if not line:
            if not self.data:
                self.type = "message"
                return None
            event = Event(self.type, json.loads(self.data), self.id, time.perf_counter())
            self.type, self.data = "message", ""
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self.type = value
        elif name == "data":
            self.data = f"{self.data}\n{value}" if self.data else value
        elif name == "id":
            self.id = value
        return None


TERMINAL = ("done", "error")


def follow_run(client: httpx.Client, run_id: int, timeout: float = 600.0) -> list[Event]:
    """Every event of a run, until ``done`` or ``error``."""
    parser, events = EventParser(), []
    with client.stream("GET", f"/api/v1/runs/{run_id}/events", timeout=timeout) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            event = parser.feed(line)
            if event is not None:
                events.append(event)
                if event.type in TERMINAL:
                    break
    return events


async def afollow_run(
    client: httpx.AsyncClient,
    run_id: int,
    opened: asyncio.Event | None = None,
    timeout: float = 600.0,
) -> list[Event]:
    """``follow_run`` for asyncio; sets ``opened`` when the first event has arrived (the
    server has checked access and is reading the run's stream)."""
    parser, events = EventParser(), []
    async with client.stream("GET", f"/api/v1/runs/{run_id}/events", timeout=timeout) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            event = parser.feed(line)
            if event is not None:
                events.append(event)
                if opened is not None:
                    opened.set()
                if event.type in TERMINAL:
                    break
    return events


def tokens_text(events: Iterable[Event]) -> str:
    """The run's text as the viewer would show it (``reset`` starts it over)."""
    parts: list[str] = []
    for event in events:
        if event.type == "reset":
            parts.clear()
        elif event.type == "token":
            parts.append(event.data.get("text", ""))
    return "".join(parts)


def first_token_at(events: Iterable[Event]) -> float | None:
    return next((e.at for e in events if e.type == "token" and e.data.get("text")), None)


def last_token_at(events: Iterable[Event]) -> float | None:
    tokens = [e.at for e in events if e.type == "token" and e.data.get("text")]
    return tokens[-1] if tokens else None


def terminal(events: list[Event]) -> Event:
    if not events or events[-1].type not in TERMINAL:
        raise StackError(f"the run's events ended without done/error: {events[-3:]}")
    return events[-1]


# --- a scripted OpenAI-compatible model server ----------------------------------------------


def words(count: int) -> list[str]:
    """``count`` chunks of one word each: "w0", " w1", " w2", …"""
    return [f"w{i}" if i == 0 else f" w{i}" for i in range(count)]


def _sse(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _chunk(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": "scripted",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip


class ScriptedModel:
    """``GET /v1/models`` names one model; ``POST /v1/chat/completions`` streams ``count``
    one-word chunks back to back (no pauses), then the finish, usage and ``[DONE]``.

    ``running()`` serves it with uvicorn in a thread of a child process of its own: in a thread
    of the benchmark's process it would share the GIL with the clients it is measured against
    (reading it directly ran at about half the speed). ``hold()`` makes the next answers wait
    after their headers until ``release()``; ``waiting`` counts answers held now and
    ``answered`` those sent in full.
    """

    MODEL = "scripted-words"

    def __init__(self, count: int) -> None:
        self.count = count
        self.port = 0
        context = multiprocessing.get_context("spawn")
        self._open = context.Event()
        self._open.set()
        self._waiting = context.Value("i", 0)
        self._answered = context.Value("i", 0)
        self._process: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    @property
    def waiting(self) -> int:
        return int(self._waiting.value)

    @property
    def answered(self) -> int:
        return int(self._answered.value)

    @contextlib.contextmanager
    def running(self) -> Iterator[ScriptedModel]:
        self.port = free_loopback_port()
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(target=_serve_scripted, args=(self,), daemon=True)
        self._process.start()
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{self.base_url}/models", timeout=1).is_success:
                        break
                if time.monotonic() > deadline or not self._process.is_alive():
                    raise StackError("the scripted model server did not start")
                time.sleep(0.05)
            yield self
        finally:
            self._process.terminate()
            self._process.join(10)

    def cpu_seconds(self) -> float:
        """CPU seconds its process has used so far."""
        return process_cpu_seconds(self._process.pid)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_process"}


class _ScriptedApp:
    """The ASGI app of a :class:`ScriptedModel`, in its child process."""

    def __init__(self, model: ScriptedModel) -> None:
        self.model = model
        chunks = [_sse(_chunk(text)) for text in words(model.count)]
        count = model.count
        usage = {"prompt_tokens": 10, "completion_tokens": count, "total_tokens": count + 10}
        tail = [_sse(_chunk(finish="length")),
                _sse({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "choices": [],
                      "usage": usage}),
                b"data: [DONE]\n\n"]  # fmt: skip
        self.body = chunks + tail
        self.models = json.dumps({"object": "list", "data": [
            {"id": model.MODEL, "object": "model", "owned_by": "bench",
             "meta": {"n_ctx_train": 32768}}]}).encode()  # fmt: skip

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        if scope["path"] == "/v1/models":
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": self.models})
            return
        if scope["path"] != "/v1/chat/completions":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"not found"})
            return
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        model = self.model
        if not model._open.is_set():
            with model._waiting.get_lock():
                model._waiting.value += 1
            await asyncio.get_running_loop().run_in_executor(None, model._open.wait)
            with model._waiting.get_lock():
                model._waiting.value -= 1
        for data in self.body:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        with model._answered.get_lock():
            model._answered.value += 1


def _serve_scripted(model: ScriptedModel) -> None:
    config = uvicorn.Config(
        _ScriptedApp(model), host="127.0.0.1", port=model.port, http="h11", loop="asyncio",
        lifespan="off", log_config=None, access_log=False, timeout_graceful_shutdown=1,
    )  # fmt: skip
    uvicorn.Server(config).run()


# --- llama-server's log ---------------------------------------------------------------------

_LOG_TIME = re.compile(r"^(\d+)\.(\d+)\.(\d+)\.(\d+) ")
_SLOT = re.compile(r"\bid\s+(\d+) \| task (-?\d+) \| (.*)$")


@dataclass
class SlotTask:
    """One request as llama-server's log tells it: the slot it ran on, why that slot, how many
    prompt tokens it evaluated (the rest came from the slot's cache) and how long that took."""

    task: int
    slot: int
    launched_s: float  # seconds since llama-server started
    selected: str  # "LRU", or "LCP similarity 0.993 (keep 1.000)"
    evaluated: int | None = None
    prompt_eval_ms: float | None = None
    generated: int | None = None
    decode_ms: float | None = None
    notes: list[str] = field(default_factory=list)


def _log_seconds(line: str) -> float | None:
    match = _LOG_TIME.match(line)
    if match is None:
        return None
    minutes, seconds, millis, micros = (int(g) for g in match.groups())
    return minutes * 60 + seconds + millis / 1e3 + micros / 1e6


def slot_tasks(log_text: str) -> list[SlotTask]:
    """The requests in (a slice of) llama-server's log, in the order they started."""
    tasks: dict[int, SlotTask] = {}
    selection: dict[int, str] = {}
    for line in log_text.splitlines():
        match = _SLOT.search(line)
        if match is None:
            continue
        slot, task, text = int(match.group(1)), int(match.group(2)), match.group(3)
        if text.startswith("selected slot by"):
            how = text.removeprefix("selected slot by ")
            if sim := re.search(r"f_sim_best = ([\d.]+).*f_keep = ([\d.]+)", how):
                how = f"LCP similarity {sim.group(1)} (keep {sim.group(2)})"
            selection[slot] = how.split(",")[0] if how.startswith("LRU") else how
        elif text.startswith("processing task"):
            tasks[task] = SlotTask(task, slot, _log_seconds(line) or 0.0, selection.pop(slot, "?"))
        elif task in tasks:
            found = tasks[task]
            if prompt := re.search(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens", text):
                found.prompt_eval_ms, found.evaluated = float(prompt.group(1)), int(prompt.group(2))
            elif decode := re.search(r"^\s*eval time =\s*([\d.]+) ms /\s*(\d+) tokens", text):
                found.decode_ms, found.generated = float(decode.group(1)), int(decode.group(2))
            elif "n_past" in text or "cache" in text:
                found.notes.append(text.strip())
    return list(tasks.values())


class LlamaLog:
    """Reads what llama-server appended to its log since the last ``new()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new(self) -> list[SlotTask]:
        time.sleep(0.05)  # the log line of a request's end follows its last byte
        with self.path.open("rb") as log:
            log.seek(self.offset)
            data = log.read()
        self.offset += len(data)
        return slot_tasks(data.decode(errors="replace"))
