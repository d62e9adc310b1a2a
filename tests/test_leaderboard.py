"""The leaderboard: Bradley–Terry ratings from votes, intervals, ties, exports and the page."""

from __future__ import annotations

import csv
import io
import math
from datetime import timedelta

import numpy as np
import pytest
from bs4 import BeautifulSoup

from app.models import (
    Comparison,
    ComparisonBranch,
    Message,
    Model,
    ModelEndpoint,
    Role,
    Run,
    RunStatus,
    Task,
)
from app.models.common import utcnow
from app.services import leaderboard as board_service
from app.services.ratings import ELO_MEAN, ELO_SCALE, Verdict, rate, wilson_interval
from tests.factories import add_member, make_agent, make_user, make_workspace, sign_in


def simulate(strengths: list[float], count: int, rng, tie_rate: float = 0.0) -> list[Verdict]:
    """``count`` verdicts between random pairs drawn from a Bradley–Terry model."""
    verdicts = []
    for _ in range(count):
        i, j = (int(x) for x in rng.choice(len(strengths), 2, replace=False))
        if rng.random() < tie_rate:
            verdicts.append(Verdict(i, j, None))
            continue
        p_first = 1 / (1 + math.exp(strengths[j] - strengths[i]))
        verdicts.append(Verdict(i, j, i if rng.random() < p_first else j))
    return verdicts


def elo(strengths: list[float]) -> list[float]:
    mean = sum(strengths) / len(strengths)
    return [ELO_MEAN + ELO_SCALE * (s - mean) for s in strengths]


def test_the_fitted_order_is_the_true_order():
    rng = np.random.default_rng(7)
    strengths = [2.0, 1.2, 0.5, 0.0, -0.8, -1.5]
    ratings = rate(simulate(strengths, 3000, rng), rounds=50)
    assert [r.contestant for r in ratings] == [0, 1, 2, 3, 4, 5]
    truth = elo(strengths)
    for r in ratings:
        assert abs(r.rating - truth[r.contestant]) < 60
        assert r.low <= r.rating <= r.high


def test_intervals_contain_the_truth_at_about_the_stated_rate():
    rng = np.random.default_rng(11)
    strengths = [1.0, 0.4, 0.0, -0.3, -1.1]
    truth = elo(strengths)
    inside = total = 0
    for seed in range(40):
        ratings = rate(simulate(strengths, 300, rng), rounds=120, seed=seed)
        for r in ratings:
            total += 1
            inside += r.low <= truth[r.contestant] <= r.high
    coverage = inside / total
    # 95 % intervals from 200 intervals: well above chance, not trivially always right.
    assert 0.85 <= coverage <= 0.995, coverage


def test_ties_count_half_and_both_bad_is_a_tie():
    only_ties = [Verdict("a", "b", None)] * 10
    tied = {r.contestant: r for r in rate(only_ties, rounds=20)}
    assert tied["a"].rating == pytest.approx(tied["b"].rating)
    assert (tied["a"].ties, tied["a"].wins, tied["a"].losses) == (10, 0, 0)
    # One win and two ties is worth the same as two wins and two losses: 2 of 4 "points".
    mixed = {
        r.contestant: r
        for r in rate([Verdict("a", "b", "a")] * 4 + [Verdict("a", "b", None)] * 4, rounds=0)
    }
    decisive = {
        r.contestant: r
        for r in rate([Verdict("a", "b", "a")] * 6 + [Verdict("a", "b", "b")] * 2, rounds=0)
    }
    assert mixed["a"].rating == pytest.approx(decisive["a"].rating, abs=1)


def test_wilson_interval():
    low, high = wilson_interval(8, 10)
    assert 0.44 < low < 0.5 and 0.94 < high < 0.97
    assert wilson_interval(0, 0) == (0.0, 1.0)


# --- the leaderboard of a workspace, through the pages and the API --------------------------


