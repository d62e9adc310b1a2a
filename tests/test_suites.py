"""Evaluation suites end to end: a real web app (TestClient), a real Celery worker and checker
(the real sandbox), and a scripted model server whose agents answer well or badly. A suite run
puts each prompt to each agent as a normal run, every check kind passes and fails where it
should (the judge is a real run of a judge agent), a re-run shows what got better or worse,
suites import and export as YAML and JSON, results export as CSV and JSON, and bad input is
refused with nothing changed."""

from __future__ import annotations

import csv
import io
import json
import time

import yaml
from bs4 import BeautifulSoup
from sqlmodel import Session, func, select

from app.db import get_engine
from app.models import Run, Suite, SuiteResult, SuiteRun, Task
from app.services.demo import DEMO_SUITE
from tests.engine_helpers import CHAT
from tests.factories import make_model, make_user, sign_in
from tests.scripted_server import answer
from tests.worker_process import WorkerProcess

GOOD_CODE = "```python\ndef add(a, b):\n    return a + b\n```"
BAD_CODE = "```python\ndef add(a, b):\n    return a - b\n```"
GOOD_JSON = '{"ok": true}'
BAD_JSON = 'sorry, {"ok": fals'

SUITE = {
    "name": "Basics",
    "description": "Code and JSON.",
    "prompts": [
        {
            "prompt": "Write add(a, b) in Python.",
            "checks": [
                {"kind": "contains", "text": "def add"},
                {
                    "kind": "python",
                    "tests": "from solution import add\n\n\ndef test_add():\n"
                    "    assert add(2, 3) == 5\n",
                },
                {"kind": "judge", "rubric": "The function adds."},
            ],
        },
        {
            "prompt": "Give an object with ok set to true, as JSON.",
            "checks": [
                {"kind": "json", "schema": {"type": "object", "required": ["ok"]}},
                {"kind": "not_contains", "text": "sorry"},
                {"kind": "regex", "pattern": r'"ok"\s*:\s*true'},
            ],
        },
    ],
}


def scripted(answers: dict[tuple[str, int], str]):
    """Each agent's answer to each prompt (by its index); the Reviewer judges: PASS when the
    answer it is shown adds, FAIL otherwise."""

    def reply(received):
        messages = received.json["messages"]
        name = messages[0]["content"].removeprefix("You are ").rstrip(".")
        question = messages[-1]["content"]
        if name == "Reviewer":
            return answer("PASS\nIt adds." if "a + b" in question else "FAIL\nIt subtracts.")
        index = next(i for i, p in enumerate(SUITE["prompts"]) if p["prompt"] == question)
        return answer(answers[(name, index)], pause=0.01)

    return reply


FIRST = {("Coder", 0): GOOD_CODE, ("Coder", 1): GOOD_JSON,
         ("Tester", 0): BAD_CODE, ("Tester", 1): BAD_JSON}  # fmt: skip
SECOND = {("Coder", 0): BAD_CODE, ("Coder", 1): GOOD_JSON,
          ("Tester", 0): BAD_CODE, ("Tester", 1): GOOD_JSON}  # fmt: skip


def create_suite(client, workspace, document=SUITE) -> dict:
    response = client.post(f"/api/v1/workspaces/{workspace.slug}/suites", json=document)
    assert response.status_code == 201, response.text
    return response.json()


def start_run(client, suite_id: int, agents, judge) -> dict:
    response = client.post(
        f"/api/v1/suites/{suite_id}/runs",
        json={"agent_ids": [a.id for a in agents], "judge_agent_id": judge.id},
    )
    assert response.status_code == 201, response.text
    return response.json()


