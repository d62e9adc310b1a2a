"""What an attack on a running install found (issue 16), each reproduced with real requests:
several accounts, real HTTP, real Redis, parallel requests for the races."""

from __future__ import annotations

import itertools
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlmodel import select

from app.config import load_settings
from app.db import get_engine
from app.engine import live
from app.models import (
    ApiToken,
    LoginSession,
    Membership,
    Message,
    Model,
    ModelEndpoint,
    Role,
    Run,
    Task,
    User,
)
from app.models.common import utcnow
from app.redis_conn import get_redis
from app.services.accounts import create_user
from app.services.comparisons import create_comparison
from app.services.sharing import create_invite
from app.services.tokens import create_token
from app.web.app import create_app
from tests.factories import PASSWORD, add_member, make_user, make_workspace, sign_in
from tests.scripted_server import Reply, unused_port

_numbers = itertools.count(1)


def new_client() -> TestClient:
    return TestClient(create_app(), base_url="http://testserver")


def answered_task(session, workspace, *, title: str = "t", answers: tuple[str, ...] = ("a",)):
    """A task with a question and finished answers (runs included), made directly in SQL."""
    endpoint = ModelEndpoint(name=f"e{next(_numbers)}", base_url="http://127.0.0.1:9/v1")
    session.add(endpoint)
    session.flush()
    model = Model(endpoint_id=endpoint.id, name="m")
    session.add(model)
    session.flush()
    task = Task(workspace_id=workspace.id, title=title)
    session.add(task)
    session.flush()
    question = Message(task_id=task.id, role="user", content="q")
    session.add(question)
    session.flush()
    messages, runs = [], []
    for text in answers:
        message = Message(task_id=task.id, parent_id=question.id, role="assistant", content=text)
        session.add(message)
        session.flush()
        run = Run(task_id=task.id, model_id=model.id, input_message_id=question.id,
                  output_message_id=message.id, status="succeeded")  # fmt: skip
        session.add(run)
        session.flush()
        messages.append(message)
        runs.append(run)
    session.commit()
    return task, messages, runs


# --- 1. deleted data never reaches another user's live stream --------------------------------


def test_a_deleted_workspaces_ids_and_streams_are_never_handed_to_someone_else(client, session):
    ada = make_user(session)
    sign_in(client, session, ada)
    secret = make_workspace(session, owner=ada, name="Secret")
    _, _, (old_run,) = answered_task(session, secret, title="the secret brief")
    redis = get_redis()
    live.append_run(redis, old_run.id, "token", {"text": "the launch code is 0000"})
    live.append_workspace(redis, secret.id, "state", {"id": old_run.id, "status": "running"})
    old_ids = (secret.id, old_run.id)
    slug = secret.slug

    assert client.post(f"/w/{slug}/delete", data={"confirm": slug}).status_code == 200
    session.expire_all()
    assert session.exec(select(Task).where(Task.workspace_id == old_ids[0])).first() is None

    assert not redis.exists(live.run_stream(old_ids[1]), live.workspace_stream(old_ids[0]))
    grace = make_user(session)
    hers = make_workspace(session, owner=grace, name="Hers")
    _, _, (new_run,) = answered_task(session, hers)
    assert (hers.id, new_run.id) != old_ids and hers.id > old_ids[0] and new_run.id > old_ids[1]
    with new_client() as other:
        sign_in(other, session, grace)
        # Nothing of the deleted run is there to replay under the new run's id.
        assert other.get(f"/api/v1/runs/{new_run.id}").status_code == 200
        assert not redis.xrange(live.run_stream(new_run.id))


def test_the_activity_feed_never_names_another_workspaces_task(session):
    from app.routes.pages import _activity_line

    ada, grace = make_user(session), make_user(session)
    mine = make_workspace(session, owner=ada, name="Mine")
    theirs = make_workspace(session, owner=grace, name="Theirs")
    their_task, _, _ = answered_task(session, theirs, title="their private title")
    my_task, _, _ = answered_task(session, mine, title="my title")

    leaked = _activity_line(mine.id, {"id": 1, "status": "queued", "task_id": their_task.id})
    assert "their private title" not in leaked and f"/t/{their_task.id}" not in leaked
    own = _activity_line(mine.id, {"id": 2, "status": "queued", "task_id": my_task.id})
    assert "my title" in own


