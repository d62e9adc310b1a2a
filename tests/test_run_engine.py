"""The run engine end to end: the API, a real Celery worker, real Redis, a scripted model."""

from __future__ import annotations

import json
import time

import pytest
from sqlmodel import select

from app.models import Message, Run
from tests.engine_helpers import (
    CHAT,
    by_system_prompt,
    chat_bodies,
    read_events,
    replay,
    start_task,
    wait_for_runs,
)
from tests.factories import make_user, sign_in
from tests.scripted_server import answer


def test_fan_out_to_four_agents_gives_four_sibling_answers_with_figures(client, session, team):
    workspace, agents = team
    created = client.post(
        f"/api/v1/workspaces/{workspace.slug}/tasks",
        json={"title": "Reverse words", "brief": "Reverse the words.",
              "agent_ids": [a.id for a in agents]},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["started"]["queued"] and len(body["started"]["runs"]) == 4
    runs = wait_for_runs(client, body["id"], 4)
    assert {r["status"] for r in runs} == {"succeeded"}
    question_id = body["started"]["message"]["id"]
    answers = session.exec(select(Message).where(Message.parent_id == question_id)).all()
    assert sorted(m.content for m in answers) == [
        "Coder says hello", "Explorer says hello", "Reviewer says hello", "Tester says hello",
    ]  # fmt: skip
    assert len({r["fanout_group"] for r in runs}) == 1
    for run in runs:
        assert run["completion_tokens"] == 3 and run["prompt_tokens"] == 11
        assert run["time_to_first_token_ms"] is not None and run["queue_wait_ms"] is not None
        assert run["tokens_per_second"] and run["attempts"] == 1
    task = client.get(f"/api/v1/tasks/{body['id']}").json()
    assert task["status"] == "review"


def test_fork_from_the_middle_sends_exactly_the_path(client, session, team, model_server):
    workspace, (coder, tester, *_) = team
    task = start_task(client, workspace, [coder], brief="Q1")
    wait_for_runs(client, task["id"], 1)
    first_answer = client.get(f"/api/v1/tasks/{task['id']}").json()["messages"][1]
    follow = client.post(
        f"/api/v1/messages/{first_answer['id']}/replies",
        json={"content": "Q2", "agent_ids": [coder.id]},
    ).json()
    wait_for_runs(client, task["id"], 2)
    # A second branch from the first answer, and an edited copy of Q1 as a sibling branch.
    fork = client.post(
        f"/api/v1/messages/{first_answer['id']}/replies",
        json={"content": "Q2-alt", "agent_ids": [tester.id]},
    )
    edit = client.post(
        f"/api/v1/messages/{task['started']['message']['id']}/replies",
        json={"content": "Q1 edited", "agent_ids": [tester.id], "edit": True},
    )
    assert fork.status_code == edit.status_code == 201
    wait_for_runs(client, task["id"], 4)
    bodies = chat_bodies(model_server)
    contexts = [[(m["role"], m["content"]) for m in body["messages"]] for body in bodies]
    assert [("system", "You are Tester."), ("user", "Q1"), ("assistant", "Coder says hello"),
            ("user", "Q2-alt")] in contexts  # fmt: skip
    assert [("system", "You are Tester."), ("user", "Q1 edited")] in contexts
    # Never another branch's text: Q2 is on a sibling branch of Q2-alt.
    fork_context = next(c for c in contexts if ("user", "Q2-alt") in c)
    assert ("user", "Q2") not in fork_context
    edited = client.get(f"/api/v1/tasks/{task['id']}").json()["messages"]
    copy = next(m for m in edited if m["content"] == "Q1 edited")
    assert copy["edited_from_id"] == task["started"]["message"]["id"] and copy["parent_id"] is None
    assert follow["message"]["parent_id"] == first_answer["id"]


def test_contexts_are_byte_stable_for_forks_and_reruns(client, session, team, model_server):
    workspace, (coder, *_) = team
    task = start_task(client, workspace, [coder], brief="Same question")
    wait_for_runs(client, task["id"], 1)
    answer_id = client.get(f"/api/v1/tasks/{task['id']}").json()["messages"][1]["id"]
    assert client.post(f"/api/v1/messages/{answer_id}/reruns", json={}).status_code == 201
    wait_for_runs(client, task["id"], 2)
    first, second = chat_bodies(model_server)
    assert first["messages"] == second["messages"]
    assert first["max_tokens"] == second["max_tokens"] == 64


def test_rerun_with_another_agent_and_reassign(client, session, team):
    workspace, (coder, tester, *_) = team
    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    messages = client.get(f"/api/v1/tasks/{task['id']}").json()["messages"]
    rerun = client.post(
        f"/api/v1/messages/{messages[1]['id']}/reruns", json={"agent_id": tester.id}
    )
    assert rerun.status_code == 201
    wait_for_runs(client, task["id"], 2)
    siblings = [m for m in client.get(f"/api/v1/tasks/{task['id']}").json()["messages"]
                if m["parent_id"] == messages[0]["id"]]  # fmt: skip
    assert sorted(m["content"] for m in siblings) == ["Coder says hello", "Tester says hello"]
    assigned = client.put(f"/api/v1/tasks/{task['id']}/assignee", json={"agent_id": tester.id})
    assert assigned.json()["assignee_agent_id"] == tester.id
    # The next question without agents goes to the assignee.
    reply = client.post(f"/api/v1/messages/{siblings[0]['id']}/replies", json={"content": "More"})
    assert reply.json()["runs"][0]["agent_id"] == tester.id


def test_hand_off_puts_the_instruction_and_the_answer_on_one_branch(client, session, team,
                                                                     model_server):  # fmt: skip
    workspace, (coder, tester, *_) = team
    task = start_task(client, workspace, [coder], brief="Write it")
    wait_for_runs(client, task["id"], 1)
    answer_id = client.get(f"/api/v1/tasks/{task['id']}").json()["messages"][1]["id"]
    handed = client.post(
        f"/api/v1/messages/{answer_id}/handoffs",
        json={"agent_id": tester.id, "instruction": "Test this."},
    )
    assert handed.status_code == 201
    assert handed.json()["message"]["parent_id"] == answer_id
    assert handed.json()["message"]["handoff"] is True  # the page labels it a hand-off
    wait_for_runs(client, task["id"], 2)
    last = chat_bodies(model_server)[-1]["messages"]
    assert [(m["role"], m["content"]) for m in last] == [
        ("system", "You are Tester."), ("user", "Write it"),
        ("assistant", "Coder says hello"), ("user", "Test this."),
    ]  # fmt: skip


def test_a_two_round_pipeline_runs_as_one_branch(client, session, team, model_server):
    workspace, (coder, tester, *_) = team
    pipeline = client.post(
        f"/api/v1/workspaces/{workspace.slug}/pipelines",
        json={
            "name": "write-test-fix",
            "steps": [
                {"agent_id": coder.id, "instruction": ""},
                {"agent_id": tester.id, "instruction": "Test this."},
                {"agent_id": coder.id, "instruction": "Fix what failed."},
            ],
            "max_rounds": 2,
            "stop_word": "PASS",
        },
    )
    assert pipeline.status_code == 201, pipeline.text
    task = client.post(
        f"/api/v1/workspaces/{workspace.slug}/tasks", json={"title": "t", "brief": "Write it"}
    ).json()
    first = client.post(f"/api/v1/tasks/{task['id']}/messages",
                        json={"content": "Write it", "agent_ids": [coder.id]}).json()  # fmt: skip
    wait_for_runs(client, task["id"], 1)
    started = client.post(
        f"/api/v1/pipelines/{pipeline.json()['id']}/runs",
        json={"message_id": first["message"]["id"]},
    )
    assert started.status_code == 201, started.text
    # opener + 2 rounds x (Tester, Coder) = 5 pipeline runs, plus the first answer.
    runs = wait_for_runs(client, task["id"], 6, timeout=90)
    steps = [(r["pipeline_round"], r["pipeline_step"]) for r in runs if r["pipeline_id"]]
    assert steps == [(0, 0), (1, 1), (1, 2), (2, 1), (2, 2)]
    messages = client.get(f"/api/v1/tasks/{task['id']}").json()["messages"]
    by_id = {m["id"]: m for m in messages}
    leaf = messages[-1]
    branch = []
    while leaf:
        branch.append(leaf["content"])
        leaf = by_id.get(leaf["parent_id"])
    assert branch[::-1][-4:] == ["Test this.", "Tester says hello", "Fix what failed.",
                                 "Coder says hello"]  # fmt: skip


def test_a_pipeline_stops_early_at_the_stop_word(client, session, team, model_server):
    workspace, (coder, tester, *_) = team
    model_server.on(CHAT, lambda r: answer("PASS all good") if "Tester" in r.json["messages"][0]
                    ["content"] else by_system_prompt(r))  # fmt: skip
    pipeline = client.post(
        f"/api/v1/workspaces/{workspace.slug}/pipelines",
        json={"name": "p", "steps": [{"agent_id": coder.id},
              {"agent_id": tester.id, "instruction": "Test this."},
              {"agent_id": coder.id, "instruction": "Fix it."}],
              "max_rounds": 3, "stop_word": "pass"},
    ).json()  # fmt: skip
    task = client.post(f"/api/v1/workspaces/{workspace.slug}/tasks",
                       json={"title": "t"}).json()  # fmt: skip
    first = client.post(f"/api/v1/tasks/{task['id']}/messages",
                        json={"content": "Go", "agent_ids": [coder.id]}).json()  # fmt: skip
    wait_for_runs(client, task["id"], 1)
    client.post(f"/api/v1/pipelines/{pipeline['id']}/runs",
                json={"message_id": first["message"]["id"]})  # fmt: skip
    runs = wait_for_runs(client, task["id"], 3)
    time.sleep(1.5)  # room for a wrong extra step to appear
    runs = client.get(f"/api/v1/tasks/{task['id']}").json()["runs"]
    assert len(runs) == 3 and runs[-1]["pipeline_step"] == 1


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"content": "x", "agent_ids": list(range(1, 10))}, 422, None),
        ({"content": "   ", "agent_ids": []}, 400, "Write a message first."),
        ({"content": "x", "agent_ids": [999]}, 404, "No such agent"),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(client, session, team, body, status, message):
    workspace, (coder, *_) = team
    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    before = client.get(f"/api/v1/tasks/{task['id']}").json()
    root = before["messages"][0]["id"]
    response = client.post(f"/api/v1/messages/{root}/replies", json=body)
    assert response.status_code == status, response.text
    if message:
        assert message in response.json()["detail"]
    after = client.get(f"/api/v1/tasks/{task['id']}").json()
    assert len(after["messages"]) == len(before["messages"]) and len(after["runs"]) == 1