def wait_finished(client, suite_run_id: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/api/v1/suite-runs/{suite_run_id}")
        assert response.status_code == 200, response.text
        results = response.json()
        if results["finished"]:
            return results
        time.sleep(0.3)
    raise AssertionError(f"suite run {suite_run_id} not finished: {results}")


def cell(results: dict, prompt_index: int, agent) -> dict:
    return next(
        c for c in results["cells"]
        if c["prompt_index"] == prompt_index and c["agent_id"] == agent.id
    )  # fmt: skip


def kinds(found: dict) -> dict[str, bool | None]:
    return {f["kind"]: f["passed"] for f in found["findings"]}


def counts() -> dict[str, int]:
    with Session(get_engine()) as session:
        return {
            model.__name__: session.exec(select(func.count()).select_from(model)).one()
            for model in (Suite, SuiteRun, SuiteResult, Task, Run)
        }


def test_a_suite_run_judges_every_check_kind_and_a_rerun_shows_what_changed(
    client, team, model_server, checker
):
    workspace, agents = team
    coder, tester, reviewer = agents[0], agents[1], agents[2]
    suite = create_suite(client, workspace)
    model_server.on(CHAT, scripted(FIRST))

    started = start_run(client, suite["id"], [coder, tester], reviewer)
    assert started["queued"] is True
    assert len(started["run_ids"]) == 4  # 2 prompts × 2 agents, each a normal run
    results = wait_finished(client, started["suite_run"]["id"])

    assert kinds(cell(results, 0, coder)) == {"contains": True, "python": True, "judge": True}
    assert kinds(cell(results, 0, tester)) == {"contains": True, "python": False, "judge": False}
    assert kinds(cell(results, 1, coder)) == {"json": True, "not_contains": True, "regex": True}
    assert kinds(cell(results, 1, tester)) == {
        "json": False, "not_contains": False, "regex": False,
    }  # fmt: skip
    statuses = {(c["prompt_index"], c["agent_id"]): c["status"] for c in results["cells"]}
    assert statuses == {(0, coder.id): "passed", (1, coder.id): "passed",
                        (0, tester.id): "failed", (1, tester.id): "failed"}  # fmt: skip
    judge_reason = next(f for f in cell(results, 0, tester)["findings"] if f["kind"] == "judge")
    assert "It subtracts." in judge_reason["reason"]
    summaries = {a["name"]: a for a in results["agents"]}
    assert summaries["Coder"]["pass_rate"] == 1.0 and summaries["Tester"]["pass_rate"] == 0.0
    assert summaries["Coder"]["pass_rate_low"] < 1.0  # two prompts prove little
    assert summaries["Coder"]["median_tokens_per_second"] is not None
    assert summaries["Coder"]["median_time_to_first_token_ms"] is not None
    assert results["previous_number"] is None

    # The answer is one click away: each cell names its task and answer, a normal run.
    found = cell(results, 0, coder)
    task = client.get(f"/api/v1/tasks/{found['task_id']}").json()
    assert task["brief"] == SUITE["prompts"][0]["prompt"]
    assert [r["id"] for r in task["runs"]] == [found["run_id"]]
    assert task["runs"][0]["output_message_id"] == found["answer_message_id"]
    # Evaluation tasks (answers and judges) stay off the board.
    board = client.get(f"/w/{workspace.slug}")
    assert board.status_code == 200
    page_text = BeautifulSoup(board.text, "html.parser").get_text()
    assert "Basics · run 1" not in page_text and "Judge ·" not in page_text

    # Run 2: Coder's code breaks, Tester's JSON is fixed.
    model_server.on(CHAT, scripted(SECOND))
    again = start_run(client, suite["id"], [coder, tester], reviewer)
    assert again["suite_run"]["number"] == 2
    results = wait_finished(client, again["suite_run"]["id"])
    assert results["previous_number"] == 1
    changes = {(c["prompt_index"], c["agent_id"]): c["change"] for c in results["cells"]}
    assert changes == {(0, coder.id): "worse", (1, coder.id): None,
                       (0, tester.id): None, (1, tester.id): "better"}  # fmt: skip
    page = client.get(f"/suite-runs/{again['suite_run']['id']}")
    assert page.status_code == 200
    assert "1 better, 1 worse" in page.text
    assert f'id="change-worse-0-{coder.id}"' in page.text
    assert f'id="change-better-1-{tester.id}"' in page.text
    assert "hx-trigger" not in page.text  # finished: the grid stops asking

    # Results export: JSON records and the same as CSV.
    records = client.get(f"/api/v1/suite-runs/{again['suite_run']['id']}/results").json()
    assert len(records) == 4
    assert {(r["prompt_index"], r["agent"], r["status"]) for r in records} == {
        (0, "Coder", "failed"), (1, "Coder", "passed"),
        (0, "Tester", "failed"), (1, "Tester", "passed"),
    }  # fmt: skip
    exported = client.get(f"/api/v1/suite-runs/{again['suite_run']['id']}/results.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["prompt_index"], r["agent"], r["status"]) for r in rows] == [
        (str(r["prompt_index"]), r["agent"], r["status"]) for r in records
    ]
    assert json.loads(rows[0]["findings"]) == records[0]["findings"]

    # The leaderboard's pass rate, per agent, over both runs or one suite only.
    board = client.get(f"/api/v1/workspaces/{workspace.slug}/leaderboard?by=agent").json()
    rows_by = {r["name"]: r for r in board["rows"]}
    assert (rows_by["Coder"]["evaluated"], rows_by["Coder"]["pass_rate"]) == (4, 0.75)
    assert (rows_by["Tester"]["evaluated"], rows_by["Tester"]["pass_rate"]) == (4, 0.25)
    other = create_suite(client, workspace, {**SUITE, "name": "Never run"})
    board = client.get(
        f"/api/v1/workspaces/{workspace.slug}/leaderboard?by=agent&suite={other['id']}"
    ).json()
    assert all(r["evaluated"] == 0 and r["pass_rate"] is None for r in board["rows"])
    page = client.get(f"/w/{workspace.slug}/leaderboard?by=agent&suite={suite['id']}")
    assert page.status_code == 200 and "75 %" in page.text


def test_cancel_and_retry_a_suite_run_through_the_usual_engine(client, team, model_server):
    workspace, agents = team
    coder = agents[0]
    document = {"name": "One", "prompts": [{"prompt": SUITE["prompts"][1]["prompt"],
                                            "checks": SUITE["prompts"][1]["checks"]}]}  # fmt: skip
    suite = create_suite(client, workspace, document)
    model_server.on(CHAT, answer("slow " * 300, pause=0.05))  # still writing when cancelled
    started = client.post(f"/api/v1/suites/{suite['id']}/runs", json={"agent_ids": [coder.id]})
    assert started.status_code == 201, started.text
    suite_run_id = started.json()["suite_run"]["id"]
    cancelled = client.post(f"/api/v1/suite-runs/{suite_run_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == started.json()["run_ids"]
    results = wait_finished(client, suite_run_id)
    assert [c["status"] for c in results["cells"]] == ["cancelled"]
    assert client.post(f"/api/v1/suite-runs/{suite_run_id}/cancel").status_code == 409

    model_server.on(CHAT, scripted({("Coder", 1): GOOD_JSON}))
    retried = client.post(f"/api/v1/suite-runs/{suite_run_id}/retry")
    assert retried.status_code == 200, retried.text
    results = wait_finished(client, suite_run_id)
    assert [c["status"] for c in results["cells"]] == ["passed"]

    # Deleting the suite takes its runs' tasks with it (they would land on the board).
    assert client.delete(f"/api/v1/suites/{suite['id']}").status_code == 204
    with Session(get_engine()) as session:
        assert session.get(Task, results["cells"][0]["task_id"]) is None
        assert session.exec(select(SuiteRun)).all() == []


def test_suites_import_and_export_as_yaml_and_json(client, team):
    workspace, _ = team
    text = yaml.safe_dump(SUITE, sort_keys=False)
    imported = client.post(
        f"/api/v1/workspaces/{workspace.slug}/suites/import",
        content=text.encode(), headers={"content-type": "application/yaml"},
    )  # fmt: skip
    assert imported.status_code == 201, imported.text
    suite_id = imported.json()["id"]

    as_yaml = client.get(f"/api/v1/suites/{suite_id}/export?format=yaml")
    assert as_yaml.status_code == 200
    assert yaml.safe_load(as_yaml.text) == SUITE
    as_json = client.get(f"/api/v1/suites/{suite_id}/export?format=json")
    assert json.loads(as_json.text) == SUITE
    download = client.get(f"/suites/{suite_id}/export?format=json")
    assert "attachment" in download.headers["content-disposition"]
    assert json.loads(download.text) == SUITE

    # The JSON file imports back into another workspace's worth of name: a round trip.
    renamed = {**json.loads(as_json.text), "name": "Basics again"}
    again = client.post(
        f"/api/v1/workspaces/{workspace.slug}/suites/import", content=json.dumps(renamed)
    )
    assert again.status_code == 201, again.text
    assert client.get(f"/api/v1/suites/{again.json()['id']}").json()["prompts"] == SUITE["prompts"]

    # The page's form takes an uploaded file, too.
    uploaded = client.post(
        f"/w/{workspace.slug}/suites",
        files={"file": ("suite.yaml", yaml.safe_dump({**SUITE, "name": "Uploaded"}).encode())},
        follow_redirects=False,
    )
    assert uploaded.status_code == 303, uploaded.text
    listed = client.get(f"/api/v1/workspaces/{workspace.slug}/suites").json()
    assert [s["name"] for s in listed] == ["Basics", "Basics again", "Uploaded"]


def test_bad_suites_and_bad_runs_get_a_clear_answer_and_change_nothing(client, team):
    workspace, agents = team
    suite = create_suite(client, workspace)
    before = counts()
    base = f"/api/v1/workspaces/{workspace.slug}/suites"
    refused = [
        client.post(f"{base}/import", content=b"name: [unclosed"),
        client.post(f"{base}/import", content=b"\xff\xfe not text"),
        client.post(f"{base}/import", content=b""),
        client.post(f"{base}/import", content=b"a: &x [1]\nb: *x\n"),
        client.post(base, json={"name": "x", "prompts": [{"prompt": "p", "checks": [
            {"kind": "regex", "pattern": "(unclosed"}]}]}),  # fmt: skip
        client.post(base, json={"name": "Basics", "prompts": [{"prompt": "taken name"}]}),
        client.post(base, json=[1, 2]),
        client.put(f"/api/v1/suites/{suite['id']}", json={"name": "x", "prompts": "no"}),
        client.get(f"/api/v1/suites/{suite['id']}/export?format=xml"),
        # Runs: no agents, too many, twice the same, a stranger, a judge suite without a judge.
        client.post(f"/api/v1/suites/{suite['id']}/runs", json={"agent_ids": []}),
        client.post(f"/api/v1/suites/{suite['id']}/runs", json={"agent_ids": list(range(1, 10))}),
        client.post(f"/api/v1/suites/{suite['id']}/runs",
                    json={"agent_ids": [agents[0].id] * 2, "judge_agent_id": agents[2].id}),
        client.post(f"/api/v1/suites/{suite['id']}/runs",
                    json={"agent_ids": [999_999], "judge_agent_id": agents[2].id}),
        client.post(f"/api/v1/suites/{suite['id']}/runs", json={"agent_ids": [agents[0].id]}),
        client.post(f"/api/v1/suites/{suite['id']}/runs",
                    json={"agent_ids": [agents[0].id], "judge_agent_id": 999_999}),
        client.get("/api/v1/suites/999999"),
        client.get("/api/v1/suite-runs/999999"),
        client.get(f"/api/v1/workspaces/{workspace.slug}/leaderboard?suite=999999"),
    ]  # fmt: skip
    for response in refused:
        assert 400 <= response.status_code < 500, (response.request.url, response.text)
        assert response.json()["detail"], response.text
    assert "regular expression is wrong" in refused[4].json()["detail"]
    assert "judge" in refused[13].json()["detail"]
    page = client.post(f"/w/{workspace.slug}/suites", data={"text": "prompts: 3"})
    assert page.status_code == 400 and "is a required property" in page.text
    page = client.post(f"/suites/{suite['id']}/runs", data={"agent_ids": ["x"]})
    assert page.status_code == 400 and "Pick agents" in page.text
    assert client.get(f"/w/{workspace.slug}/leaderboard?suite=abc").status_code == 400
    assert counts() == before
    assert client.get(f"/api/v1/suites/{suite['id']}").json()["name"] == "Basics"


def test_a_viewer_reads_suites_but_cannot_change_or_run_them(client, session, team):
    from app.models import Role
    from tests.factories import add_member

    workspace, agents = team
    suite = create_suite(client, workspace)
    viewer = make_user(session)
    add_member(session, workspace=workspace, user=viewer, role=Role.viewer)
    sign_in(client, session, viewer)
    assert client.get(f"/api/v1/suites/{suite['id']}").status_code == 200
    assert client.get(f"/suites/{suite['id']}").status_code == 200
    assert client.put(f"/api/v1/suites/{suite['id']}", json=SUITE).status_code == 404
    assert client.post(f"/api/v1/suites/{suite['id']}/runs",
                       json={"agent_ids": [agents[0].id]}).status_code == 404  # fmt: skip
    assert client.delete(f"/api/v1/suites/{suite['id']}").status_code == 404


def test_the_demo_suite_runs_on_the_bundled_model(
    client, session, no_worker, checker, llama_server
):
    model = make_model(session, base_url=llama_server.base_url, api_key=llama_server.api_key,
                       server_kind="llama.cpp")  # fmt: skip
    model.detected_prompt_format = "transcript"  # what discovery finds for the bundled model
    session.add(model)
    session.commit()
    # A worker of its own, with the default run time limit rather than the tests' 60 s: the
    # bundled model on a shared, loaded CPU writes a token or two a second.
    worker = WorkerProcess(name="bundled", concurrency=2, env={
        "SWITCHBOARD_RUN_TIME_LIMIT": "600", "SWITCHBOARD_BROKER_VISIBILITY_TIMEOUT": "700",
    })  # fmt: skip
    worker.start()
    try:
        _run_the_demo_suite(client, session)
    finally:
        worker.stop()


def _run_the_demo_suite(client, session) -> None:
    sign_in(client, session, make_user(session))
    landed = client.post("/workspaces/demo", follow_redirects=False)
    assert landed.status_code == 303
    slug = client.get("/api/v1/workspaces").json()[0]["slug"]
    (suite,) = client.get(f"/api/v1/workspaces/{slug}/suites").json()
    assert suite["name"] == DEMO_SUITE["name"]
    agents = {a["name"]: a["id"] for a in client.get(f"/api/v1/workspaces/{slug}/agents").json()}
    # The demo task's own fan-out is stopped so the suite has the model to itself, and answers
    # are kept short (the answers these prompts want are a few dozen tokens at most).
    demo_task = client.get(landed.headers["location"].replace("/t/", "/api/v1/tasks/")).json()
    for run in demo_task["runs"]:
        client.post(f"/api/v1/runs/{run['id']}/cancel")
    patched = client.patch(f"/api/v1/agents/{agents['Coder']}", json={"max_tokens": 96})
    assert patched.status_code == 200, patched.text

    started = client.post(f"/api/v1/suites/{suite['id']}/runs",
                          json={"agent_ids": [agents["Coder"]]})  # fmt: skip
    assert started.status_code == 201, started.text
    results = wait_finished(client, started.json()["suite_run"]["id"], timeout=600)

    # Out of the box every prompt is answered and decided: the text checks, and the Python
    # check in the sandbox (or, with no code in the answer, a fail saying so).
    by_prompt = {c["prompt_index"]: c for c in results["cells"]}
    runs = [client.get(f"/api/v1/runs/{c['run_id']}").json() for c in results["cells"]]
    assert {r["status"] for r in runs} == {"succeeded"}, [r["error"] for r in runs]
    assert sorted(by_prompt) == [0, 1, 2, 3]
    assert {c["status"] for c in by_prompt.values()} <= {"passed", "failed"}, results
    python = next((f for f in by_prompt[0]["findings"] if f["kind"] == "python"), None)
    assert python is not None and python["passed"] in (True, False), by_prompt[0]
    (coder,) = results["agents"]
    assert coder["passed"] + coder["failed"] == 4
    assert coder["median_tokens_per_second"] and coder["median_time_to_first_token_ms"]
    print("demo suite on the bundled model:", {i: c["status"] for i, c in by_prompt.items()},
          coder)  # fmt: skip


def test_an_answer_its_worker_never_judged_is_judged_by_the_sweep(client, team, no_worker):
    from datetime import timedelta

    from app.engine.evaluations import SWEEP_GRACE, sweep_unjudged
    from app.models import Message
    from app.models.common import utcnow

    workspace, agents = team
    document = {"name": "Swept", "prompts": [SUITE["prompts"][1]]}
    suite = create_suite(client, workspace, document)
    started = client.post(f"/api/v1/suites/{suite['id']}/runs", json={"agent_ids": [agents[0].id]})
    assert started.status_code == 201, started.text
    (run_id,) = started.json()["run_ids"]
    # The run succeeded a while ago, and its worker died before judging it.
    with Session(get_engine()) as session:
        run = session.get(Run, run_id)
        assert run is not None
        message = session.get(Message, run.output_message_id)
        assert message is not None
        message.content = GOOD_JSON
        run.status, run.finished_at = "succeeded", utcnow() - SWEEP_GRACE - timedelta(seconds=1)
        session.add_all([run, message])
        session.commit()
    cell_before = client.get(f"/api/v1/suite-runs/{started.json()['suite_run']['id']}").json()
    assert [c["status"] for c in cell_before["cells"]] == ["checking"]

    follow = sweep_unjudged()
    assert (follow.run_ids, follow.check_ids) == ([], [])  # text checks only: nothing to send
    results = client.get(f"/api/v1/suite-runs/{started.json()['suite_run']['id']}").json()
    assert [c["status"] for c in results["cells"]] == ["passed"]
    assert sweep_unjudged().run_ids == []  # judged once: the next sweep finds nothing
    with Session(get_engine()) as session:
        (result,) = session.exec(select(SuiteResult)).all()
        assert len(result.findings) == 3


def test_editing_a_suite_on_its_page_keeps_earlier_runs_copies(client, team, no_worker):
    workspace, agents = team
    suite = create_suite(client, workspace)
    started = client.post(
        f"/api/v1/suites/{suite['id']}/runs",
        json={"agent_ids": [agents[0].id], "judge_agent_id": agents[2].id},
    )
    assert started.status_code == 201, started.text

    refused = client.post(f"/suites/{suite['id']}", data={"text": "name: x\nprompts: nope\n"})
    assert refused.status_code == 400 and "prompts" in refused.text
    assert client.get(f"/api/v1/suites/{suite['id']}").json()["prompts"] == SUITE["prompts"]

    edited = {"name": "Basics", "prompts": [{"prompt": "Only one now."}]}
    saved = client.post(f"/suites/{suite['id']}", data={"text": yaml.safe_dump(edited)},
                        follow_redirects=False)  # fmt: skip
    assert saved.status_code == 303, saved.text
    assert client.get(f"/api/v1/suites/{suite['id']}").json()["prompts"] == [
        {"prompt": "Only one now.", "checks": []}
    ]
    grid = client.get(f"/api/v1/suite-runs/{started.json()['suite_run']['id']}").json()
    assert len(grid["cells"]) == 2  # the run keeps the two prompts it was started with
    assert client.get(f"/suites/{suite['id']}").status_code == 200

    deleted = client.post(f"/suites/{suite['id']}/delete", follow_redirects=False)
    assert deleted.status_code == 303
    assert client.get(f"/api/v1/suites/{suite['id']}").status_code == 404


def test_a_judge_that_cannot_start_is_an_error_not_a_verdict(client, team, no_worker):
    from datetime import timedelta

    from app.engine.evaluations import SWEEP_GRACE, sweep_unjudged
    from app.models import Agent, Message
    from app.models.common import utcnow

    workspace, agents = team
    document = {"name": "Judged", "prompts": [{"prompt": SUITE["prompts"][1]["prompt"], "checks": [
        {"kind": "contains", "text": "ok"}, {"kind": "judge", "rubric": "Valid."}]}]}  # fmt: skip
    suite = create_suite(client, workspace, document)
    body = {"agent_ids": [agents[0].id], "judge_agent_id": agents[2].id}
    started = client.post(f"/api/v1/suites/{suite['id']}/runs", json=body)
    assert started.status_code == 201, started.text
    (run_id,) = started.json()["run_ids"]
    with Session(get_engine()) as session:
        judge = session.get(Agent, agents[2].id)
        run = session.get(Run, run_id)
        assert judge is not None and run is not None
        message = session.get(Message, run.output_message_id)
        assert message is not None
        judge.model_id = None  # its model went away after the run started
        message.content = GOOD_JSON
        run.status, run.finished_at = "succeeded", utcnow() - SWEEP_GRACE - timedelta(seconds=1)
        session.add_all([judge, run, message])
        session.commit()

    assert sweep_unjudged().run_ids == []  # no judge run could start
    results = client.get(f"/api/v1/suite-runs/{started.json()['suite_run']['id']}").json()
    (found,) = results["cells"]
    assert found["status"] == "error"
    judged = next(f for f in found["findings"] if f["kind"] == "judge")
    assert judged["passed"] is None and judged["error"] is True
    assert "has no model" in judged["reason"]
    (summary,) = results["agents"]
    assert (summary["passed"], summary["failed"], summary["other"]) == (0, 0, 1)
