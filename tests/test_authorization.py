"""Every route, walked with a stranger's session and a viewer's: none lets them through.

A stranger (signed in, not a member, not an admin) must get 404 from every route that names an
object of someone else's workspace. A viewer may read but must get 404 from every route that
changes something — except the few a viewer is allowed (share a read-only link, leave).
Bodies are valid, so a refusal comes from the access check, not from validation.
"""

from __future__ import annotations

import re

import pytest
from sqlmodel import Session, select

from app.models import (
    Agent,
    Check,
    Message,
    Model,
    ModelEndpoint,
    Pipeline,
    Role,
    Run,
    Suite,
    SuiteRun,
    Task,
)
from app.services.comparisons import create_comparison
from app.services.sharing import create_invite, create_read_only_link
from app.services.tokens import create_token
from tests.factories import add_member, make_user, make_workspace, sign_in
from tests.test_web_safety import PUBLIC_ROUTES, all_routes

# Routes about the caller's own things (their account, their workspace list): not in scope.
OWN_ROUTES = {
    ("GET", "/"), ("POST", "/workspaces"), ("POST", "/workspaces/demo"),
    ("GET", "/account"), ("POST", "/account/password"), ("POST", "/account/tokens"),
    ("GET", "/api/v1/me"), ("GET", "/api/v1/me/tokens"), ("POST", "/api/v1/me/tokens"),
    ("PUT", "/api/v1/me/password"), ("GET", "/api/v1/workspaces"),
    ("POST", "/api/v1/workspaces"),
}  # fmt: skip
# Changes a viewer may make.
VIEWER_MAY = {
    ("POST", "/t/{task_id}/share"), ("POST", "/c/{comparison_id}/share"),
    ("POST", "/api/v1/tasks/{task_id}/share-links"),
    ("POST", "/api/v1/comparisons/{comparison_id}/share-links"),
    ("POST", "/w/{slug}/leave"), ("POST", "/t/{task_id}/compare"),
    ("POST", "/api/v1/comparisons"),
}  # fmt: skip
# Invite tokens are credentials of their own (tested in test_teams).
TOKEN_ROUTES = {("POST", "/join/{token}"), ("POST", "/api/v1/invites/{token}/accept")}


def bodies(ids: dict[str, object]) -> dict[tuple[str, str], dict[str, object]]:
    """A valid body for each route that takes one."""
    agent, message = ids["agent_id"], ids["message_id"]
    answer = ids["answer_id"]
    return {
        ("POST", "/w/{slug}/tasks"): {"title": "t"},
        ("POST", "/t/{task_id}/battle"): {"content": "Which is better?"},
        ("POST", "/api/v1/tasks/{task_id}/battles"): {"content": "Which is better?"},
        ("POST", "/w/{slug}/rename"): {"name": "n"},
        ("POST", "/t/{task_id}/move"): {"status": "done"},
        ("POST", "/admin/endpoints"): {"name": "e", "base_url": "http://127.0.0.1:9/v1"},
        ("POST", "/admin/endpoints/{endpoint_id}"): {"max_concurrency": 2},
        ("POST", "/admin/models/{model_id}"): {"parameter_count": "1B"},
        ("POST", "/t/{task_id}/ask"): {"content": "q", "parent_id": answer, "agent_ids": [agent]},
        ("POST", "/m/{message_id}/reply"): {"content": "q", "agent_ids": [agent]},
        ("POST", "/m/{message_id}/edit"): {"content": "q", "agent_ids": [agent]},
        ("POST", "/m/{message_id}/rerun"): {"agent_id": agent},
        ("POST", "/m/{message_id}/handoff"): {"agent_id": agent, "instruction": "i"},
        ("POST", "/t/{task_id}/assignee"): {"agent_id": str(agent)},
        ("POST", "/w/{slug}/agents"): {"name": "new"},
        ("POST", "/agents/{agent_id}"): {"name": "renamed"},
        ("POST", "/t/{task_id}/compare"): {"question_id": message},
        ("POST", "/c/{comparison_id}/vote"): {"outcome": "a"},
        ("POST", "/c/{comparison_id}/continue"): {"message_id": answer},
        ("POST", "/c/{comparison_id}/judge"): {"agent_id": str(agent)},
        ("POST", "/t/{task_id}/tags"): {"tags": "sql"},
        ("POST", "/w/{slug}/pipelines"): {"name": "p", "step_agent": [str(agent)]},
        ("POST", "/pipelines/{pipeline_id}"): {"name": "p2", "step_agent": [str(agent)]},
        ("POST", "/pipelines/{pipeline_id}/start"): {"task_id": str(ids.get("task_id", 1))},
        ("POST", "/t/{task_id}/pipeline"): {"pipeline_id": ids["pipeline_id"],
                                             "message_id": message},
        ("POST", "/w/{slug}/invites"): {"role": "viewer"},
        ("POST", "/w/{slug}/members/{user_id}/role"): {"role": "viewer"},
        ("POST", "/w/{slug}/delete"): {"confirm": ids["slug"]},
        ("POST", "/api/v1/workspaces/{slug}/agents"): {"name": "new"},
        ("PATCH", "/api/v1/agents/{agent_id}"): {"name": "renamed"},
        ("POST", "/api/v1/comparisons"): {"message_ids": [answer, ids["other_answer_id"]]},
        ("POST", "/api/v1/comparisons/{comparison_id}/votes"): {"outcome": "a"},
        ("POST", "/api/v1/comparisons/{comparison_id}/judgements"): {"agent_id": agent},
        ("PUT", "/api/v1/tasks/{task_id}/main-branch"): {"message_id": answer},
        ("POST", "/api/v1/endpoints"): {"name": "e", "base_url": "http://127.0.0.1:9/v1"},
        ("PATCH", "/api/v1/endpoints/{endpoint_id}"): {"max_concurrency": 2},
        ("PATCH", "/api/v1/models/{model_id}"): {"parameter_count": 5},
        ("POST", "/api/v1/workspaces/{slug}/pipelines"): {
            "name": "p", "steps": [{"agent_id": agent}]
        },
        ("POST", "/api/v1/pipelines/{pipeline_id}/runs"): {"message_id": message},
        ("PUT", "/api/v1/workspaces/{slug}/members/{user_id}"): {"role": "viewer"},
        ("POST", "/api/v1/workspaces/{slug}/invites"): {"role": "viewer"},
        ("POST", "/api/v1/tasks/{task_id}/share-links"): {},
        ("POST", "/api/v1/comparisons/{comparison_id}/share-links"): {},
        ("POST", "/api/v1/workspaces/{slug}/tasks"): {"title": "t"},
        ("PATCH", "/api/v1/tasks/{task_id}"): {"title": "t2"},
        ("PUT", "/api/v1/tasks/{task_id}/assignee"): {"agent_id": agent},
        ("POST", "/api/v1/tasks/{task_id}/messages"): {"content": "q", "agent_ids": [agent]},
        ("POST", "/api/v1/messages/{message_id}/replies"): {"content": "q", "agent_ids": [agent]},
        ("POST", "/api/v1/messages/{message_id}/reruns"): {"agent_id": agent},
        ("POST", "/api/v1/messages/{message_id}/handoffs"): {"agent_id": agent,
                                                             "instruction": "i"},
        ("POST", "/w/{slug}/suites"): {"text": SUITE_TEXT},
        ("POST", "/suites/{suite_id}"): {"text": SUITE_TEXT},
        ("POST", "/suites/{suite_id}/runs"): {"agent_ids": [str(agent)]},
        ("POST", "/api/v1/workspaces/{slug}/suites"): SUITE_DOCUMENT,
        ("PUT", "/api/v1/suites/{suite_id}"): SUITE_DOCUMENT,
        ("POST", "/api/v1/suites/{suite_id}/runs"): {"agent_ids": [agent]},
    }  # fmt: skip


