"""Structured logs: with SWITCHBOARD_LOG_FORMAT=json every line is one JSON object, and every
line about a run names the run, its task and its workspace."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.paths import PROJECT_ROOT
from app.redis_conn import WORKER_HEARTBEAT_PREFIX, connect
from tests.engine_helpers import CHAT, by_system_prompt, start_task, wait_for_runs
from tests.factories import make_agent, make_model, make_user, make_workspace, sign_in


def json_lines(text: str) -> list[dict]:
    """Every line of ``text`` as a JSON object; fails on the first line that is not one."""
    parsed = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            fields = json.loads(line)
        except ValueError:
            pytest.fail(f"line {number} is not JSON: {line!r}")
        assert isinstance(fields, dict), f"line {number} is not a JSON object: {line!r}"
        parsed.append(fields)
    return parsed


@pytest.fixture
def root_logger():
    """The root logger's handlers and level as they were, after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def json_worker(no_worker, tmp_path: Path):
    """A real Celery worker logging JSON at INFO, in the environment ``switchboard up`` gives
    it (app/runtime/cli.py); its stdout and stderr go to one file."""
    from app.runtime.console import QUIET_WARNINGS

    output = tmp_path / "worker.log"
    env = {**os.environ, "SWITCHBOARD_LOG_FORMAT": "json", "SWITCHBOARD_LOG_LEVEL": "info",
           "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": QUIET_WARNINGS}  # fmt: skip
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "--app", "workers.celery_app", "--quiet",
                "worker", "--concurrency", "2", "--loglevel", "INFO",
                "--hostname", "jsonlogs@%h", "--without-mingle", "--without-gossip",
            ],
            cwd=PROJECT_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    redis = connect(env["SWITCHBOARD_REDIS_URL"])
    deadline = time.monotonic() + 60
    while not any(redis.scan_iter(match=f"{WORKER_HEARTBEAT_PREFIX}*jsonlogs@*")):
        assert process.poll() is None, output.read_text()
        assert time.monotonic() < deadline, "the worker sent no heartbeat"
        time.sleep(0.1)
    try:
        yield process, output
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_a_workers_every_line_is_json_and_names_the_run_task_and_workspace(
    client, session, model_server, json_worker
):
    _, output = json_worker
    user = make_user(session)
    sign_in(client, session, user)
    model = make_model(session, base_url=model_server.base_url)
    model_server.on(CHAT, by_system_prompt)
    expected = {}
    # Two workspaces, one after the other: the second run's lines must not carry the first's.
    for name in ("First space", "Second space"):
        workspace = make_workspace(session, owner=user, name=name)
        agent = make_agent(session, workspace=workspace, model=model, name="Coder")
        task = start_task(client, workspace, [agent])
        runs = wait_for_runs(client, task["id"], 1)
        assert [r["status"] for r in runs] == ["succeeded"]
        expected[runs[0]["id"]] = {
            "run_id": runs[0]["id"], "task_id": task["id"], "workspace_id": workspace.id,
        }  # fmt: skip

    # Celery logs each task's outcome once its body has returned: wait for both (every record
    # is flushed as it is written). Celery's shutdown banner is not a log record (it writes
    # it to the file descriptor itself), so the worker is read while it still runs.
    deadline = time.monotonic() + 30
    while output.read_text().count("succeeded in") < 2:
        assert time.monotonic() < deadline, output.read_text()
        time.sleep(0.1)
    lines = json_lines(output.read_text())

    assert lines, "the worker logged nothing"
    for fields in lines:
        assert {"time", "level", "logger", "event", "pid"} <= fields.keys(), fields
    finished = [f for f in lines if f["logger"] == "switchboard.runs"]
    assert len(finished) == 2, finished
    for fields in finished:
        ids = expected[fields["run_id"]]
        assert {key: fields.get(key) for key in ids} == ids, fields
        assert fields["event"].startswith(f"run {ids['run_id']} succeeded")
    # Celery's own lines from inside the task (its outcome) carry the run too.
    about_runs = [f for f in lines if "run_id" in f]
    assert len(about_runs) > len(finished)
    for fields in about_runs:
        ids = expected[fields["run_id"]]
        assert {key: fields.get(key) for key in ids} == ids, fields


def test_an_exception_is_one_line_and_unbound_lines_name_no_run(capsys, root_logger, monkeypatch):
    from app import logs

    monkeypatch.setattr(logs, "_configured_format", lambda: "json")
    logs.configure("info", "json")
    logs.bind_run(7)  # the test database has no run 7: the run id alone
    logging.getLogger("switchboard.test").warning("about run 7")
    logs.unbind_run()
    try:
        raise ValueError("broken\nover two lines")
    except ValueError:
        logging.getLogger("switchboard.test").exception("no run")
    logging.getLogger("app.engine.runner").warning("run %s: heartbeat failed", 9)
    root_logger.handlers.clear()
    first, second, third = json_lines(capsys.readouterr().err)
    assert (first["run_id"], first["event"], first["level"]) == (7, "about run 7", "warning")
    assert "run_id" not in second
    assert "ValueError: broken\nover two lines" in second["exception"]
    assert (third["run_id"], third["logger"]) == (9, "app.engine.runner")


def test_switchboard_up_relays_every_part_as_json(monkeypatch):
    from app.runtime import console

    monkeypatch.setattr(console, "_format", "json")
    child = json.dumps({"event": "started", "level": "info", "run_id": 3})
    relayed = json.loads(console.prefixed("worker", child))
    assert relayed == {"event": "started", "level": "info", "run_id": 3, "process": "worker"}
    wrapped = json.loads(console.prefixed("redis", "Ready to accept connections tcp\n"))
    assert (wrapped["process"], wrapped["event"]) == ("redis", "Ready to accept connections tcp")


def test_the_web_servers_log_config_writes_json(capsys, root_logger):
    from app.runtime import console

    logging.config.dictConfig(console.uvicorn_log_config("info", "json"))
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    root_logger.handlers.clear()
    (line,) = json_lines(capsys.readouterr().err)
    assert (line["logger"], line["event"]) == ("uvicorn.error", "Started server process [42]")


def test_switchboard_up_writes_only_json_lines(tmp_path: Path):
    """Every part `up` starts, and `up` itself, from start-up to Ctrl-C: one JSON object per
    line, each naming its part; the sign-in link is in one of them."""
    import signal

    import httpx

    from tests.test_cli import clean_env, free_port, read_until_link, start_up

    port = free_port()
    env = clean_env(tmp_path, port, SWITCHBOARD_EMBEDDED_MODEL="false",
                    SWITCHBOARD_LOG_FORMAT="json", SWITCHBOARD_LOG_LEVEL="info")  # fmt: skip
    process = start_up(env)
    assert process.stdout is not None
    output: list[str] = []
    try:
        link = read_until_link(process, port, output, timeout=90)
        assert link, "no sign-in link printed:\n" + "".join(output)
        # 503 without a model: logged as an access line either way.
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code in (200, 503)
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=120)
    lines = json_lines("".join(output) + rest)
    parts = {fields.get("process") for fields in lines}
    assert {"up", "web", "worker", "beat"} <= parts, parts
    assert all("event" in fields and "time" in fields for fields in lines)
    # uvicorn's own lines came through the web process's JSON formatter, not wrapped text.
    assert any(f["process"] == "web" and f.get("logger", "").startswith("uvicorn") for f in lines)
    assert process.returncode == 0
