"""A judge agent votes on a comparison: a real run on the queue, its verdict read strictly,
its vote kept apart from people's, and how often it agrees with them."""

from __future__ import annotations

import time

import pytest
from bs4 import BeautifulSoup
from sqlmodel import select

from app.engine.judging import Unreadable, judge_prompt, read_verdict
from app.models import Judgement, Message, Role, Run, Vote, VoteOutcome
from app.services.leaderboard import _VoteRow, judge_agreement
from tests.engine_helpers import CHAT, by_system_prompt, start_task, wait_for_runs
from tests.factories import add_member, make_agent, make_model, make_user, make_workspace, sign_in
from tests.scripted_server import Reply, answer

# --- reading a verdict ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "columns", "outcome", "column"),
    [
        ("Verdict: A\nReason: shorter.", 2, VoteOutcome.a, None),
        ("**Verdict:** B", 2, VoteOutcome.b, None),
        ("verdict - answer b", 2, VoteOutcome.b, None),
        ("Verdict: a tie\nReason: the same code.", 2, VoteOutcome.tie, None),
        ("Verdict: Both are bad", 2, VoteOutcome.both_bad, None),
        ("Verdict: neither", 2, VoteOutcome.both_bad, None),
        ("Verdict: C\nReason: handles None.", 3, VoteOutcome.best, 2),
        ("Some thinking first.\n\nVerdict: B\nVerdict: B", 2, VoteOutcome.b, None),
    ],
)
def test_a_verdict_is_read(text, columns, outcome, column):
    verdict = read_verdict(text, columns=columns)
    assert (verdict.outcome, verdict.column) == (outcome, column)


def test_the_reason_is_read_beside_the_verdict():
    verdict = read_verdict("Verdict: A\nReason: A checks the empty list.", columns=2)
    assert verdict.reason == "A checks the empty list."
    assert read_verdict("Verdict: A", columns=2).reason == ""


@pytest.mark.parametrize(
    ("text", "columns", "says"),
    [
        ("I like the second one more.", 2, "has no line like"),
        ("", 2, "(nothing)"),
        # A base model echoing its instructions must not vote A.
        ("Reply with two lines:\nVerdict: A, B, tie or both bad\nReason: x", 2, "more than one"),
        ("Verdict: B, although A is close", 2, "more than one"),
        ("Verdict: maybe", 2, "names no choice"),
        ("Verdict: A\nVerdict: B", 2, "disagree"),
        ("Verdict: C", 2, "the answers are AB"),
        ("Verdict: tie", 3, "pick the best"),
    ],
)
def test_hostile_or_unclear_output_casts_no_vote(text, columns, says):
    with pytest.raises(Unreadable) as caught:
        read_verdict(text, columns=columns)
    assert says in caught.value.message


def test_the_prompt_is_blind_and_lettered():
    prompt = judge_prompt("Sort a list.", ["use sorted()", "write quicksort"])
    assert "Question:\n<<<\nSort a list.\n>>>" in prompt
    assert "Answer A:\n<<<\nuse sorted()\n>>>" in prompt
    assert "Answer B:\n<<<\nwrite quicksort\n>>>" in prompt
    assert "Verdict: A, B, tie or both bad" in prompt
    three = judge_prompt("Q", ["x", "y", "z"])
    assert "Answer C:" in three and "(A, B, C)" in three
    long = judge_prompt("Q", ["x" * 20_000, "y"])
    assert len(long) < 10_000 and "the rest of this answer is cut" in long


# --- agreement between judges and people ---------------------------------------------------


def _vote(comparison: int, outcome: str, *, judge: bool, winner: int | None = None) -> _VoteRow:
    return _VoteRow(0, comparison, outcome, winner, judge, None if judge else 1)


def test_agreement_counts_only_comparisons_both_voted_on():
    votes = [
        _vote(1, "a", judge=False), _vote(1, "a", judge=True),  # agree
        _vote(2, "b", judge=False), _vote(2, "a", judge=True),  # disagree
        _vote(3, "tie", judge=False), _vote(3, "both_bad", judge=True),  # different verdicts
        _vote(4, "a", judge=False), _vote(4, "a", judge=False), _vote(4, "a", judge=True),
        _vote(5, "a", judge=True),  # no person voted: not counted
        _vote(6, "b", judge=False),  # no judge voted: not counted
        _vote(7, "best", judge=False, winner=70), _vote(7, "best", judge=True, winner=71),
    ]  # fmt: skip
    share, pairs = judge_agreement(votes)
    # Pairs (judge verdict, person verdict) per comparison both voted on: 1 + 1 + 1 + 2 + 1.
    assert pairs == 6
    assert share == pytest.approx(3 / 6)  # comparison 1 once, comparison 4 twice
    assert judge_agreement([_vote(5, "a", judge=True)]) == (None, 0)


