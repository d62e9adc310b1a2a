"""Checks end to end: a real web app (TestClient), real Celery workers — the run worker and a
checker on the ``checks`` queue — the real bubblewrap sandbox, and a scripted model server that
writes code and tests. Delivery: a killed checker's check runs again and records one result;
cancel; a sandbox that cannot start ends the check ``unavailable`` with nothing run."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

import psutil
import pytest
from sqlmodel import Session, select

from app.db import get_engine
from app.models import Check, Message
from app.redis_conn import get_redis
from tests.engine_helpers import CHAT, start_task, wait_for_runs
from tests.scripted_server import answer
from tests.worker_process import WorkerProcess

CODE = "Here it is:\n\n```python\ndef add(a, b):\n    return a + b\n\nprint('sum', add(2, 3))\n```"
BUGGY = "```python\ndef add(a, b):\n    return a - b\n```"
TESTS = (
    "```python\nfrom solution import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
    "def test_zero():\n    assert add(0, 0) == 0\n```"
)
FINISHED = ("passed", "failed", "error", "unavailable", "cancelled")


def agent_name(received) -> str:
    return received.json["messages"][0]["content"].removeprefix("You are ").rstrip(".")


def scripted(code: str = CODE, tests: str = TESTS):
    """Coder writes ``code`` (the fixed CODE once it has been told what failed), Tester
    ``tests``; anyone else says hello."""

    def reply(received):
        name = agent_name(received)
        if name == "Coder":
            told = any("Checks:" in m["content"] for m in received.json["messages"])
            return answer(CODE if told else code)
        if name == "Tester":
            return answer(tests)
        return answer("hello")

    return reply


def wait_check(client, check_id: int, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/api/v1/checks/{check_id}")
        assert response.status_code == 200, response.text
        check = response.json()
        if check["status"] in FINISHED:
            return check
        time.sleep(0.2)
    raise AssertionError(f"check {check_id} not finished: {check}")


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def checks_of(task_id: int) -> list[Check]:
    with Session(get_engine()) as session:
        return list(session.exec(select(Check).where(Check.task_id == task_id)).all())


def message(message_id: int) -> Message:
    with Session(get_engine()) as session:
        found = session.get(Message, message_id)
        assert found is not None
        return found


def coder_answer(client, team, model_server, code: str = CODE) -> tuple[dict, int]:
    workspace, agents = team
    model_server.on(CHAT, scripted(code))
    task = start_task(client, workspace, agents[:1], brief="Write add(a, b).")
    runs = wait_for_runs(client, task["id"], 1)
    assert runs[0]["status"] == "succeeded", runs
    return task, runs[0]["output_message_id"]


def test_run_puts_an_answers_code_through_the_sandbox_and_records_a_check(
    client, team, model_server, checker
):
    task, answer_id = coder_answer(client, team, model_server)

    response = client.post(f"/api/v1/messages/{answer_id}/checks")
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "queued"
    check = wait_check(client, response.json()["id"])

    assert check["status"] == "passed", check
    assert check["exit_code"] == 0
    assert "sum 5" in check["output"]
    assert check["tests_passed"] is None  # a script, not tests
    assert check["attempts"] == 1 and check["duration_s"] is not None
    node = message(check["message_id"])  # the check is a node of the tree, under the answer
    assert node.parent_id == answer_id
    assert node.content == "Checks: the code ran, exit code 0."


def test_a_testers_answer_is_run_against_the_code_it_was_handed(
    client, team, model_server, checker
):
    _, agents = team
    task, answer_id = coder_answer(client, team, model_server, code=BUGGY)

    response = client.post(
        f"/api/v1/messages/{answer_id}/handoffs",
        json={"agent_id": agents[1].id, "instruction": "Test this."},
    )
    assert response.status_code == 201, response.text
    tester_run = response.json()["runs"][0]
    wait_for_runs(client, task["id"], 2)
    wait_until(lambda: checks_of(task["id"]), 30, "the automatic check")
    (created,) = checks_of(task["id"])
    check = wait_check(client, created.id)

    assert check["code_message_id"] == answer_id
    assert check["test_message_id"] == tester_run["output_message_id"]
    assert check["status"] == "failed", check
    assert (check["tests_passed"], check["tests_failed"], check["tests_errors"]) == (1, 1, 0)
    (failure,) = check["failures"]
    assert failure["name"].endswith("test_add")
    assert "assert" in failure["message"]
    node = message(check["message_id"])
    assert node.parent_id == tester_run["output_message_id"]
    assert node.content.startswith("Checks: 1 of 2 passed.\n")
    assert "test_add" in node.content

    page = client.get(f"/t/{task['id']}?at={check['message_id']}")
    assert page.status_code == 200
    assert f'id="check-{check["id"]}-status"' in page.text
    assert "✗ 1/2" in page.text


def test_a_hand_off_whose_answer_holds_no_tests_is_not_checked(client, team, model_server, checker):
    _, agents = team
    task, answer_id = coder_answer(client, team, model_server)
    model_server.on(CHAT, lambda received: answer("Looks fine to me."))
    client.post(
        f"/api/v1/messages/{answer_id}/handoffs",
        json={"agent_id": agents[2].id, "instruction": "Review this."},
    )
    runs = wait_for_runs(client, task["id"], 2)
    assert all(run["status"] == "succeeded" for run in runs)
    assert checks_of(task["id"]) == []  # decided inside the run's own task, before it acked


def test_a_pipeline_loops_until_its_checks_pass(client, team, model_server, checker):
    workspace, agents = team
    coder, tester = agents[0], agents[1]
    model_server.on(CHAT, scripted(code=BUGGY))
    response = client.post(
        f"/api/v1/workspaces/{workspace.slug}/pipelines",
        json={
            "name": "write, test, fix",
            "steps": [
                {"agent_id": coder.id, "instruction": ""},
                {"agent_id": tester.id, "instruction": "Test this."},
                {"agent_id": coder.id, "instruction": "Fix the code."},
            ],
            "max_rounds": 4,
            "run_checks": True,
            "stop_when_checks_pass": True,
        },
    )
    assert response.status_code == 201, response.text
    pipeline = response.json()
    assert pipeline["run_checks"] and pipeline["stop_when_checks_pass"]
    task = client.post(
        f"/api/v1/workspaces/{workspace.slug}/tasks", json={"title": "add", "brief": "Write add."}
    ).json()
    first = client.post(
        f"/api/v1/tasks/{task['id']}/messages",
        json={"content": "Write add(a, b).", "agent_ids": [coder.id]},
    ).json()
    wait_for_runs(client, task["id"], 1)  # an answer outside the pipeline, with no check
    started = client.post(
        f"/api/v1/pipelines/{pipeline['id']}/runs", json={"message_id": first["message"]["id"]}
    )
    assert started.status_code == 201, started.text

    def two_checks_done() -> bool:
        found = checks_of(task["id"])
        return len(found) == 2 and all(c.status in FINISHED for c in found)

    wait_until(two_checks_done, 120, "two checks")
    first, second = sorted(checks_of(task["id"]), key=lambda c: c.id)
    assert (first.status, first.tests_passed, first.tests_failed) == ("failed", 1, 1)
    assert (second.status, second.tests_passed, second.tests_failed) == ("passed", 2, 0)
    runs = [r for r in wait_for_runs(client, task["id"], 5) if r["pipeline_id"]]
    # Coder, Tester, Coder fixes, Tester — then the pipeline stops: its checks passed.
    assert [r["agent_id"] for r in runs] == [coder.id, tester.id, coder.id, tester.id]
    assert all(r["status"] == "succeeded" for r in runs)
    # The fixer was handed the failed check: its context held the failure.
    fix_request = [
        r.json
        for r in model_server.received
        if r.path == CHAT and any("Fix the code." in m["content"] for m in r.json["messages"])
    ][0]
    told = [m["content"] for m in fix_request["messages"] if m["content"].startswith("Checks:")]
    assert told and told[0].startswith("Checks: 1 of 2 passed.") and "test_add" in told[0]
    assert not message(second.message_id).content.startswith("Checks: not")
    # Nothing was handed on after the green check (once every delivery is acknowledged).
    redis = get_redis()
    wait_until(lambda: redis.hlen("unacked") == 0, 60, "every delivery")
    with Session(get_engine()) as session:
        assert not session.exec(
            select(Message.id).where(Message.parent_id == second.message_id)
        ).first()


def test_cancelling_a_running_check_ends_it_and_its_result_is_discarded(
    client, team, model_server, checker
):
    slow = "```python\nimport time\ntime.sleep(3)\nprint('finished')\n```"
    task, answer_id = coder_answer(client, team, model_server, code=slow)
    check_id = client.post(f"/api/v1/messages/{answer_id}/checks").json()["id"]
    wait_until(
        lambda: client.get(f"/api/v1/checks/{check_id}").json()["status"] == "running",
        60,
        "the check to start",
    )

    response = client.post(f"/api/v1/checks/{check_id}/cancel")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    # The checker finishes its delivery (the message leaves Redis's unacked set), and its
    # result does not replace the cancel.
    redis = get_redis()
    wait_until(lambda: redis.hlen("unacked") == 0 and redis.llen("checks") == 0, 60, "the delivery")
    check = client.get(f"/api/v1/checks/{check_id}").json()
    assert check["status"] == "cancelled" and check["output"] == ""
    assert message(check["message_id"]).content == "Checks: cancelled. Cancelled."
    again = client.post(f"/api/v1/checks/{check_id}/cancel")
    assert again.status_code == 409 and "cancelled already" in again.json()["detail"]


def test_a_sandbox_that_cannot_start_ends_the_check_unavailable_and_runs_nothing(
    client, team, model_server, no_checker
):
    task, answer_id = coder_answer(client, team, model_server)
    broken = WorkerProcess(
        name="nobwrap", concurrency=1, queues=["checks"],
        env={"SWITCHBOARD_BWRAP": "/nonexistent/bwrap"},
    )  # fmt: skip
    broken.start()
    try:
        check_id = client.post(f"/api/v1/messages/{answer_id}/checks").json()["id"]
        check = wait_check(client, check_id)
    finally:
        broken.stop()

    assert check["status"] == "unavailable"
    assert "/nonexistent/bwrap" in check["reason"]
    assert "To enable checks, install bubblewrap" in check["reason"]
    assert check["exit_code"] is None and check["output"] == ""  # nothing ran
    assert message(check["message_id"]).content.startswith("Checks: unavailable.")


def test_a_killed_checkers_check_runs_again_and_records_one_result(
    client, team, model_server, no_checker
):
    slow = "```python\nimport time\ntime.sleep(2)\nprint('finished')\n```"
    task, answer_id = coder_answer(client, team, model_server, code=slow)
    env = {"SWITCHBOARD_CHECK_WALL_SECONDS": "5"}  # a lease of 15 s
    first = WorkerProcess(name="checker-a", concurrency=1, queues=["checks"], env=env).start()
    check_id = client.post(f"/api/v1/messages/{answer_id}/checks").json()["id"]
    wait_until(
        lambda: client.get(f"/api/v1/checks/{check_id}").json()["status"] == "running",
        60,
        "the check to start",
    )
    first.kill()  # SIGKILL, the worker and its pool: the sandbox dies with its parent

    with Session(get_engine()) as session:
        lost = session.get(Check, check_id)
        assert lost is not None and lost.status == "running" and lost.attempts == 1
        lease_until = lost.lease_until
    assert lease_until is not None
    wait_until(lambda: datetime.now(UTC) > lease_until, 30, "the lease to run out")
    second = WorkerProcess(name="checker-b", concurrency=1, queues=["checks"], env=env).start()
    try:
        check = wait_check(client, check_id)  # its start-up sweep sends the check again
    finally:
        second.stop()

    assert check["status"] == "passed", check
    assert check["attempts"] == 2
    assert "finished" in check["output"]
    with Session(get_engine()) as session:
        nodes = session.exec(select(Message).where(Message.parent_id == answer_id)).all()
    assert [n.id for n in nodes] == [check["message_id"]]  # one check, one summary


@pytest.mark.parametrize(
    ("target", "body", "status", "detail"),
    [
        ("question", None, 400, "must be an agent's answer"),
        ("prose", None, 400, "holds no Python code"),
        ("answer", {"test_message_id": 999_999}, 404, "No such test answer"),
        ("missing", None, 404, "No such message"),
    ],
)
def test_bad_check_requests_get_a_clear_answer_and_change_nothing(
    client, team, model_server, no_checker, target, body, status, detail
):
    task, answer_id = coder_answer(client, team, model_server)
    workspace, agents = team
    model_server.on(CHAT, lambda received: answer("No code here, just words."))
    prose_task = start_task(client, workspace, agents[2:3])
    prose = wait_for_runs(client, prose_task["id"], 1)[0]["output_message_id"]
    ids = {
        "question": client.get(f"/api/v1/tasks/{task['id']}").json()["messages"][0]["id"],
        "prose": prose,
        "answer": answer_id,
        "missing": 999_999,
    }

    response = client.post(f"/api/v1/messages/{ids[target]}/checks", json=body)

    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]
    assert checks_of(task["id"]) == [] and checks_of(prose_task["id"]) == []


def test_run_button_and_check_card_on_the_task_page(client, team, model_server, checker):
    task, answer_id = coder_answer(client, team, model_server)
    # "Run check" sits in the answer's row of compact actions.
    page = client.get(f"/t/{task['id']}?at={answer_id}")
    assert f'action="/m/{answer_id}/checks"' in page.text

    response = client.post(f"/m/{answer_id}/checks", follow_redirects=False)

    assert response.status_code == 303
    check = checks_of(task["id"])[0]
    assert response.headers["location"] == f"/t/{task['id']}?at={check.message_id}"
    page = client.get(response.headers["location"])
    if check.status in ("queued", "running"):  # polls its own fragment while it runs
        assert f'hx-get="/checks/{check.id}/card"' in page.text
    wait_check(client, check.id)
    card = client.get(f"/checks/{check.id}/card")
    assert card.status_code == 200
    assert "✓ ran" in card.text and "hx-trigger" not in card.text  # finished: polling stops
    assert "sum 5" in card.text


def test_checks_sandbox_settings_reach_the_worker():
    from app.config import Settings
    from app.engine.checks import check_lease, limits_from

    settings = Settings(  # type: ignore[call-arg]
        check_cpu_seconds=3, check_memory_mb=128, check_processes=9, check_file_size_mb=2,
        check_open_files=64, check_wall_seconds=7, check_output_bytes=5000,
    )  # fmt: skip
    limits = limits_from(settings)
    assert (limits.cpu_seconds, limits.memory_mb, limits.processes) == (3, 128, 9)
    assert (limits.file_size_mb, limits.open_files, limits.wall_seconds) == (2, 64, 7)
    assert limits.output_bytes == 5000
    assert check_lease(settings).total_seconds() == 17
    assert os.environ.get("SWITCHBOARD_BWRAP") is None  # the suite's checker uses the real one


def test_compare_shows_each_columns_latest_check_and_the_board_the_best(
    client, team, model_server, checker
):
    workspace, agents = team
    coder, tester, explorer = agents[0], agents[1], agents[3]

    def reply(received):
        name = agent_name(received)
        return answer({"Coder": BUGGY, "Explorer": CODE, "Tester": TESTS}.get(name, "hello"))

    model_server.on(CHAT, reply)
    task = start_task(client, workspace, [coder, explorer], brief="Write add(a, b).")
    runs = wait_for_runs(client, task["id"], 2)
    answers = [r["output_message_id"] for r in runs]
    for answer_id in answers:
        response = client.post(
            f"/api/v1/messages/{answer_id}/handoffs",
            json={"agent_id": tester.id, "instruction": "Test this."},
        )
        assert response.status_code == 201, response.text
    wait_for_runs(client, task["id"], 4)
    wait_until(lambda: len(checks_of(task["id"])) == 2, 30, "two automatic checks")
    for check in checks_of(task["id"]):
        wait_check(client, check.id)
    comparison = client.post("/api/v1/comparisons", json={"message_ids": answers})
    assert comparison.status_code == 201, comparison.text

    page = client.get(f"/c/{comparison.json()['id']}")

    assert page.status_code == 200
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page.text, "html.parser")
    assert soup.select_one("#column-A-check").get_text(strip=True) == "✗ 1/2"
    assert soup.select_one("#column-B-check").get_text(strip=True) == "✓ 2/2"
    board = BeautifulSoup(client.get(f"/w/{workspace.slug}").text, "html.parser")
    assert board.select_one(f"#task-{task['id']}-check").get_text(strip=True) == "✓ 2/2"


def test_a_checker_consumes_the_checks_queue_and_no_endpoints(client, team, worker, checker):
    from app.redis_conn import CHECKER_HEARTBEAT_PREFIX, WORKER_HEARTBEAT_PREFIX
    from workers.celery_app import celery_app

    redis = get_redis()

    def keys() -> list[str]:  # the suite empties Redis after each test; the next beat refills
        return list(redis.scan_iter(f"{CHECKER_HEARTBEAT_PREFIX}checker@*"))

    wait_until(keys, 30, "the checker's heartbeat")
    (key,) = keys()
    # A checker is not a worker that carries out runs: health does not count it as one.
    assert not list(redis.scan_iter(f"{WORKER_HEARTBEAT_PREFIX}checker@*"))
    assert not any(
        w.startswith("checker@") for w in client.get("/healthz").json()["worker"]["workers"]
    )
    endpoint_known = time.time()  # the team's endpoint exists from here on
    # Two beats later the checker has looked at the endpoints at least once (each beat
    # refreshes the key and then follows new endpoints, unless it is a checker).
    wait_until(lambda: float(redis.get(key) or 0) > endpoint_known + 5, 30, "two beats")

    queues = celery_app.control.inspect(timeout=5).active_queues() or {}

    checker_queues = [q["name"] for name, qs in queues.items() if name.startswith("checker@")
                      for q in qs]  # fmt: skip
    worker_queues = [q["name"] for name, qs in queues.items() if name.startswith("suite@")
                     for q in qs]  # fmt: skip
    assert checker_queues == ["checks"]
    assert any(q.startswith("runs.endpoint.") for q in worker_queues)  # the run worker does
    assert "checks" not in worker_queues


def test_a_check_delivered_twice_records_one_result(client, team, model_server, checker):
    from app.engine.dispatch import dispatch_checks
    from app.models import Event

    task, answer_id = coder_answer(client, team, model_server)
    check_id = client.post(f"/api/v1/messages/{answer_id}/checks").json()["id"]

    assert dispatch_checks([check_id, check_id])  # a duplicate, and a redelivery, at once

    check = wait_check(client, check_id)
    redis = get_redis()
    wait_until(
        lambda: redis.hlen("unacked") == 0 and redis.llen("checks") == 0, 60, "every delivery"
    )
    assert check["status"] == "passed" and check["attempts"] == 1
    with Session(get_engine()) as session:
        verdicts = session.exec(
            select(Event.verb).where(Event.subject_type == "check", Event.subject_id == check_id)
        ).all()
    assert sorted(verdicts) == ["passed", "queued"]


def processes_with(marker: str) -> list[psutil.Process]:
    """Every process on this machine with ``marker`` in its argv."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(marker in part for part in process.info["cmdline"] or []):
                found.append(process)
    return found