def _answer(session, task, question, agent, model, *, tps: float) -> Message:
    now = utcnow()
    answer = Message(task_id=task.id, parent_id=question.id, role="assistant", agent_id=agent.id,
                     content=f"{agent.name} answers")  # fmt: skip
    session.add(answer)
    session.flush()
    session.add(
        Run(task_id=task.id, agent_id=agent.id, model_id=model.id, input_message_id=question.id,
            output_message_id=answer.id, status=RunStatus.succeeded, tokens_per_second=tps,
            started_at=now, first_token_at=now + timedelta(milliseconds=120), finished_at=now)
    )  # fmt: skip
    return answer


@pytest.fixture
def arena(client, session):
    """A workspace with a big and a small model, an agent on each, and five 2-way comparisons."""
    owner = make_user(session)
    sign_in(client, session, owner)
    workspace = make_workspace(session, owner=owner)
    server = ModelEndpoint(name="local", base_url="http://127.0.0.1:9/v1")
    session.add(server)
    session.flush()
    big = Model(endpoint_id=server.id, name="big-7b", parameter_count=7_000_000_000)
    small = Model(endpoint_id=server.id, name="small-270m", parameter_count=270_000_000)
    session.add_all([big, small])
    session.commit()
    agents = (make_agent(session, workspace=workspace, model=big, name="Big"),
              make_agent(session, workspace=workspace, model=small, name="Small"))  # fmt: skip
    comparisons = []
    for number in range(5):
        task = Task(workspace_id=workspace.id, title=f"Task {number}")
        session.add(task)
        session.flush()
        question = Message(task_id=task.id, role="user", content="Question?")
        session.add(question)
        session.flush()
        first = _answer(session, task, question, agents[0], big, tps=20.0)
        second = _answer(session, task, question, agents[1], small, tps=60.0)
        comparison = Comparison(task_id=task.id)
        session.add(comparison)
        session.flush()
        session.add_all([
            ComparisonBranch(comparison_id=comparison.id, message_id=first.id, position=0),
            ComparisonBranch(comparison_id=comparison.id, message_id=second.id, position=1),
        ])  # fmt: skip
        comparisons.append(comparison.id)
    session.commit()
    return workspace, comparisons, (big, small)