def test_an_agent_without_a_model_is_refused_clearly(client, session, team):
    workspace, (coder, *_) = team
    coder.model_id = None
    session.add(coder)
    session.commit()
    response = client.post(
        f"/api/v1/workspaces/{workspace.slug}/tasks",
        json={"title": "t", "brief": "b", "agent_ids": [coder.id]},
    )
    assert response.status_code == 400 and "has no model" in response.json()["detail"]
    assert client.get(f"/api/v1/workspaces/{workspace.slug}/tasks").json() == []


def test_viewers_and_outsiders_cannot_run_anything(client, session, team):
    from app.models import Role
    from tests.factories import add_member

    workspace, (coder, *_) = team
    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    root = client.get(f"/api/v1/tasks/{task['id']}").json()["messages"][0]["id"]
    run_id = client.get(f"/api/v1/tasks/{task['id']}").json()["runs"][0]["id"]
    viewer = make_user(session)
    add_member(session, workspace=workspace, user=viewer, role=Role.viewer)
    outsider = make_user(session)
    for person, can_read in ((viewer, True), (outsider, False)):
        sign_in(client, session, person)
        assert (client.get(f"/api/v1/tasks/{task['id']}").status_code == 200) is can_read
        for method, path, body in (
            ("post", f"/api/v1/messages/{root}/replies", {"content": "x"}),
            ("post", f"/api/v1/messages/{root}/reruns", {}),
            ("post", f"/api/v1/runs/{run_id}/retry", None),
            ("post", f"/api/v1/runs/{run_id}/cancel", None),
            ("put", f"/api/v1/tasks/{task['id']}/assignee", {"agent_id": None}),
            ("post", f"/api/v1/workspaces/{workspace.slug}/tasks", {"title": "x"}),
        ):
            response = client.request(method, path, json=body)
            assert response.status_code == 404, (person.email, path, response.text)
    assert len(session.exec(select(Run)).all()) == 1