# --- 2. the comparison diff is bounded and computed once ---------------------------------------


def test_a_huge_answer_is_compared_in_bounded_work_once_for_every_viewer(
    client, session, monkeypatch
):
    import difflib

    from app.services import comparisons

    words = [f"w{i % 997}" for i in range(16_000)]
    long_a = " ".join(words)[:80_000]
    long_b = " ".join(reversed(words))[:80_000]
    owner = make_user(session)
    sign_in(client, session, owner)
    workspace = make_workspace(session, owner=owner)
    task, (a, b), _ = answered_task(session, workspace, answers=(long_a, long_b))
    comparison = create_comparison(session=session, task=task, author=owner,
                                   message_ids=[a.id, b.id])  # fmt: skip
    session.commit()

    compared: list[tuple[int, int]] = []
    original = difflib.SequenceMatcher.set_seqs

    def counting(self, a, b):  # type: ignore[no-untyped-def]
        compared.append((len(a), len(b)))
        return original(self, a, b)

    monkeypatch.setattr(difflib.SequenceMatcher, "set_seqs", counting)
    comparisons._diff.cache_clear()
    page = client.get(f"/c/{comparison.id}")
    assert page.status_code == 200
    assert BeautifulSoup(page.text, "html.parser").find(id="column-B-cut") is not None
    assert compared and all(max(sizes) <= comparisons.MAX_DIFF_WORDS for sizes in compared)
    first = len(compared)

    viewer = make_user(session)
    add_member(session, workspace=workspace, user=viewer, role=Role.viewer)
    with new_client() as other:
        sign_in(other, session, viewer)
        for _ in range(3):  # another viewer, polling
            assert other.get(f"/c/{comparison.id}").status_code == 200
    assert len(compared) == first, "the diff was computed again for the same answers"
    assert comparisons.diff_cache_info().hits >= 3


# --- 4. share links end with their maker's membership, and owners see them all ----------------


def test_a_removed_members_share_links_stop_and_owners_list_and_revoke_links(client, session):
    owner = make_user(session)
    sign_in(client, session, owner)
    workspace = make_workspace(session, owner=owner)
    task, _, _ = answered_task(session, workspace, title="shared task")
    viewer = make_user(session)
    add_member(session, workspace=workspace, user=viewer, role=Role.viewer)
    with new_client() as theirs:
        sign_in(theirs, session, viewer)
        made = theirs.post(f"/api/v1/tasks/{task.id}/share-links", json={"allow_anonymous": True})
        assert made.status_code == 201
        url = made.json()["url"].removeprefix("http://testserver")
        assert theirs.get(f"/api/v1/workspaces/{workspace.slug}/share-links").status_code == 404
    own = client.post(f"/api/v1/tasks/{task.id}/share-links", json={}).json()

    listed = client.get(f"/api/v1/workspaces/{workspace.slug}/share-links").json()
    assert [(link["created_by"], link["allow_anonymous"]) for link in listed] == [
        (owner.email, False), (viewer.email, True)
    ]  # fmt: skip
    members = BeautifulSoup(client.get(f"/w/{workspace.slug}/members").text, "html.parser")
    assert viewer.email in members.find(id=f"share-link-{listed[1]['id']}").text

    with new_client() as anonymous:
        assert anonymous.get(url).status_code == 200
        removed = client.delete(f"/api/v1/workspaces/{workspace.slug}/members/{viewer.id}")
        assert removed.status_code == 204
        assert anonymous.get(url).status_code == 404
    revoked = client.post(f"/links/{own['id']}/revoke", data={"back_to_members": "true"},
                          follow_redirects=False)  # fmt: skip
    assert revoked.headers["location"] == f"/w/{workspace.slug}/members"
    assert client.get(f"/api/v1/workspaces/{workspace.slug}/share-links").json() == []


# --- 5. the sign-in limit holds against spaces, parallel guesses and forged addresses ---------


