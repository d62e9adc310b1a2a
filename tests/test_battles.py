"""Blind battles: a message sent to two agents drawn at random, compared blind."""

from __future__ import annotations

from bs4 import BeautifulSoup
from sqlmodel import select

from app.models import Agent, Comparison, Run
from tests.engine_helpers import wait_for_runs
from tests.factories import make_model


def soup(response) -> BeautifulSoup:
    assert response.status_code == 200, response.text
    return BeautifulSoup(response.text, "html.parser")


def new_task(client, workspace) -> int:
    response = client.post(f"/api/v1/workspaces/{workspace.slug}/tasks", json={"title": "Arena"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_a_battle_draws_two_models_and_reveals_them_only_after_the_vote(
    client, session, team, model_server
):
    workspace, agents = team
    # Coder and Tester on a second model; Reviewer and Explorer stay on the first.
    other = make_model(session, base_url=model_server.base_url)
    for agent in agents[:2]:
        agent.model_id = other.id
        session.add(agent)
    session.commit()
    task_id = new_task(client, workspace)

    response = client.post(f"/api/v1/tasks/{task_id}/battles", json={"content": "Say hello."})
    assert response.status_code == 201, response.text
    fought = response.json()
    wait_for_runs(client, task_id, 2)
    runs = session.exec(select(Run).where(Run.task_id == task_id)).all()
    assert sorted(r.id for r in runs) == sorted(fought["run_ids"])
    assert len({r.model_id for r in runs}) == 2  # two different models, one answer each
    comparison = session.get(Comparison, fought["comparison_id"])
    assert comparison is not None and comparison.blind

    page = soup(client.get(f"/c/{comparison.id}"))
    names = {a.name for a in session.exec(select(Agent)).all()}
    assert page.find(id="column-A-hidden") and page.find(id="column-B-hidden")
    assert page.find(id="column-A-agent") is None
    client.post(f"/c/{comparison.id}/vote", data={"outcome": "a"})
    revealed = soup(client.get(f"/c/{comparison.id}"))
    assert revealed.find(id="column-A-agent").text.strip() in names


def test_the_page_opens_the_blind_comparison(client, session, team, model_server):
    workspace, agents = team
    other = make_model(session, base_url=model_server.base_url)
    agents[0].model_id = other.id
    session.add(agents[0])
    session.commit()
    task_id = new_task(client, workspace)
    response = client.post(f"/t/{task_id}/battle", data={"content": "Say hello."},
                           follow_redirects=False)  # fmt: skip
    assert response.status_code == 303
    assert response.headers["location"].startswith("/c/")


def test_a_battle_needs_two_models_and_says_so(client, session, team):
    workspace, _ = team
    task_id = new_task(client, workspace)
    response = client.post(f"/api/v1/tasks/{task_id}/battles", json={"content": "Hi"})
    assert response.status_code == 400
    assert "two different models" in response.json()["detail"]
    page = client.post(f"/t/{task_id}/battle", data={"content": "Hi"})
    assert page.status_code == 400
    assert "two different models" in soup_any(page).find(id="composer-error").text
    assert soup_any(page).find(id="composer-text").text == "Hi"  # what was typed is kept
    assert session.exec(select(Run)).all() == []
    # Among agents of one model, a battle can still draw two agents when asked to.
    same = client.post(f"/api/v1/tasks/{task_id}/battles",
                       json={"content": "Hi", "distinct_models": False})  # fmt: skip
    assert same.status_code == 201, same.text


def soup_any(response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")