def test_long_threads_are_trimmed_from_the_oldest_and_say_so(client, session, team, model_server):
    workspace, (coder, *_) = team
    from app.models import Model

    model = session.exec(select(Model)).first()
    model.context_length = 200  # tokens: room for the newest turns only
    session.add(model)
    session.commit()
    task = start_task(client, workspace, [coder], brief="old " * 150)
    wait_for_runs(client, task["id"], 1)
    answer_id = client.get(f"/api/v1/tasks/{task['id']}").json()["messages"][1]["id"]
    client.post(
        f"/api/v1/messages/{answer_id}/replies",
        json={"content": "new question", "agent_ids": [coder.id]},
    )
    runs = wait_for_runs(client, task["id"], 2)
    sent = chat_bodies(model_server)[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "You are Coder."}
    assert sent[-1] == {"role": "user", "content": "new question"}
    assert all("old old" not in m["content"] for m in sent)
    assert runs[1]["context_trimmed"] and not runs[0]["context_trimmed"]


SLOW_TEXT = " ".join(f"word{i}" for i in range(60))


def test_sse_resume_after_a_dropped_connection_loses_and_repeats_nothing(client, session, team,
                                                                         model_server):  # fmt: skip
    workspace, (coder, *_) = team
    model_server.on(CHAT, answer(SLOW_TEXT, pause=0.03))
    task = start_task(client, workspace, [coder])
    run_id = task["started"]["runs"][0]["id"]
    first_part = read_events(client, run_id, limit=4)
    assert len(first_part) == 4
    rest = read_events(client, run_id, last_event_id=first_part[-1][0])
    assert rest[-1][1] == "done" and rest[-1][2]["status"] == "succeeded"
    ids = [event_id for event_id, _, _ in first_part + rest]
    assert len(ids) == len(set(ids)), "an event was repeated"
    stored = session.get(Message, task["started"]["runs"][0]["output_message_id"])
    session.refresh(stored)
    assert replay(first_part + rest) == stored.content == SLOW_TEXT
    # A late viewer gets everything from the start.
    late = read_events(client, run_id)
    assert replay(late) == SLOW_TEXT and late[0][1] == "state"