def endless(marker: str) -> str:
    """An answer whose code starts a child and then loops for ever, both carrying ``marker``;
    the loop prints "looping" once both run."""
    return (
        "```python\nimport os, subprocess, sys\n"
        'loop = "import time\\nwhile True: time.sleep(0.05)"\n'
        f'subprocess.Popen([sys.executable, "-c", loop, "{marker}"])\n'
        "said = \"print('looping', flush=True)\\n\"\n"
        f'os.execv(sys.executable, [sys.executable, "-c", said + loop, "{marker}"])\n```'
    )


def test_cancelling_a_running_check_kills_its_sandbox_and_every_process_in_it(
    client, team, model_server, no_checker
):
    marker = f"sbx{uuid.uuid4().hex[:12]}"
    task, answer_id = coder_answer(client, team, model_server, code=endless(marker))
    # A wall-clock limit far beyond this test: only the cancel can stop the loop in time.
    env = {"SWITCHBOARD_CHECK_WALL_SECONDS": "600"}
    checker = WorkerProcess(name="checker-long", concurrency=1, queues=["checks"], env=env)
    checker.start()
    try:
        check_id = client.post(f"/api/v1/messages/{answer_id}/checks").json()["id"]
        # The barrier: the check's own output, published while it runs.
        wait_until(
            lambda: "looping" in client.get(f"/api/v1/checks/{check_id}").json()["output"],
            60,
            "the loop to run",
        )
        assert len(processes_with(marker)) == 2

        response = client.post(f"/api/v1/checks/{check_id}/cancel")

        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"
        wait_until(lambda: processes_with(marker) == [], 60, "the sandbox to be killed")
        redis = get_redis()
        wait_until(lambda: redis.hlen("unacked") == 0, 60, "the delivery to end")
    finally:
        checker.stop()
    check = client.get(f"/api/v1/checks/{check_id}").json()
    assert check["status"] == "cancelled" and check["reason"] == "Cancelled."
    assert check["exit_code"] is None  # the sandbox's own verdict was discarded
    assert message(check["message_id"]).content == "Checks: cancelled. Cancelled."