# --- the judge flow through the API and the page, with a real worker ----------------------


def judging_server(model_server, verdict: str) -> None:
    """Agents answer with their names; a judge's prompt is answered with ``verdict``."""

    def reply(received):
        if received.json["messages"][-1]["content"].startswith("Judge the answers"):
            return answer(verdict)
        return by_system_prompt(received)

    model_server.on(CHAT, reply)


def compared(client, team) -> tuple[dict, int]:
    workspace, agents = team
    task = start_task(client, workspace, agents[:2], brief="Say hello.")
    wait_for_runs(client, task["id"], 2)
    answers = [r["output_message_id"] for r in task["started"]["runs"]]
    created = client.post("/api/v1/comparisons", json={"message_ids": answers})
    assert created.status_code == 201, created.text
    return task, created.json()["id"]


def wait_settled_by_the_worker(session, timeout: float = 60) -> Judgement:
    """The judgement once SQL shows it settled, without any page or API call settling it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.expire_all()
        found = session.exec(select(Judgement)).first()
        if found is not None and found.status != "pending":
            return found
        time.sleep(0.2)
    raise AssertionError(f"the worker did not settle the judgement in {timeout}s")


def wait_for_judgement(client, comparison: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.get(f"/api/v1/comparisons/{comparison}/judgements").json()
        if found and found[0]["status"] != "pending":
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"the judgement did not settle in {timeout}s: {found}")


def test_a_judge_votes_blind_with_its_reason_kept_apart_from_people(
    client, session, team, model_server
):
    judging_server(model_server, "Verdict: B\nReason: B names the tester.")
    workspace, agents = team
    task, comparison = compared(client, team)
    client.post(f"/api/v1/comparisons/{comparison}/votes", json={"outcome": "b"})  # a person

    asked = client.post(f"/api/v1/comparisons/{comparison}/judgements",
                        json={"agent_id": agents[2].id})  # fmt: skip
    assert asked.status_code == 201, asked.text
    assert asked.json()["status"] == "pending"
    assert wait_settled_by_the_worker(session).status == "voted"
    judgement = wait_for_judgement(client, comparison)
    assert judgement["status"] == "voted", judgement

    # Blind: the judge saw the question and the answers, never who wrote them.
    sent = [r.json for r in model_server.received if r.path == CHAT][-1]["messages"][-1]["content"]
    assert "Answer A:\n<<<\nCoder says hello\n>>>" in sent and "Question:\n<<<\nSay hello." in sent
    assert "Coder" not in sent.replace("Coder says hello", "")
    assert "Tester" not in sent.replace("Tester says hello", "")

    vote = session.get(Vote, judgement["vote_id"])
    assert vote is not None and vote.judge and vote.judge_agent_id == agents[2].id
    assert vote.outcome == "b" and vote.reason == "B names the tester."
    assert vote.winner_message_id == task["started"]["runs"][1]["output_message_id"]

    # Kept apart: the leaderboard counts it only when asked to, and says how often judges agree.
    url = f"/api/v1/workspaces/{workspace.slug}/leaderboard?by=agent"
    people = client.get(url).json()
    assert (people["human_votes"], people["judge_votes"]) == (1, 1)
    assert people["judge_agreement"] == 1.0
    assert sum(row["votes"] for row in people["rows"]) == 2  # one vote, two contestants
    both = client.get(url + "&judges=true").json()
    assert sum(row["votes"] for row in both["rows"]) == 4
    exported = client.get(f"/api/v1/workspaces/{workspace.slug}/votes").json()
    assert [(v["judge"], v["reason"]) for v in exported] == [
        (False, None), (True, "B names the tester."),
    ]  # fmt: skip

    page = BeautifulSoup(client.get(f"/c/{comparison}").text, "html.parser")
    item = page.find(id=f"judgement-{judgement['id']}")
    assert "Reviewer" in item.text
    assert page.find(id=f"judgement-{judgement['id']}-verdict").text == "B is better"
    assert page.find(id=f"judgement-{judgement['id']}-reason").text == "— B names the tester."
    board = BeautifulSoup(client.get(f"/w/{workspace.slug}/leaderboard").text, "html.parser")
    assert "100 % of 1 verdict" in board.find(id="judge-agreement").text

    # The judge's thread is in the task, but the task page still opens on the answers.
    task_page = BeautifulSoup(client.get(f"/t/{task['id']}").text, "html.parser")
    run = session.get(Run, judgement["run_id"])
    assert task_page.find(id=f"message-{run.output_message_id}") is None
    assert task_page.find(id=f"message-{task['started']['runs'][1]['output_message_id']}")


def test_unreadable_output_casts_no_vote_and_says_why(client, session, team, model_server):
    judging_server(model_server, "Both answers look fine to me, honestly.")
    _, agents = team
    _, comparison = compared(client, team)
    page = client.post(f"/c/{comparison}/judge", data={"agent_id": agents[3].id},
                       follow_redirects=False)  # fmt: skip
    assert page.status_code == 303
    judgement = wait_for_judgement(client, comparison)
    assert judgement["status"] == "unreadable" and judgement["vote_id"] is None
    assert "no line like “Verdict: A”" in judgement["message"]
    assert session.exec(select(Vote)).all() == []
    shown = BeautifulSoup(client.get(f"/c/{comparison}").text, "html.parser")
    assert "Both answers look fine" in shown.find(id=f"judgement-{judgement['id']}-message").text


def test_a_failed_judge_run_says_so(client, session, team, model_server):
    _, agents = team
    _, comparison = compared(client, team)
    model_server.on(CHAT, Reply(500, {"error": {"message": "boom"}}))
    client.post(f"/api/v1/comparisons/{comparison}/judgements", json={"agent_id": agents[2].id})
    judgement = wait_for_judgement(client, comparison)
    assert judgement["status"] == "failed" and judgement["message"].startswith(
        "No vote: the judge's run failed"
    )
    assert session.exec(select(Vote)).all() == []


def test_bad_requests_to_the_judge_change_nothing(client, session, team, model_server):
    workspace, agents = team
    _, comparison = compared(client, team)
    url = f"/api/v1/comparisons/{comparison}/judgements"
    assert client.post(url, json={}).status_code == 422
    assert client.post(url, json={"agent_id": "x"}).status_code == 422
    other = make_workspace(session, owner=make_user(session))
    stranger = make_agent(session, workspace=other, model=make_model(
        session, base_url=model_server.base_url), name="Elsewhere")  # fmt: skip
    missing = client.post(url, json={"agent_id": stranger.id})
    assert missing.status_code == 404 and "No such agent" in missing.json()["detail"]
    page = client.post(f"/c/{comparison}/judge", data={"agent_id": ""})
    assert page.status_code == 400
    assert "Choose the agent" in BeautifulSoup(page.text, "html.parser").find(id="judge-error").text
    assert client.post(f"/c/{comparison}/judge", data={"agent_id": "99999"}).status_code == 404
    # A viewer may read judgements but not ask for one.
    viewer = make_user(session)
    add_member(session, workspace=workspace, user=viewer, role=Role.viewer)
    sign_in(client, session, viewer)
    assert client.get(url).status_code == 200
    assert client.post(url, json={"agent_id": agents[2].id}).status_code == 404
    assert session.exec(select(Judgement)).all() == []
    assert len(session.exec(select(Run)).all()) == 2  # only the two answers ever ran


def test_the_judge_waits_for_answers_still_streaming(client, session, team, model_server):
    workspace, agents = team
    model_server.on(CHAT, lambda received: answer("slow " * 200, pause=0.05))
    task = start_task(client, workspace, agents[:2])
    answers = [r["output_message_id"] for r in task["started"]["runs"]]
    comparison = client.post("/api/v1/comparisons", json={"message_ids": answers}).json()["id"]
    refused = client.post(f"/api/v1/comparisons/{comparison}/judgements",
                          json={"agent_id": agents[2].id})  # fmt: skip
    assert refused.status_code == 400 and "Wait for every answer" in refused.json()["detail"]
    for run in task["started"]["runs"]:
        client.post(f"/api/v1/runs/{run['id']}/cancel")


def test_a_deleted_judge_leaves_its_vote(client, session, team, model_server):
    judging_server(model_server, "Verdict: tie\nReason: same.")
    workspace, agents = team
    _, comparison = compared(client, team)
    client.post(f"/api/v1/comparisons/{comparison}/judgements", json={"agent_id": agents[2].id})
    assert wait_for_judgement(client, comparison)["status"] == "voted"
    assert client.delete(f"/api/v1/agents/{agents[2].id}").status_code in (200, 204)
    session.expire_all()
    vote = session.exec(select(Vote)).one()
    assert vote.judge and vote.judge_agent_id is None and vote.outcome == "tie"
    board = client.get(f"/api/v1/workspaces/{workspace.slug}/leaderboard").json()
    assert (board["human_votes"], board["judge_votes"]) == (0, 1)
    page = BeautifulSoup(client.get(f"/c/{comparison}").text, "html.parser")
    assert "A deleted agent" in page.find(id="judgements").text
    assert session.exec(select(Message)).all()  # the judge's thread stays in the task


def test_a_judgement_whose_message_was_lost_is_settled_by_the_page(
    client, session, team, model_server
):
    """The worker's follow-up can be lost (a crash between the run's end and it): the compare
    page settles a judgement whose run has ended, once."""
    from app.engine.judging import ask_judge
    from app.models import Comparison, RunStatus, User

    _, agents = team
    _, comparison_id = compared(client, team)
    comparison = session.get(Comparison, comparison_id)
    owner = session.exec(select(User)).first()
    judgement, started = ask_judge(session=session, comparison=comparison,
                                   agent_id=agents[2].id, author=owner)  # fmt: skip
    (run,) = started.runs
    run.status = RunStatus.succeeded  # as if a worker ran it and its follow-up never came
    session.get(Message, run.output_message_id).content = "Verdict: A\nReason: first."
    session.commit()  # never dispatched
    page = BeautifulSoup(client.get(f"/c/{comparison_id}").text, "html.parser")
    assert page.find(id=f"judgement-{judgement.id}-verdict").text == "A is better"
    client.get(f"/c/{comparison_id}")
    client.get(f"/api/v1/comparisons/{comparison_id}/judgements")
    session.expire_all()
    (vote,) = session.exec(select(Vote)).all()  # settled once, however often it is looked at
    assert vote.judge and vote.reason == "first."


def test_a_judge_asked_again_replaces_its_vote(client, session, team, model_server):
    verdicts = iter(["Verdict: A\nReason: first look.", "Verdict: B\nReason: second look."])

    def reply(received):
        if received.json["messages"][-1]["content"].startswith("Judge the answers"):
            return answer(next(verdicts))
        return by_system_prompt(received)

    model_server.on(CHAT, reply)
    _, agents = team
    _, comparison = compared(client, team)
    url = f"/api/v1/comparisons/{comparison}/judgements"
    first = client.post(url, json={"agent_id": agents[2].id}).json()
    assert wait_for_judgement(client, comparison)["status"] == "voted"
    second = client.post(url, json={"agent_id": agents[2].id}).json()
    assert wait_for_judgement(client, comparison)["id"] == second["id"]
    session.expire_all()
    (vote,) = session.exec(select(Vote)).all()  # one vote per judge, replaced
    assert (vote.outcome, vote.reason) == ("b", "second look.")
    page = BeautifulSoup(client.get(f"/c/{comparison}").text, "html.parser")
    assert page.find(id=f"judgement-{second['id']}-verdict").text == "B is better"
    assert page.find(id=f"judgement-{first['id']}-verdict") is None
    assert "replaced" in page.find(id=f"judgement-{first['id']}").text


def test_two_settlers_at_once_cast_one_vote(client, session, team, model_server):
    """The worker's follow-up and a page settling the same judgement together: one vote, one
    "judged" event (two real connections, started together at a barrier)."""
    import threading

    from app.engine.judging import ask_judge, settle
    from app.models import Comparison, Event, RunStatus, User

    _, agents = team
    _, comparison_id = compared(client, team)
    owner = session.exec(select(User)).first()
    _, started = ask_judge(session=session, comparison=session.get(Comparison, comparison_id),
                           agent_id=agents[2].id, author=owner)  # fmt: skip
    (run,) = started.runs
    run.status = RunStatus.succeeded
    session.get(Message, run.output_message_id).content = "Verdict: B\nReason: both settle."
    session.commit()
    barrier, errors = threading.Barrier(2), []

    def settler() -> None:
        barrier.wait()
        try:
            settle(run_id=run.id)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=settler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    session.expire_all()
    assert len(session.exec(select(Vote)).all()) == 1
    judged = session.exec(select(Event).where(Event.verb == "judged")).all()
    assert len(judged) == 1
    assert session.exec(select(Judgement)).one().status == "voted"
