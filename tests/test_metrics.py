"""``/metrics``: Prometheus's format, for admins or a scraper's token; numbers match SQL."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from app.config import get_settings
from app.models import Message, Model, ModelEndpoint, Run, RunStatus, Task
from app.models.common import utcnow
from tests.factories import make_user, make_workspace, sign_in


def families(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def seed_runs(session) -> None:
    owner = make_user(session)
    workspace = make_workspace(session, owner=owner)
    endpoint = ModelEndpoint(name="local", base_url="http://127.0.0.1:9/v1", max_concurrency=3)
    session.add(endpoint)
    session.flush()
    model = Model(endpoint_id=endpoint.id, name="gemma")
    session.add(model)
    task = Task(workspace_id=workspace.id, title="t")
    session.add(task)
    session.flush()
    question = Message(task_id=task.id, role="user", content="q")
    session.add(question)
    session.flush()
    now = utcnow()
    for status, count in ((RunStatus.queued, 2), (RunStatus.running, 1), (RunStatus.succeeded, 3)):
        for _ in range(count):
            done = status == RunStatus.succeeded
            session.add(
                Run(task_id=task.id, model_id=model.id, input_message_id=question.id,
                    status=status, started_at=now if done else None,
                    first_token_at=now + timedelta(milliseconds=300) if done else None,
                    finished_at=now if done else None, tokens_per_second=30.0 if done else None)
            )  # fmt: skip
    session.commit()


def test_admins_read_the_engine_state_and_others_get_404(client, session):
    seed_runs(session)
    anonymous = client.get("/metrics", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin")
    sign_in(client, session, make_user(session))
    assert client.get("/metrics").status_code == 404
    sign_in(client, session, make_user(session, admin=True))
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = families(response.text)
    states = {s.labels["state"]: s.value for s in found["switchboard_runs"]}
    assert (states["queued"], states["running"], states["succeeded"], states["failed"]) == (
        2, 1, 3, 0,
    )  # fmt: skip
    assert [s.value for s in found["switchboard_endpoint_queue_depth"]] == [2]
    assert [s.value for s in found["switchboard_endpoint_running"]] == [1]
    assert [s.value for s in found["switchboard_endpoint_max_concurrency"]] == [3]
    ttft = {s.name: s for s in found["switchboard_time_to_first_token_seconds"]}
    assert ttft["switchboard_time_to_first_token_seconds_count"].value == 3
    buckets = {
        s.labels["le"]: s.value
        for s in found["switchboard_time_to_first_token_seconds"]
        if s.name.endswith("_bucket")
    }
    assert (buckets["0.25"], buckets["0.5"]) == (0, 3)
    routes = {
        s.labels["route"]
        for s in found["switchboard_http_request_duration_seconds"]
        if s.name.endswith("_count")
    }
    assert "/healthz" in routes


def test_a_scraper_with_the_token_may_read_them(client, session):
    settings = get_settings().model_copy(update={"metrics_token": SecretStr("s3cret-scrape")})
    client.app.dependency_overrides[get_settings] = lambda: settings
    try:
        wrong = client.get("/metrics", headers={"Authorization": "Bearer wrong"},
                           follow_redirects=False)  # fmt: skip
        assert wrong.status_code == 303
        ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
        assert ok.status_code == 200
        assert "switchboard_runs" in families(ok.text)
    finally:
        client.app.dependency_overrides.clear()