def test_a_check_whose_worker_process_dies_is_taken_over_at_once_and_records_one_result(
    client, team, model_server, checker
):
    code = (
        "```python\nimport time\nprint('started', flush=True)\ntime.sleep(3)\n"
        "print('finished')\n```"
    )
    task, answer_id = coder_answer(client, team, model_server, code=code)
    check_id = client.post(f"/api/v1/messages/{answer_id}/checks").json()["id"]
    wait_until(
        lambda: "started" in client.get(f"/api/v1/checks/{check_id}").json()["output"],
        60,
        "the check to start",
    )
    with Session(get_engine()) as session:
        running = session.get(Check, check_id)
        assert running is not None and running.claimed_by and running.attempts == 1
        holder, first_lease = running.claimed_by, running.lease_until
    assert first_lease is not None

    os.kill(int(holder.rpartition(":")[2]), signal.SIGKILL)  # one pool process, mid-check

    check = wait_check(client, check_id)
    assert check["status"] == "passed", check
    assert check["attempts"] == 2 and "finished" in check["output"]
    with Session(get_engine()) as session:
        nodes = session.exec(select(Message).where(Message.parent_id == answer_id)).all()
        taken = session.get(Check, check_id)
    assert [n.id for n in nodes] == [check["message_id"]]
    assert taken is not None and taken.claimed_by != holder and taken.finished_at is not None
    # Redelivered (reject on worker lost) and taken over from the dead process, not after
    # its lease: it was over before that lease would have let anyone take it.
    assert taken.finished_at < first_lease


