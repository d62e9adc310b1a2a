"""The ``switchboard`` command as a newcomer runs it: real processes, real ports."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
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


def test_up_starts_everything_signs_in_with_one_click_and_stops_on_ctrl_c(data_dir):
    port = free_port()
    process = subprocess.Popen(
        [*SWITCHBOARD, "up"], env=clean_env(data_dir, port), cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output: list[str] = []
    try:
        link = None
        deadline = time.monotonic() + 60
        while link is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "switchboard up exited early:\n" + "".join(output)
            output.append(line)
            found = re.search(rf"http://127\.0\.0\.1:{port}/signin/link/\S+", line)
            link = found.group(0) if found else None
        assert link, "no sign-in link printed"
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


CONSOLE_LINE = re.compile(r"^\d\d:\d\d:\d\d (web|worker|model|redis|up)\s* \| ")


def test_the_console_is_quiet_one_format_and_ends_with_the_link(data_dir):
    port = free_port()
    env = clean_env(data_dir, port, SWITCHBOARD_EMBEDDED_MODEL="false")
    process = subprocess.Popen(
        [*SWITCHBOARD, "up"], env=env, cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output: list[str] = []
    try:
        link = None
        deadline = time.monotonic() + 90
        while link is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "switchboard up exited early:\n" + "".join(output)
            output.append(line)
            found = re.search(rf"http://127\.0\.0\.1:{port}/signin/link/\S+", line)
            link = found.group(0) if found else None
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
