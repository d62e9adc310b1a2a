"""The live streams: framed by sse-starlette, resumable, multiplexed per page, and closed when
the viewer may no longer see them. Real worker, real Redis, a scripted model."""

from __future__ import annotations

import html

import pytest
from sqlmodel import select

from app.models import Role, Run
from tests.engine_helpers import CHAT, start_task, wait_for_runs
from tests.factories import add_member, make_user, sign_in
from tests.live_helpers import parse, read_until
from tests.scripted_server import answer

pytestmark = pytest.mark.timeout(90)

HOSTILE = "before\rid: 999\revent: done\rdata: x\rafter"


def _run_of(session, task) -> Run:
    session.expire_all()
    return session.exec(select(Run).where(Run.task_id == task["id"])).one()


def test_a_bare_cr_from_the_model_cannot_set_the_event_id_or_type(client, session, team,
                                                                   model_server):  # fmt: skip
    workspace, (coder, *_) = team
    model_server.on(CHAT, answer(HOSTILE))
    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    run = _run_of(session, task)

    # The task page's stream, read as a browser would, from the start of the run.
    events = read_until(client, f"/t/{task['id']}/live?runs={run.id}",
                        lambda e: e.type.endswith("-done"))  # fmt: skip
    assert [e.type for e in events] == [f"run-{run.id}-done"]
    assert "999" not in {e.last_id for e in events}
    assert "before" in events[0].data and "after" in events[0].data

    # The JSON stream replays every entry: the text arrives whole, in JSON, with Redis ids.
    events = read_until(client, f"/api/v1/runs/{run.id}/events", lambda e: e.type == "done")
    assert all(e.last_id != "999" for e in events)
    assert [e.type for e in events if e.type in ("done", "error")] == ["done"]


def test_a_live_page_stream_frames_model_text_safely(client, session, team, model_server):
    workspace, (coder, *_) = team
    model_server.on(CHAT, answer(HOSTILE + " " + " ".join(["w"] * 40), pause=0.05))
    task = start_task(client, workspace, [coder])
    run_id = client.get(f"/api/v1/tasks/{task['id']}").json()["runs"][0]["id"]
    events = read_until(client, f"/t/{task['id']}/live?runs={run_id}",
                        lambda e: e.type.endswith("-done"))  # fmt: skip
    kinds = {e.type for e in events}
    assert kinds <= {f"run-{run_id}-{k}" for k in ("text", "token", "state", "done")}, kinds
    assert all(not e.last_id.startswith("999") for e in events)
    streamed = "".join(e.data for e in events if e.type.endswith(("-token", "-text")))
    # Each CR became a line break inside the data, never the end of a field.
    assert "id: 999\nevent: done\ndata: x\nafter" in html.unescape(streamed)


def test_resuming_after_the_end_is_told_the_run_is_over(client, session, team):
    workspace, (coder, *_) = team
    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    run = _run_of(session, task)
    whole = read_until(client, f"/api/v1/runs/{run.id}/events", lambda e: e.type == "done")
    done_id = whole[-1].last_id

    again = read_until(client, f"/api/v1/runs/{run.id}/events", lambda e: e.type == "done",
                       headers={"Last-Event-ID": done_id})  # fmt: skip
    assert [e.type for e in again] == ["done"]

    page = read_until(client, f"/t/{task['id']}/live?runs={run.id}",
                      lambda e: e.type.endswith("-done"))  # fmt: skip
    resumed = read_until(client, f"/t/{task['id']}/live?runs={run.id}",
                         lambda e: e.type.endswith("-done"),
                         headers={"Last-Event-ID": page[-1].last_id})  # fmt: skip
    assert [e.type for e in resumed] == [f"run-{run.id}-done"]


def test_an_invalid_last_event_id_is_ignored(client, session, team):
    workspace, (coder, *_) = team
    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    run = _run_of(session, task)
    for bad in ("x-y", "999999999999999999999999-0", "r1=zz;w=", "-1"):
        events = read_until(client, f"/api/v1/runs/{run.id}/events",
                            lambda e: e.type == "done", headers={"Last-Event-ID": bad})  # fmt: skip
        assert events[-1].type == "done"