def test_a_checks_sending_is_recorded_and_the_sweeper_sends_a_lost_one_again(
    client, team, model_server, no_checker
):
    from app.config import get_settings
    from app.engine.checks import sweep_checks

    task, answer_id = coder_answer(client, team, model_server)
    check_id = client.post(f"/api/v1/messages/{answer_id}/checks").json()["id"]
    settings = get_settings()
    with Session(get_engine()) as session:
        sent = session.get(Check, check_id)
        assert sent is not None and sent.dispatched_at is not None  # in the queue, nobody took it
    assert check_id not in sweep_checks(settings=settings)

    def moved(**values) -> list[int]:
        with Session(get_engine()) as session:
            row = session.get(Check, check_id)
            for name, value in values.items():
                setattr(row, name, value)
            session.add(row)
            session.commit()
        return sweep_checks(settings=settings)

    long_ago = datetime.now(UTC) - timedelta(seconds=settings.broker_visibility_timeout + 60)
    assert check_id in moved(dispatched_at=None, queued_at=long_ago)  # never reached the broker
    assert check_id in moved(dispatched_at=long_ago)  # sent, and the message was lost
    assert check_id not in moved(dispatched_at=datetime.now(UTC))


def two_answers(client, team, model_server) -> tuple[dict, int, int, int]:
    """A task fanned out to Coder (buggy code) and Explorer (good code); Coder's answer handed
    to the Tester. The task, the two answers and the Tester's answer."""
    workspace, agents = team
    coder, tester, _, explorer = agents

    def reply(received):
        return answer({"Coder": BUGGY, "Tester": TESTS, "Explorer": CODE}[agent_name(received)])

    model_server.on(CHAT, reply)
    task = start_task(client, workspace, [coder, explorer], brief="Write add(a, b).")
    runs = wait_for_runs(client, task["id"], 2)
    by_agent = {r["agent_id"]: r["output_message_id"] for r in runs}
    handed = client.post(
        f"/api/v1/messages/{by_agent[coder.id]}/handoffs",
        json={"agent_id": tester.id, "instruction": "Test this."},
    )
    assert handed.status_code == 201, handed.text
    wait_for_runs(client, task["id"], 3)
    tests_id = handed.json()["runs"][0]["output_message_id"]
    return task, by_agent[coder.id], by_agent[explorer.id], tests_id


