"""Fuzz the JSON API from its own OpenAPI document: no request may end in a 5xx.

Schemathesis turns every operation under ``/api/v1`` (and ``/healthz``) into one pytest test that
sends generated requests (valid and invalid ones) as a signed-in user holding real data: a
workspace with agents, tasks, message trees, runs in every state, a pipeline and a comparison.
Generated ids and slugs are mostly swapped for those of the seeded rows, so the requests reach
past the 404s into the operations themselves. No worker runs: dispatched runs stay queued.

The run is bounded (25 examples an operation, SWITCHBOARD_FUZZ_EXAMPLES for more) and
derandomized, so CI sees the same requests every time; ``-k "POST and /tasks"`` picks operations.
The two event streams are left out: they stream until the client leaves. ``/healthz`` may answer
503 with its report (no worker runs here); any other 5xx fails, with the server's traceback.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
from sqlmodel import Session

from app.models import ApiToken, Message, MessageRole, Role, Run, RunStatus
from app.models.common import utcnow
from app.security import hash_token, new_token
from app.services.accounts import create_user
from app.web.app import create_app
from tests.factories import add_member, make_agent, make_model, make_workspace

# Examples an operation: 25 keeps the module within a couple of minutes; raise it for a deeper
# local run (the requests stay derandomized: the same number gives the same requests).
MAX_EXAMPLES = int(os.environ.get("SWITCHBOARD_FUZZ_EXAMPLES", "25"))
SEED = 20240611
# Nothing listens on the discard port: health checks of the seeded endpoint fail at once.
UNREACHABLE_MODEL_URL = "http://127.0.0.1:9/v1"

APP = create_app()
# Built from the app's own document (no request, no lifespan at import time) and with an explicit
# configuration, so a schemathesis.toml somewhere up the tree cannot change the run.
schema = schemathesis.openapi.from_dict(
    APP.openapi(),
    config=schemathesis.Config.from_dict({"seed": SEED, "generation": {"mode": "all"}}),
)
schema.app = APP
schema = schema.include(path_regex=r"^(/api/v1/|/healthz$)").exclude(path_regex=r"/events$")

ADMIN_TAG = "model endpoints"
HEALTH_PARTS = ("database", "redis", "worker", "models")


@dataclass
class Seeded:
    """The rows the fuzzer aims at, by the parameter names the API uses for them."""

    owner_token: str
    admin_token: str
    slug: str
    ids: dict[str, list[int]]


@pytest.fixture
def seeded(session: Session, no_worker: None) -> Seeded:
    """An owner with an API token and a full workspace, and an admin with an endpoint.

    No worker may run (the suite's shared one is stopped): queued runs must stay queued."""
    # Accounts without passwords (they sign in by link): no argon2 hash to spend a second on.
    owner = create_user(session=session, email="owner@example.com", password=None)
    admin = create_user(session=session, email="admin@example.com", password=None, is_admin=True)
    tokens = {}
    # The owner's second token is the one the fuzzer may revoke; it signs in with the first.
    for user, name in ((owner, "fuzz"), (admin, "fuzz"), (owner, "spare")):
        token = new_token()
        row = ApiToken(
            user_id=user.id,
            name=name,
            token_hash=hash_token(token),
            expires_at=utcnow() + timedelta(days=1),
        )
        session.add(row)
        session.flush()
        tokens.setdefault(user.id, token)
    spare_token_id = row.id
    session.commit()

    workspace = make_workspace(session, owner=owner, name="Fuzz space")
    add_member(session, workspace=workspace, user=admin, role=Role.editor)
    model = make_model(session, base_url=UNREACHABLE_MODEL_URL)
    agents = [
        make_agent(session, workspace=workspace, model=model, name=name)
        for name in ("Coder", "Tester", "Reviewer")
    ]
    agent_ids = [agent.id for agent in agents]

    auth = {"Authorization": f"Bearer {tokens[owner.id]}"}
    with TestClient(APP, base_url="http://testserver", headers=auth) as api:

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = api.post(path, json=body)
            assert response.status_code == 201, (path, response.status_code, response.text)
            return response.json()

        base = f"/api/v1/workspaces/{workspace.slug}"
        # A task fanned out to two agents: a question, two answers, two queued runs.
        fanned = post(
            f"{base}/tasks", {"title": "Fan out", "brief": "Say hi.", "agent_ids": agent_ids[:2]}
        )
        task_id = fanned["id"]
        question_id = fanned["started"]["message"]["id"]
        runs = fanned["started"]["runs"]
        # A task assigned to an agent, without messages yet.
        assigned = post(f"{base}/tasks", {"title": "Assigned", "assignee_agent_id": agent_ids[0]})
        # A plain task: no agent, no messages.
        plain = post(f"{base}/tasks", {"title": "Plain", "brief": "Nothing yet."})
        pipeline = post(
            f"{base}/pipelines",
            {
                "name": "Code then test",
                "steps": [
                    {"agent_id": agent_ids[0], "instruction": "Write it."},
                    {"agent_id": agent_ids[1], "instruction": "Test it."},
                ],
                "max_rounds": 2,
                "stop_word": "DONE",
            },
        )

    # Finish the runs by hand (no worker here): one answered, one failed; then one more
    # question under the answer, whose run stays queued, and one cancelled run.
    first, second = (session.get(Run, run["id"]) for run in runs)
    assert first is not None and second is not None
    answer = session.get(Message, first.output_message_id)
    assert answer is not None and answer.role == MessageRole.assistant
    answer.content = "Hi! DONE\n\n```python\nprint('hi')\n```"
    now = utcnow()
    first.status, first.started_at, first.first_token_at, first.finished_at = (
        RunStatus.succeeded, now, now, now,
    )  # fmt: skip
    first.prompt_tokens, first.completion_tokens, first.tokens_per_second = 12, 3, 30.0
    second.status, second.started_at, second.finished_at = RunStatus.failed, now, now
    second.error = "The model server did not answer."
    session.add_all([answer, first, second])
    session.commit()

    with TestClient(APP, base_url="http://testserver", headers=auth) as api:
        reply = api.post(
            f"/api/v1/messages/{answer.id}/replies",
            json={"content": "And again?", "agent_ids": [agent_ids[2]]},
        )
        assert reply.status_code == 201, reply.text
        rerun = api.post(f"/api/v1/messages/{answer.id}/reruns", json={})
        assert rerun.status_code == 201, rerun.text
        cancelled = api.post(f"/api/v1/runs/{rerun.json()['runs'][0]['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        comparison = api.post(
            "/api/v1/comparisons",
            json={"message_ids": [answer.id, second.output_message_id]},
        )
        assert comparison.status_code == 201, comparison.text
        check = api.post(f"/api/v1/messages/{answer.id}/checks")  # stays queued: no checker
        assert check.status_code == 201, check.text
        suite = api.post(
            f"/api/v1/workspaces/{workspace.slug}/suites",
            json={"name": "Fuzz suite", "prompts": [
                {"prompt": "Say hi.", "checks": [{"kind": "contains", "text": "hi"},
                                                 {"kind": "judge", "rubric": "Polite."}]},
            ]},
        )  # fmt: skip
        assert suite.status_code == 201, suite.text
        suite_run = api.post(
            f"/api/v1/suites/{suite.json()['id']}/runs",
            json={"agent_ids": agent_ids[:2], "judge_agent_id": agent_ids[2]},
        )  # runs stay queued: no worker
        assert suite_run.status_code == 201, suite_run.text
        detail = api.get(f"/api/v1/tasks/{task_id}").json()

    # The question and its answer first: they are the ones the operations can act on most.
    message_ids = [question_id, answer.id, *(message["id"] for message in detail["messages"])]
    return Seeded(
        owner_token=tokens[owner.id],
        admin_token=tokens[admin.id],
        slug=workspace.slug,
        ids={
            "agent_id": agent_ids,
            "task_id": [task_id, assigned["id"], plain["id"]],
            "message_id": list(dict.fromkeys(message_ids)),
            "run_id": [run["id"] for run in detail["runs"]],
            "pipeline_id": [pipeline["id"]],
            "comparison_id": [comparison.json()["id"]],
            "endpoint_id": [model.endpoint_id],
            "model_id": [model.id],
            "user_id": [owner.id, admin.id],
            "token_id": [spare_token_id],
            "check_id": [check.json()["id"]],
            "suite_id": [suite.json()["id"]],
            "suite_run_id": [suite_run.json()["suite_run"]["id"]],
        },
    )


def _pick(value: Any, choices: list[int]) -> Any:
    """Usually (3 times in 4) one of ``choices`` in place of a generated int; derived from the
    value itself, so the same generated case always becomes the same request."""
    if isinstance(value, bool) or not isinstance(value, int) or not choices:
        return value
    digest = zlib.crc32(repr(value).encode())
    return value if digest % 4 == 0 else choices[digest // 4 % len(choices)]


# Body fields that name seeded rows, by suffix: ``winner_message_id``, ``agent_ids``, ….
KINDS = (
    "agent_id", "message_id", "task_id", "run_id", "pipeline_id", "comparison_id", "user_id",
    "model_id", "check_id",
)  # fmt: skip


def _kind(name: str) -> str | None:
    """The seeded kind an id field names: ``winner_message_id`` → ``message_id``."""
    for kind in KINDS:
        if name in (kind, kind + "s") or name.endswith("_" + kind):
            return kind
    return None


def _aim(value: Any, seeded: Seeded) -> Any:
    """Swap generated ids in a body (at any depth) for seeded ones."""
    if isinstance(value, dict):
        aimed = {}
        for key, item in value.items():
            kind = _kind(key) if isinstance(key, str) else None
            if kind and isinstance(item, list):
                aimed[key] = [_pick(each, seeded.ids[kind]) for each in item]
            elif kind:
                aimed[key] = _pick(item, seeded.ids[kind])
            else:
                aimed[key] = _aim(item, seeded)
        return aimed
    if isinstance(value, list):
        return [_aim(item, seeded) for item in value]
    return value


class _ServerErrors(logging.Handler):
    """Keeps what ``app.web.errors`` logs about unhandled errors, for the failure message."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        formatter = logging.Formatter("%(name)s: %(message)s")
        return "\n".join(formatter.format(record) for record in self.records)


@pytest.fixture
def server_errors() -> Iterator[_ServerErrors]:
    handler = _ServerErrors()
    logger = logging.getLogger("app.web.errors")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(
    case: schemathesis.Case, seeded: Seeded, server_errors: _ServerErrors
) -> None:
    for name, value in list((case.path_parameters or {}).items()):
        if name == "slug" and isinstance(value, str) and zlib.crc32(value.encode()) % 4:
            case.path_parameters[name] = seeded.slug
        elif name in seeded.ids:
            case.path_parameters[name] = _pick(value, seeded.ids[name])
    if isinstance(case.body, dict | list):
        case.body = _aim(case.body, seeded)
    admin = ADMIN_TAG in (case.operation.tags or [])
    token = seeded.admin_token if admin else seeded.owner_token

    server_errors.records.clear()
    try:
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        if case.operation.path == "/healthz" and response.status_code == 503:
            # The health report itself: 503 says a part is down (here: no worker runs).
            report = response.json()
            assert report["status"] != "ok" and all("ok" in report[part] for part in HEALTH_PARTS)
            return
        # Success bodies must match the documented models too. Error bodies are not checked:
        # the app answers every error as {"detail": "…"}, while FastAPI documents its own 422
        # shape (a list), and the other 4xx answers are not documented at all.
        checks = [not_a_server_error]
        if response.status_code < 400:
            checks += [response_schema_conformance, content_type_conformance]
        case.validate_response(response, checks=checks)
    except Exception as exc:
        if server_errors.records:
            exc.add_note("The server logged:\n" + server_errors.text())
        raise