def test_votes_rank_models_and_exports_round_trip(client, session, arena):
    workspace, comparisons, (big, small) = arena
    for comparison_id, outcome in zip(comparisons, ["a", "a", "a", "tie", "both_bad"], strict=True):
        response = client.post(
            f"/api/v1/comparisons/{comparison_id}/votes", json={"outcome": outcome}
        )
        assert response.status_code == 201, response.text
    # Voting again replaces the vote: one vote per person per comparison, never stacked.
    client.post(f"/api/v1/comparisons/{comparisons[0]}/votes", json={"outcome": "a"})

    board = client.get(f"/api/v1/workspaces/{workspace.slug}/leaderboard").json()
    assert board["human_votes"] == 5
    rows = {row["name"]: row for row in board["rows"]}
    assert [row["name"] for row in board["rows"]] == ["big-7b", "small-270m"]
    assert (rows["big-7b"]["wins"], rows["big-7b"]["ties"], rows["big-7b"]["losses"]) == (3, 2, 0)
    assert rows["small-270m"]["both_bad"] == 1
    assert rows["big-7b"]["rating_low"] <= rows["big-7b"]["rating"] <= rows["big-7b"]["rating_high"]
    assert rows["small-270m"]["median_tokens_per_second"] == 60.0
    assert rows["big-7b"]["median_time_to_first_token_ms"] == pytest.approx(120.0)
    assert rows["small-270m"]["parameter_count"] == 270_000_000

    exported = client.get(f"/api/v1/workspaces/{workspace.slug}/leaderboard.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["name"] for r in parsed] == ["big-7b", "small-270m"]
    assert float(parsed[0]["rating"]) == board["rows"][0]["rating"]
    assert int(parsed[1]["both_bad"]) == 1

    votes = client.get(f"/api/v1/workspaces/{workspace.slug}/votes").json()
    assert [v["outcome"] for v in votes] == ["a", "a", "a", "tie", "both_bad"]
    assert [c["model"] for c in votes[0]["columns"]] == ["big-7b", "small-270m"]
    votes_csv = list(csv.DictReader(io.StringIO(
        client.get(f"/api/v1/workspaces/{workspace.slug}/votes.csv").text)))  # fmt: skip
    assert [r["vote_id"] for r in votes_csv] == [str(v["vote_id"]) for v in votes]

    by_agent = client.get(f"/api/v1/workspaces/{workspace.slug}/leaderboard?by=agent").json()
    assert [row["name"] for row in by_agent["rows"]] == ["Big", "Small"]


def test_the_page_shows_the_table_the_chart_and_the_method(client, session, arena):
    workspace, comparisons, _ = arena
    client.post(f"/api/v1/comparisons/{comparisons[0]}/votes", json={"outcome": "b"})
    page = BeautifulSoup(client.get(f"/w/{workspace.slug}/leaderboard").text, "html.parser")
    names = [th.text for th in page.find(id="leaderboard-table").select("tbody th")]
    assert names == ["small-270m", "big-7b"]
    chart = page.find(id="leaderboard-chart")
    assert chart is not None and len(chart.find_all("circle")) == 2
    assert "both are bad" in page.find(id="leaderboard-method").text
    bad = client.get(f"/w/{workspace.slug}/leaderboard?since=yesterday")
    assert bad.status_code == 400
    assert "2026-11-30" in BeautifulSoup(bad.text, "html.parser").find(id="page-error").text


def test_an_empty_leaderboard_says_what_to_do(client, session, arena):
    workspace, _, _ = arena
    page = BeautifulSoup(client.get(f"/w/{workspace.slug}/leaderboard").text, "html.parser")
    # Speeds exist, so rows do; none is rated yet.
    assert "no votes" in page.find(id="leaderboard-table").text


def test_ratings_are_fitted_once_per_state_of_the_votes(client, session, arena):
    workspace, comparisons, _ = arena
    client.post(f"/api/v1/comparisons/{comparisons[0]}/votes", json={"outcome": "a"})
    url = f"/api/v1/workspaces/{workspace.slug}/leaderboard"
    client.get(url)
    fitted = board_service.fits
    for _ in range(3):
        client.get(url)
    assert board_service.fits == fitted
    client.post(f"/api/v1/comparisons/{comparisons[1]}/votes", json={"outcome": "b"})
    assert client.get(url).json()["human_votes"] == 2
    assert board_service.fits == fitted + 1


def test_viewers_read_it_and_strangers_get_404(client, session, arena):
    workspace, _, _ = arena
    viewer, stranger = make_user(session), make_user(session)
    add_member(session, workspace=workspace, user=viewer, role=Role.viewer)
    sign_in(client, session, viewer)
    assert client.get(f"/w/{workspace.slug}/leaderboard").status_code == 200
    assert client.get(f"/api/v1/workspaces/{workspace.slug}/votes.csv").status_code == 200
    sign_in(client, session, stranger)
    for path in ("/w/{s}/leaderboard", "/api/v1/workspaces/{s}/leaderboard",
                 "/api/v1/workspaces/{s}/leaderboard.csv", "/api/v1/workspaces/{s}/votes",
                 "/api/v1/workspaces/{s}/votes.csv"):  # fmt: skip
        assert client.get(path.format(s=workspace.slug)).status_code == 404


def test_the_fit_agrees_with_choix():
    """The numpy MM fit and choix's iterative Luce spectral ranking find the same maximum."""
    import choix

    from app.services.ratings import fit, win_matrix

    rng = np.random.default_rng(5)
    verdicts = simulate([1.5, 0.7, 0.0, -0.4, -1.2], 2000, rng, tie_rate=0.1)
    matrix = win_matrix(verdicts, [0, 1, 2, 3, 4])
    ours = fit(matrix)
    theirs = choix.ilsr_pairwise_dense(matrix, alpha=0.0)
    theirs = ELO_MEAN + ELO_SCALE * (theirs - theirs.mean())
    assert np.allclose(ours, theirs, atol=1.0)