def test_a_testers_tests_run_against_the_answer_a_person_picks(client, team, model_server, checker):
    task, buggy_id, good_id, tests_id = two_answers(client, team, model_server)
    wait_until(lambda: checks_of(task["id"]), 30, "the automatic check")
    (automatic,) = checks_of(task["id"])
    assert wait_check(client, automatic.id)["status"] == "failed"  # against Coder's answer

    response = client.post(f"/api/v1/messages/{tests_id}/checks",
                           json={"code_message_id": good_id})  # fmt: skip

    assert response.status_code == 201, response.text
    check = wait_check(client, response.json()["id"])
    assert (check["code_message_id"], check["test_message_id"]) == (good_id, tests_id)
    assert (check["status"], check["tests_passed"], check["tests_failed"]) == ("passed", 2, 0)
    node = message(check["message_id"])
    assert node.parent_id == tests_id and node.kind == "check"
    listed = client.get(f"/api/v1/tasks/{task['id']}").json()["messages"]
    assert {m["id"]: m["kind"] for m in listed}[check["message_id"]] == "check"
    exported = client.get(f"/api/v1/tasks/{task['id']}/export?format=markdown")
    assert f"### Check result · message {check['message_id']}" in exported.text


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"code_message_id": "tests", "test_message_id": "good"}, 400, "not both"),
        ({"code_message_id": "tests"}, 400, "another answer's code"),
        ({"code_message_id": 999_999}, 404, "No such code answer"),
    ],
)
def test_bad_picks_of_the_code_to_test_are_refused_and_change_nothing(
    client, team, model_server, no_checker, body, status, detail
):
    task, buggy_id, good_id, tests_id = two_answers(client, team, model_server)
    ids = {"tests": tests_id, "good": good_id}
    before = len(checks_of(task["id"]))

    response = client.post(
        f"/api/v1/messages/{tests_id}/checks",
        json={k: ids.get(v, v) for k, v in body.items()},
    )

    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]
    assert len(checks_of(task["id"])) == before