SUITE_DOCUMENT = {"name": "s", "prompts": [{"prompt": "p", "checks": []}]}
SUITE_TEXT = "name: s2\nprompts:\n  - prompt: p\n"


def build_world(session: Session) -> dict[str, object]:
    """An owner's workspace with one of everything; the ids every route needs."""
    owner = make_user(session, admin=True)
    workspace = make_workspace(session, owner=owner)
    endpoint = ModelEndpoint(name="e", base_url="http://127.0.0.1:9/v1")
    session.add(endpoint)
    session.flush()
    model = Model(endpoint_id=endpoint.id, name="m", context_length=2048)
    session.add(model)
    session.flush()
    agent = Agent(workspace_id=workspace.id, name="Coder", model_id=model.id)
    session.add(agent)
    session.flush()
    task = Task(workspace_id=workspace.id, title="t")
    session.add(task)
    session.flush()
    question = Message(task_id=task.id, role="user", content="q")
    session.add(question)
    session.flush()
    answers = []
    for _ in range(2):
        answer = Message(task_id=task.id, parent_id=question.id, role="assistant",
                         agent_id=agent.id, content="a")  # fmt: skip
        session.add(answer)
        session.flush()
        session.add(Run(task_id=task.id, agent_id=agent.id, model_id=model.id,
                        input_message_id=question.id, output_message_id=answer.id,
                        status="succeeded"))  # fmt: skip
        answers.append(answer)
    session.flush()
    run = session.exec(select(Run)).first()
    steps = [{"agent_id": agent.id, "instruction": ""}]
    pipeline = Pipeline(workspace_id=workspace.id, name="p", steps=steps)
    session.add(pipeline)
    check = Check(task_id=task.id, code_message_id=answers[0].id)
    session.add(check)
    suite = Suite(workspace_id=workspace.id, name="s", prompts=[{"prompt": "p", "checks": []}])
    session.add(suite)
    session.flush()
    suite_run = SuiteRun(suite_id=suite.id, number=1, prompts=suite.prompts, agent_ids=[agent.id])
    session.add(suite_run)
    session.flush()
    comparison = create_comparison(session=session, task=task, author=owner,
                                   message_ids=[a.id for a in answers])  # fmt: skip
    link = create_invite(session=session, workspace=workspace, owner=owner, role=Role.viewer)
    create_read_only_link(session=session, author=owner, task=task)
    token, _ = create_token(session=session, user=owner, name="owner's")
    session.commit()
    return {
        "owner": owner, "workspace": workspace, "slug": workspace.slug, "task_id": task.id,
        "message_id": question.id, "answer_id": answers[0].id, "other_answer_id": answers[1].id,
        "run_id": run.id, "agent_id": agent.id, "pipeline_id": pipeline.id,
        "check_id": check.id, "suite_id": suite.id, "suite_run_id": suite_run.id,
        "comparison_id": comparison.id, "endpoint_id": endpoint.id, "model_id": model.id,
        "link_id": link.link.id, "token_id": token.id, "user_id": owner.id, "status": "backlog",
        "token": link.token,
    }  # fmt: skip