def test_spaces_around_the_email_do_not_start_a_fresh_count(client, session):
    user = make_user(session, email="ada@example.com")
    for _ in range(10):
        wrong = client.post("/signin", data={"email": "ada@example.com", "password": "nope"})
        assert wrong.status_code == 400
    for spelled in (" ada@example.com", "ada@example.com\t", " ADA@example.com "):
        attempt = client.post("/signin", data={"email": spelled, "password": PASSWORD},
                              follow_redirects=False)  # fmt: skip
        assert attempt.status_code == 429, spelled
    assert user.id is not None


@pytest.fixture(scope="module")
def web_server() -> Iterator[str]:
    """The web server as ``switchboard web`` starts it (its argv), on a free loopback port."""
    from app.runtime.cli import web_argv

    settings = load_settings(port=unused_port(), web_workers=1)
    process = subprocess.Popen(web_argv(settings), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{settings.port}"
    try:
        with httpx.Client() as http:
            for _ in range(600):
                try:
                    http.get(f"{base}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    if process.poll() is not None:
                        raise RuntimeError("the web server did not start") from None
                    threading.Event().wait(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(10)


def _sign_in(base: str, email: str, password: str, headers: dict[str, str] | None = None) -> int:
    headers = {"origin": base, **(headers or {})}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        return http.post("/signin", data={"email": email, "password": password}).status_code


def test_forty_parallel_wrong_passwords_get_ten_tries(web_server, session):
    make_user(session, email="target@example.com")
    start = threading.Barrier(40)

    def guess(number: int) -> int:
        start.wait()
        return _sign_in(web_server, "target@example.com", f"guess {number}")

    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(guess, range(40)))
    assert answers.count(400) == 10 and answers.count(429) == 30, answers
    assert _sign_in(web_server, "target@example.com", PASSWORD) == 429


def test_a_forged_forwarded_for_does_not_give_a_fresh_address(web_server, session):
    answers = [
        _sign_in(
            web_server,
            f"nobody{n}@example.com",
            "wrong",
            headers={"x-forwarded-for": f"203.0.113.{n}"},
        )  # fmt: skip
        for n in range(31)
    ]
    assert answers[:30] == [400] * 30 and answers[30] == 429


def test_forwarded_headers_are_believed_only_from_configured_proxies():
    from app.runtime.cli import web_argv

    assert "--no-proxy-headers" in web_argv(load_settings())
    assert "--forwarded-allow-ips" not in web_argv(load_settings())
    behind = web_argv(load_settings(trusted_proxies=" 10.0.0.2, 10.0.0.3 "))
    assert behind[behind.index("--forwarded-allow-ips") + 1] == "10.0.0.2,10.0.0.3"


# --- 6. a token is not a permanent login -------------------------------------------------------


def test_changing_the_password_ends_other_sessions_and_revokes_tokens(client, session):
    user = make_user(session)
    sign_in(client, session, user)
    _, token = create_token(session=session, user=user, name="script")
    session.commit()
    with new_client() as elsewhere:
        sign_in(elsewhere, session, user)
        assert elsewhere.get("/api/v1/me").status_code == 200
        change = {"current_password": PASSWORD, "new_password": "a new password"}
        page = client.post("/account/password", data=change)
        assert page.status_code == 200
        notice = BeautifulSoup(page.text, "html.parser").find(id="page-notice").text
        assert "1 API token was revoked" in notice
        assert elsewhere.get("/api/v1/me").status_code == 401
    with new_client() as script:
        bearer = {"authorization": f"Bearer {token}"}
        assert script.get("/api/v1/me", headers=bearer).status_code == 401
    assert client.get("/api/v1/me").status_code == 200  # this session stays


def test_a_token_cannot_mint_tokens_or_set_a_password(session):
    user = create_user(session=session, email="admin@example.com", password=None, is_admin=True)
    _, token = create_token(session=session, user=user, name="script")
    session.commit()
    bearer = {"authorization": f"Bearer {token}"}
    with new_client() as script:
        minted = script.post("/api/v1/me/tokens", json={"name": "more"}, headers=bearer)
        assert minted.status_code == 403 and "API token" in minted.json()["detail"]
        password = script.put("/api/v1/me/password", json={"new_password": "taken over!"},
                              headers=bearer)  # fmt: skip
        assert password.status_code == 403
    session.refresh(user)
    assert user.password_hash is None
    assert len(session.exec(select(ApiToken).where(ApiToken.user_id == user.id)).all()) == 1


def test_a_first_password_needs_a_fresh_sign_in(client, session):
    user = create_user(session=session, email="admin@example.com", password=None, is_admin=True)
    session.commit()
    sign_in(client, session, user)
    session.execute(sa.update(LoginSession).values(created_at=utcnow() - timedelta(minutes=11)))
    session.commit()
    stale = client.put("/api/v1/me/password", json={"new_password": "first password"})
    assert stale.status_code == 403 and "sign in again" in stale.json()["detail"]
    with new_client() as fresh:
        sign_in(fresh, session, user)
        assert fresh.put("/api/v1/me/password",
                         json={"new_password": "first password"}).status_code == 204  # fmt: skip


def test_a_tokens_last_use_is_written_once_a_minute(session):
    user = make_user(session)
    _, token = create_token(session=session, user=user, name="script")
    session.commit()
    writes: list[int] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("UPDATE API_TOKEN"):
            writes.append(cursor.rowcount)

    sa.event.listen(get_engine(), "after_cursor_execute", count)
    try:
        with new_client() as script:
            for _ in range(3):
                response = script.get("/api/v1/me", headers={"authorization": f"Bearer {token}"})
                assert response.status_code == 200
    finally:
        sa.event.remove(get_engine(), "after_cursor_execute", count)
    # Even an UPDATE that changes no row takes SQLite's write lock: only the first request tries.
    assert writes == [1], "three requests within a minute wrote 'last used' more than once"
    row = session.exec(select(ApiToken).where(ApiToken.user_id == user.id)).one()
    session.refresh(row)
    assert row.last_used_at is not None
    first = row.last_used_at
    with new_client() as script:
        script.get("/api/v1/me", headers={"authorization": f"Bearer {token}"})
    session.refresh(row)
    assert row.last_used_at == first


# --- 7. a workspace always keeps an owner, even when two owners act at once -------------------


def _at_once(*calls):
    start = threading.Barrier(len(calls))

    def run(call):
        start.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.mark.parametrize("action", ["demote", "remove"])
def test_two_owners_acting_on_each_other_at_once_leave_one_owner(session, action):
    ada, grace = make_user(session), make_user(session)
    workspace = make_workspace(session, owner=ada)
    add_member(session, workspace=workspace, user=grace, role=Role.owner)
    base = f"/api/v1/workspaces/{workspace.slug}/members"
    with new_client() as first, new_client() as second:
        sign_in(first, session, ada)
        sign_in(second, session, grace)

        def act(client, other):
            if action == "demote":
                return lambda: client.put(f"{base}/{other.id}", json={"role": "viewer"})
            return lambda: client.delete(f"{base}/{other.id}")

        answers = _at_once(act(first, grace), act(second, ada))
    codes = sorted(answer.status_code for answer in answers)
    # The second is refused: the last owner stays (409), or, removed already, it is no longer
    # a member of the workspace at all (404).
    assert codes[0] in (200, 204) and codes[1] in (404, 409), [a.text for a in answers]
    session.expire_all()
    owners = session.exec(
        select(Membership).where(
            Membership.workspace_id == workspace.id, Membership.role == Role.owner
        )  # fmt: skip
    ).all()
    assert len(owners) == 1


# --- 9. viewers open comparisons (a read-only view) but do not vote ---------------------------


def test_viewers_compare_but_do_not_vote_as_the_readme_says(client, session):
    from app.paths import PROJECT_ROOT

    owner = make_user(session)
    workspace = make_workspace(session, owner=owner)
    _, (a, b), _ = answered_task(session, workspace, answers=("x", "y"))
    viewer = make_user(session)
    add_member(session, workspace=workspace, user=viewer, role=Role.viewer)
    sign_in(client, session, viewer)
    made = client.post("/api/v1/comparisons", json={"message_ids": [a.id, b.id]})
    assert made.status_code == 201
    vote = client.post(f"/api/v1/comparisons/{made.json()['id']}/votes", json={"outcome": "a"})
    assert vote.status_code == 404
    readme = (PROJECT_ROOT / "README.md").read_text()
    viewer_row = next(line for line in readme.splitlines() if line.startswith("| viewer |"))
    assert "comparisons" in viewer_row and "voting needs an editor" in viewer_row


# --- 10. removal closes the links made before it ------------------------------------------------


def test_a_removed_member_cannot_rejoin_through_an_old_invite(client, session):
    owner = make_user(session)
    sign_in(client, session, owner)
    workspace = make_workspace(session, owner=owner)
    old = create_invite(session=session, workspace=workspace, owner=owner, role=Role.editor,
                        max_uses=10)  # fmt: skip
    session.commit()
    member = make_user(session)
    with new_client() as theirs:
        sign_in(theirs, session, member)
        assert theirs.post(f"/join/{old.token}", follow_redirects=False).status_code == 303
        assert client.post(f"/w/{workspace.slug}/members/{member.id}/remove",
                           follow_redirects=False).status_code == 303  # fmt: skip
        again = theirs.post(f"/join/{old.token}", follow_redirects=False)
        assert again.status_code == 403 and "new invite" in again.text
        assert theirs.get(f"/w/{workspace.slug}").status_code == 404
        fresh = create_invite(session=session, workspace=workspace, owner=owner, role=Role.viewer)
        session.commit()
        assert theirs.post(f"/join/{fresh.token}", follow_redirects=False).status_code == 303
        assert theirs.get(f"/api/v1/workspaces/{workspace.slug}").json()["role"] == "viewer"


# --- 11. an endpoint's key stays with its server; health errors are short and clean -----------


def test_a_new_server_url_drops_the_stored_key_unless_one_is_given(client, session):
    admin = make_user(session, admin=True)
    sign_in(client, session, admin)
    made = client.post("/api/v1/endpoints", json={
        "name": "paid", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-secret-1",
    })  # fmt: skip
    assert made.status_code == 201
    endpoint_id = made.json()["id"]

    def key() -> str | None:
        session.expire_all()
        endpoint = session.get(ModelEndpoint, endpoint_id)
        assert endpoint is not None
        return endpoint.api_key

    client.patch(f"/api/v1/endpoints/{endpoint_id}", json={"base_url": "http://127.0.0.1:9/v2"})
    assert key() == "sk-secret-1"  # same server, another path
    client.patch(f"/api/v1/endpoints/{endpoint_id}", json={"base_url": "http://10.9.9.9:9/v1"})
    assert key() is None
    client.patch(f"/api/v1/endpoints/{endpoint_id}",
                 json={"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-secret-2"})  # fmt: skip
    assert key() == "sk-secret-2"


def test_a_health_error_shows_the_status_and_a_short_clean_excerpt(client, session, model_server):
    admin = make_user(session, admin=True)
    sign_in(client, session, admin)
    body = "\x1b[31mboom\x1b[0m \u202eevil\u202c sk-secret-key " + "x" * 5000
    model_server.on("/v1/models", Reply(500, body))
    made = client.post("/api/v1/endpoints", json={
        "name": "loud", "base_url": model_server.base_url, "api_key": "sk-secret-key",
    })  # fmt: skip
    endpoint = session.get(ModelEndpoint, made.json()["id"])
    session.refresh(endpoint)
    error = endpoint.health_error or ""
    assert "500" in error and "boom" in error
    assert "sk-secret-key" not in error and len(error) < 400
    assert not any(ch in error for ch in "\x1b\u202e\u202c")


def test_ids_in_stream_positions_are_checked():
    assert live.parse_stream_id("1700000000000-3") == "1700000000000-3"
    assert live.parse_stream_id("0") == "0"
    for bad in (None, "", "abc", "1-", "-1", "1-2-3", "²", "9" * 5000, "1-" + "9" * 21):
        assert live.parse_stream_id(bad) is None, bad


def test_nobody_is_locked_out_by_the_fix(session):
    """The count of attempts gives back a successful one: a person who mistypes a few times and
    then signs in right, ten times over, is never refused."""
    user = make_user(session)
    with new_client() as browser:
        for _ in range(12):
            browser.post("/signin", data={"email": user.email, "password": "typo"})
            browser.cookies.clear()
            ok = browser.post("/signin", data={"email": user.email, "password": PASSWORD},
                              follow_redirects=False)  # fmt: skip
            assert ok.status_code == 303
            browser.cookies.clear()
    assert session.get(User, user.id) is not None