def test_after_the_stream_expires_the_text_comes_from_sql(client, session, team):
    from app.engine import live
    from app.redis_conn import get_redis

    workspace, (coder, *_) = team
    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    run_id = task["started"]["runs"][0]["id"]
    get_redis().delete(live.run_stream(run_id))
    events = read_events(client, run_id)
    assert [e for _, e, _ in events] == ["reset", "token", "done"]
    assert replay(events) == "Coder says hello"


def test_workspace_events_report_run_states(client, session, team):
    workspace, (coder, *_) = team
    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    seen = []
    with client.stream(
        "GET", f"/api/v1/workspaces/{workspace.slug}/events", headers={"Last-Event-ID": "0"}
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line.removeprefix("data: "))["status"])
            if "succeeded" in seen:
                break
    assert seen[:3] == ["queued", "running", "succeeded"]


def test_a_failed_run_shows_its_reason_and_a_retry_succeeds(client, session, team, model_server):
    from tests.scripted_server import Reply

    workspace, (coder, *_) = team
    model_server.on(CHAT, Reply(500, {"error": {"message": "model crashed"}}))
    task = start_task(client, workspace, [coder])
    (run,) = wait_for_runs(client, task["id"], 1)
    assert run["status"] == "failed" and "500" in run["error"] and "model crashed" in run["error"]
    events = read_events(client, run["id"])
    assert events[-1][1] == "error" and "model crashed" in events[-1][2]["error"]
    model_server.on(CHAT, by_system_prompt)
    retried = client.post(f"/api/v1/runs/{run['id']}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    (run,) = wait_for_runs(client, task["id"], 1)
    assert run["status"] == "succeeded" and run["error"] is None
    assert replay(read_events(client, run["id"])) == "Coder says hello"
    assert client.post(f"/api/v1/runs/{run['id']}/retry").status_code == 409