def concrete(path: str, ids: dict[str, object]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), path)


def call(client, method: str, path: str, ids: dict[str, object]):
    body = bodies(ids).get((method, path))
    url = concrete(path, ids)
    if path == "/t/{task_id}/earlier":
        url += f"?at={ids['answer_id']}&upto=1"
    if path == "/t/{task_id}/live":
        url += f"?runs={ids['run_id']}"
    if is_stream(path):
        # Live streams: the answer's status is what counts; the stream is closed at once.
        with client.stream(method, url) as response:
            return response
    if path.startswith("/api/"):
        return client.request(method, url, json=body, follow_redirects=False)
    return client.request(method, url, data=body, follow_redirects=False)


def is_stream(path: str) -> bool:
    return path.endswith("/events") or path.endswith("/live")


def in_scope() -> list[tuple[str, str]]:
    return [
        route for route in all_routes()
        if route not in PUBLIC_ROUTES | OWN_ROUTES | TOKEN_ROUTES
    ]  # fmt: skip


def test_the_live_streams_are_walked():
    walked = {path for _, path in in_scope() if is_stream(path)}
    assert walked >= {
        "/api/v1/runs/{run_id}/events", "/api/v1/workspaces/{slug}/events",
        "/t/{task_id}/live", "/c/{comparison_id}/live", "/w/{slug}/live",
    }  # fmt: skip


@pytest.mark.parametrize(("method", "path"), in_scope())
def test_a_stranger_gets_404_everywhere(client, session, method, path):
    ids = build_world(session)
    sign_in(client, session, make_user(session))
    response = call(client, method, path, ids)
    assert response.status_code == 404, (response.status_code, response.text[:300])


@pytest.mark.parametrize(
    ("method", "path"),
    [r for r in in_scope() if r[0] != "GET" and r not in VIEWER_MAY and "/admin" not in r[1]
     and "/endpoints" not in r[1] and "/models/" not in r[1]],
)  # fmt: skip
def test_a_viewer_cannot_change_anything(client, session, method, path):
    ids = build_world(session)
    viewer = make_user(session)
    add_member(session, workspace=ids["workspace"], user=viewer, role=Role.viewer)
    sign_in(client, session, viewer)
    response = call(client, method, path, ids)
    assert response.status_code == 404, (response.status_code, response.text[:300])


@pytest.mark.parametrize(("method", "path"), [r for r in in_scope() if r[0] == "GET"])
def test_a_viewer_reads_what_the_workspace_shows(client, session, method, path):
    ids = build_world(session)
    viewer = make_user(session)
    add_member(session, workspace=ids["workspace"], user=viewer, role=Role.viewer)
    sign_in(client, session, viewer)
    response = call(client, method, path, ids)
    admin_only = "/admin" in path or "/endpoints" in path or path == "/m/{message_id}/actions"
    admin_only = admin_only or path == "/metrics"
    owner_only = path in ("/api/v1/workspaces/{slug}/invites",
                          "/api/v1/workspaces/{slug}/share-links")  # fmt: skip
    maker_only = path == "/links/{link_id}/new"  # a new link's page: only its maker's
    expected = 404 if admin_only or owner_only or maker_only else 200
    assert response.status_code == expected, (response.status_code, response.text[:300])


BAD_VALUES = ("²", "9" * 5000, "-1", "1e3", "")


@pytest.mark.parametrize(
    ("method", "path"),
    [route for route in bodies({key: 1 for key in ("agent_id", "message_id", "answer_id",
                                                   "other_answer_id", "pipeline_id", "slug")})
     if not route[1].startswith("/api/")],
)  # fmt: skip
def test_bad_values_in_page_forms_get_a_clear_answer_never_a_500(client, session, method, path):
    """Every field of every page form, as its owner (an admin), with values no form offers."""
    ids = build_world(session)
    sign_in(client, session, ids["owner"])
    url = concrete(path, ids)
    for field, good in bodies(ids)[(method, path)].items():
        for bad in BAD_VALUES:
            data = {**bodies(ids)[(method, path)], field: [bad] if isinstance(good, list) else bad}
            response = client.request(method, url, data=data, follow_redirects=False)
            assert response.status_code < 500, (field, bad[:20], response.text[:300])
