"""Compare: branches side by side, word differences, blind votes, continuing on a branch."""

from __future__ import annotations

from bs4 import BeautifulSoup
from sqlmodel import select

from app.models import Vote
from app.services import comparisons
from app.services.comparisons import word_diff
from tests.engine_helpers import CHAT, start_task, wait_for_runs
from tests.live_helpers import read_until
from tests.orm_helpers import orm_statements, went_through_orm
from tests.scripted_server import answer


def soup(response) -> BeautifulSoup:
    assert response.status_code == 200, response.text
    return BeautifulSoup(response.text, "html.parser")


def fan_out(client, team, count: int) -> tuple[dict, int]:
    workspace, agents = team
    task = start_task(client, workspace, agents[:count])
    wait_for_runs(client, task["id"], count)
    return task, task["started"]["message"]["id"]


def test_compare_a_fan_out_blind_vote_and_continue(client, session, team):
    task, question = fan_out(client, team, 2)
    response = client.post(
        f"/t/{task['id']}/compare", data={"question_id": question, "blind": "true"},
        follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303
    page = soup(client.get(response.headers["location"]))
    assert page.find(id="column-A-hidden") and page.find(id="column-A-agent") is None
    a, b = page.find(id="column-A-text"), page.find(id="column-B-text")
    assert a.text == "Coder says hello" and not a.find("mark")  # the baseline
    assert [m.text for m in b.find_all("mark")] == ["Tester"]  # only the differing word
    assert page.find(id="column-B-figures") is None  # figures are revealed by the vote too
    comparison = response.headers["location"]
    voted = soup(client.post(f"{comparison}/vote", data={"outcome": "b"}, follow_redirects=True))
    assert voted.find(id="my-vote").text.strip() == "You voted: B is better."
    assert voted.find(id="column-B-agent").text == "Tester"  # revealed after the vote
    assert "tokens/s" in voted.find(id="column-B-figures").text
    assert (
        session.exec(select(Vote)).one().winner_message_id
        == task["started"]["runs"][1]["output_message_id"]
    )
    # Voting again replaces the vote.
    client.post(f"{comparison}/vote", data={"outcome": "tie"})
    assert session.exec(select(Vote)).one().outcome == "tie"
    # Continue with B: the task page opens on B's branch from now on.
    b_message = task["started"]["runs"][1]["output_message_id"]
    client.post(f"{comparison}/continue", data={"message_id": b_message})
    task_page = soup(client.get(f"/t/{task['id']}"))
    assert task_page.find(id=f"message-{b_message}") is not None


def test_three_branches_pick_the_best(client, session, team):
    task, question = fan_out(client, team, 3)
    answers = [r["output_message_id"] for r in task["started"]["runs"]]
    created = client.post("/api/v1/comparisons", json={"message_ids": answers})
    assert created.status_code == 201
    comparison = created.json()["id"]
    refused = client.post(f"/api/v1/comparisons/{comparison}/votes", json={"outcome": "a"})
    assert refused.status_code == 400 and "pick the best" in refused.json()["detail"]
    best = client.post(
        f"/api/v1/comparisons/{comparison}/votes",
        json={"outcome": "best", "winner_message_id": answers[2]},
    )
    assert best.status_code == 201 and best.json()["winner_message_id"] == answers[2]
    page = soup(client.get(f"/c/{comparison}?baseline=2"))
    assert page.find(id="vote-best-C") is not None and page.find(id="vote-form") is None


def test_the_page_reads_agents_once_and_branch_ids_without_the_orm(client, session, team):
    # The workspace's agents (read for the live cards) name the columns too; the branch ids
    # make no objects. Both were a cost on every view.
    task, question = fan_out(client, team, 3)
    response = client.post(f"/t/{task['id']}/compare", data={"question_id": question},
                           follow_redirects=False)  # fmt: skip
    with orm_statements() as seen:
        page = soup(client.get(response.headers["location"]))
    names = [page.find(id=f"column-{letter}-agent").text for letter in "ABC"]
    assert names == ["Coder", "Tester", "Reviewer"]
    assert went_through_orm(seen, comparisons._COLUMN_AGENTS, comparisons._BRANCH_IDS) == []


def test_comparisons_refuse_bad_branches(client, session, team):
    task, _ = fan_out(client, team, 2)
    answer = task["started"]["runs"][0]["output_message_id"]
    assert client.post("/api/v1/comparisons", json={"message_ids": [answer]}).status_code == 422
    same = client.post("/api/v1/comparisons", json={"message_ids": [answer, answer]})
    assert same.status_code == 400
    assert (
        client.post("/api/v1/comparisons", json={"message_ids": [answer, 999]}).status_code == 404
    )


def test_word_diff_marks_only_changed_words():
    pieces = word_diff("the quick brown fox", "the slow brown fox jumps").pieces
    assert [(p.text, p.changed) for p in pieces] == [
        ("the ", False), ("slow", True), (" brown fox ", False), ("jumps", True),
    ]  # fmt: skip


def test_a_blind_comparison_reveals_nothing_while_streaming(client, session, team, model_server):
    workspace, agents = team
    model_server.on(CHAT, answer(" ".join(["same"] * 30), pause=0.05))
    task = start_task(client, workspace, agents[:2])
    question = task["started"]["message"]["id"]
    response = client.post(f"/t/{task['id']}/compare",
                           data={"question_id": question, "blind": "true"})  # fmt: skip
    comparison = response.url.path
    page = soup(response)
    grid = str(page.find(id="compare-columns"))
    live = page.find("main")["sse-connect"]
    assert live == f"{comparison}/live" and page.find(class_="live") is not None
    events = read_until(client, live, lambda e: e.type == "compare-done")
    assert events[-1].type == "compare-done"
    everything = grid + "".join(e.data for e in events)
    for agent in agents[:2]:
        assert agent.name not in everything
        assert agent.colour not in everything
    assert "data-colour" not in everything and "tokens/s" not in everything
    # Once all are done the grid comes back whole, differences marked, still blind.
    final = BeautifulSoup(events[-1].data, "html.parser")
    assert final.find(id="column-A-hidden") and final.find(id="column-B-text")


def test_code_blocks_are_cut_out_of_the_marked_text():
    from app.services.comparisons import diff_blocks

    base = "Use this:\n```python\ndef f(x):\n    return x\n```\nDone."
    other = "Use that:\n```python\ndef f(x):\n    return x + 1\n```\nDone here."
    blocks = diff_blocks(word_diff(base, other))
    assert [block.code for block in blocks] == [False, True, False]
    texts = ["".join(p.text for p in block.pieces) for block in blocks]
    assert "".join(texts) == other  # nothing lost or repeated
    assert texts[1] == "```python\ndef f(x):\n    return x + 1\n```\n"
    assert [p.text for p in blocks[1].pieces if p.changed] == ["+ 1"]
    assert [p.text for p in blocks[0].pieces if p.changed] == ["that:"]
    # An unclosed fence runs to the end; text with no fence is one prose block.
    assert [b.code for b in diff_blocks(word_diff("", "a\n```\ncode"))] == [False, True]
    assert [b.code for b in diff_blocks(word_diff("", "just words"))] == [False]