def test_a_fresh_connection_replaces_the_text_instead_of_appending_it(client, session, team,
                                                                       model_server):  # fmt: skip
    """htmx's SSE extension reconnects without Last-Event-ID after a hard error: the page must
    not show the text twice."""
    workspace, (coder, *_) = team
    words = [f"w{i}" for i in range(60)]
    model_server.on(CHAT, answer(" ".join(words), pause=0.05))
    task = start_task(client, workspace, [coder])
    run_id = client.get(f"/api/v1/tasks/{task['id']}").json()["runs"][0]["id"]
    url = f"/t/{task['id']}/live?runs={run_id}"

    shown = ""  # the text element of the page, as the swaps leave it

    def apply(event) -> None:
        nonlocal shown
        if event.type == f"run-{run_id}-token":
            shown += html.unescape(event.data)
        elif event.type == f"run-{run_id}-text":
            shown = html.unescape(event.data)

    with client.stream("GET", url) as response:
        for event in parse(response.iter_raw()):
            assert not event.type.endswith("-done")
            apply(event)
            if "w5 " in shown:
                break
    # A hard reconnect: a new connection, no Last-Event-ID.
    second = []
    with client.stream("GET", url) as response:
        for event in parse(response.iter_raw()):
            if event.type.endswith("-done"):
                break
            apply(event)
            second.append(event)
    assert second[0].type == f"run-{run_id}-text"
    assert shown == " ".join(words)


def _busy_run(client, workspace, agent, model_server) -> dict:
    model_server.on(CHAT, answer(" ".join(["slow"] * 400), pause=0.2))
    return start_task(client, workspace, [agent])


def test_a_removed_member_stops_receiving_a_busy_runs_events(client, session, team, model_server):
    from app.services.sharing import remove_member
    from app.services.tokens import create_token

    workspace, (coder, *_) = team
    member = make_user(session)
    add_member(session, workspace=workspace, user=member, role=Role.viewer)
    _, token = create_token(session=session, user=member, name="member's")
    session.commit()
    task = _busy_run(client, workspace, coder, model_server)
    run_id = client.get(f"/api/v1/tasks/{task['id']}").json()["runs"][0]["id"]
    headers = {"Authorization": f"Bearer {token}"}
    seen = []
    with client.stream("GET", f"/api/v1/runs/{run_id}/events", headers=headers) as response:
        assert response.status_code == 200
        for event in parse(response.iter_raw()):
            seen.append(event.type)
            if event.type == "token" and seen.count("token") == 2:
                owner = _owner_of(session, workspace.id)
                remove_member(session=session, workspace=workspace, actor=owner,
                              user_id=member.id)  # fmt: skip
                session.commit()
    # The stream ended although the run is still going.
    assert "done" not in seen and "error" not in seen
    session.expire_all()
    assert session.get(Run, run_id).status in ("queued", "running")


def _owner_of(session, workspace_id):
    from app.models import Membership, User

    membership = session.exec(
        select(Membership).where(
            Membership.workspace_id == workspace_id, Membership.role == Role.owner
        )  # fmt: skip
    ).first()
    return session.get(User, membership.user_id)


def test_a_removed_member_stops_receiving_the_workspace_feed(client, session, team):
    from app.services.sharing import remove_member

    workspace, _ = team
    member = make_user(session)
    add_member(session, workspace=workspace, user=member, role=Role.viewer)
    sign_in(client, session, member)
    with client.stream("GET", f"/w/{workspace.slug}/live") as response:
        assert response.status_code == 200
        remove_member(session=session, workspace=workspace,
                      actor=_owner_of(session, workspace.id), user_id=member.id)  # fmt: skip
        session.commit()
        # No event flows on this feed: the stream must still end by itself.
        assert [e.type for e in parse(response.iter_raw())] == ["live-end"]


def test_a_signed_out_session_stops_receiving_the_workspace_feed(client, session, team):
    workspace, _ = team
    with client.stream("GET", f"/w/{workspace.slug}/live") as response:
        assert response.status_code == 200
        assert client.post("/signout", follow_redirects=False).status_code == 303
        assert [e.type for e in parse(response.iter_raw())] == ["live-end"]


def test_the_board_feed_names_the_agent_and_the_task(client, session, team):
    workspace, (coder, *_) = team
    with client.stream("GET", f"/w/{workspace.slug}/live") as response:
        start_task(client, workspace, [coder])
        for event in parse(response.iter_raw()):
            assert event.type in ("activity", "card"), event.type  # cards move live too
            if event.type == "activity" and "succeeded" in event.data:
                break
    assert "<strong>Coder</strong> succeeded" in event.data and ">t</a>" in event.data
