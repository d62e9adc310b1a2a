"""Retry after the model an agent used is gone: the current model, or a clear reason."""

from __future__ import annotations

from app.models import Agent, Model, ModelEndpoint, Run
from tests.engine_helpers import CHAT, read_events, replay, start_task, wait_for_runs
from tests.factories import make_model
from tests.scripted_server import Reply


def _fail_then_delete_endpoint(client, session, team, model_server):
    workspace, (coder, *_) = team
    model_server.on(CHAT, Reply(500, {"error": {"message": "model crashed"}}))
    task = start_task(client, workspace, [coder])
    (run,) = wait_for_runs(client, task["id"], 1)
    assert run["status"] == "failed"
    old = session.get(Model, session.get(Agent, coder.id).model_id)
    session.delete(session.get(ModelEndpoint, old.endpoint_id))
    session.commit()
    session.expire_all()
    assert session.get(Run, run["id"]).model_id is None
    return task, run, coder


def test_retry_uses_the_agents_current_model(client, session, team, model_server):
    task, run, coder = _fail_then_delete_endpoint(client, session, team, model_server)
    new_model = make_model(session, base_url=model_server.base_url)
    agent = session.get(Agent, coder.id)
    agent.model_id = new_model.id
    session.add(agent)
    session.commit()
    from tests.engine_helpers import by_system_prompt

    model_server.on(CHAT, by_system_prompt)

    retried = client.post(f"/api/v1/runs/{run['id']}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["model_id"] == new_model.id
    (run,) = wait_for_runs(client, task["id"], 1)
    assert run["status"] == "succeeded"
    assert replay(read_events(client, run["id"])) == "Coder says hello"


def test_retry_without_a_model_says_why_on_the_task_page(client, session, team, model_server):
    task, run, coder = _fail_then_delete_endpoint(client, session, team, model_server)

    refused = client.post(f"/r/{run['id']}/retry", follow_redirects=False)
    assert refused.status_code == 400
    assert "Coder has no model; choose one on the Agents page." in refused.text
    assert 'id="thread"' in refused.text  # the task page, with the reason on it
    session.expire_all()
    assert session.get(Run, run["id"]).status == "failed"
