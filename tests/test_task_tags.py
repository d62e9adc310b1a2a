"""Tags on tasks (API and task page), and the leaderboard filtered by tag and by dates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from bs4 import BeautifulSoup
from sqlmodel import select

from app.models import (
    Comparison,
    ComparisonBranch,
    Message,
    Model,
    ModelEndpoint,
    Run,
    Task,
    TaskTag,
    Vote,
)
from app.models.common import utcnow
from app.services import ServiceError
from app.services import leaderboard as board_service
from app.services.tags import clean_tags
from tests.factories import make_agent, make_user, make_workspace, sign_in


def test_tags_are_cleaned_or_refused():
    assert clean_tags("Parsing, sql  #SQL\tdates") == ["parsing", "sql", "dates"]
    assert clean_tags(["a-b", "c_d", ""]) == ["a-b", "c_d"]
    for bad in ("two words!", "x" * 33, "ünïcode", "-leading"):
        with pytest.raises(ServiceError):
            clean_tags(bad)
    with pytest.raises(ServiceError, match="at most 8"):
        clean_tags([f"t{i}" for i in range(9)])


@pytest.fixture
def owner_and_workspace(client, session):
    owner = make_user(session)
    sign_in(client, session, owner)
    return owner, make_workspace(session, owner=owner)


def test_tags_through_the_api(client, session, owner_and_workspace):
    _, workspace = owner_and_workspace
    created = client.post(f"/api/v1/workspaces/{workspace.slug}/tasks",
                          json={"title": "Parse dates", "tags": ["Parsing", "dates"]})  # fmt: skip
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["tags"] == ["dates", "parsing"]
    changed = client.patch(f"/api/v1/tasks/{task['id']}", json={"tags": ["sql"]})
    assert changed.status_code == 200 and changed.json()["tags"] == ["sql"]
    assert client.get(f"/api/v1/tasks/{task['id']}").json()["tags"] == ["sql"]
    listed = client.get(f"/api/v1/workspaces/{workspace.slug}/tasks").json()
    assert listed[0]["tags"] == ["sql"]
    # Bad input: a clear 4xx and nothing changes (the title in the same request neither).
    bad = client.patch(f"/api/v1/tasks/{task['id']}", json={"title": "New", "tags": ["no way"]})
    assert bad.status_code == 400 and "one short word" in bad.json()["detail"]
    assert client.patch(f"/api/v1/tasks/{task['id']}", json={"tags": "sql"}).status_code == 422
    session.expire_all()
    assert session.get(Task, task["id"]).title == "Parse dates"
    assert [t.tag for t in session.exec(select(TaskTag)).all()] == ["sql"]
    refused = client.post(f"/api/v1/workspaces/{workspace.slug}/tasks",
                          json={"title": "x", "tags": ["bad tag"]})  # fmt: skip
    assert refused.status_code == 400
    assert len(session.exec(select(Task)).all()) == 1


def test_tags_on_the_task_page(client, session, owner_and_workspace):
    _, workspace = owner_and_workspace
    task = client.post(f"/api/v1/workspaces/{workspace.slug}/tasks", json={"title": "T"}).json()
    page = BeautifulSoup(client.get(f"/t/{task['id']}").text, "html.parser")
    assert page.find(id="task-tags")["hx-get"] == f"/t/{task['id']}/tags"
    shown = BeautifulSoup(client.get(f"/t/{task['id']}/tags").text, "html.parser")
    assert shown.find(id="task-tags-none") is not None
    saved = client.post(f"/t/{task['id']}/tags", data={"tags": "sql, parsing"},
                        headers={"HX-Request": "true"})  # fmt: skip
    assert saved.status_code == 200
    fragment = BeautifulSoup(saved.text, "html.parser")
    assert [b.text for b in fragment.select(".tag")] == ["parsing", "sql"]
    assert fragment.find(id="task-tags-saved") is not None
    refused = client.post(f"/t/{task['id']}/tags", data={"tags": "sql, what?"},
                          headers={"HX-Request": "true"})  # fmt: skip
    assert refused.status_code == 400
    fragment = BeautifulSoup(refused.text, "html.parser")
    assert "“what?” is not" in fragment.find(id="task-tags-error").text
    assert fragment.find(id="task-tags-input")["value"] == "sql, what?"  # what was typed is kept
    assert sorted(t.tag for t in session.exec(select(TaskTag)).all()) == ["parsing", "sql"]
    # Without JavaScript the form posts and the page comes back.
    plain = client.post(f"/t/{task['id']}/tags", data={"tags": ""}, follow_redirects=False)
    assert plain.status_code == 303 and session.exec(select(TaskTag)).all() == []


def _contest(session, workspace, agents, models, *, title: str, outcome: str, days_ago: int):
    """A task with one two-way comparison of the two agents' answers, and a vote on it."""
    task = Task(workspace_id=workspace.id, title=title)
    session.add(task)
    session.flush()
    question = Message(task_id=task.id, role="user", content="Q?")
    session.add(question)
    session.flush()
    answers = []
    for agent, model in zip(agents, models, strict=True):
        message = Message(task_id=task.id, parent_id=question.id, role="assistant",
                          agent_id=agent.id, content=agent.name)  # fmt: skip
        session.add(message)
        session.flush()
        session.add(Run(task_id=task.id, agent_id=agent.id, model_id=model.id,
                        input_message_id=question.id, output_message_id=message.id,
                        status="succeeded", tokens_per_second=10.0))  # fmt: skip
        answers.append(message)
    comparison = Comparison(task_id=task.id)
    session.add(comparison)
    session.flush()
    for position, message in enumerate(answers):
        session.add(ComparisonBranch(comparison_id=comparison.id, message_id=message.id,
                                     position=position))  # fmt: skip
    session.add(Vote(comparison_id=comparison.id, voter_user_id=workspace_owner(session, workspace),
                     outcome=outcome, winner_message_id=answers[0 if outcome == "a" else 1].id,
                     created_at=utcnow() - timedelta(days=days_ago)))  # fmt: skip
    session.commit()
    return task


def workspace_owner(session, workspace) -> int:
    from app.models import Membership

    return session.exec(
        select(Membership.user_id).where(Membership.workspace_id == workspace.id)
    ).first()


def test_the_leaderboard_filters_by_tag_and_by_dates(client, session, owner_and_workspace):
    _, workspace = owner_and_workspace
    server = ModelEndpoint(name="local", base_url="http://127.0.0.1:9/v1")
    session.add(server)
    session.flush()
    models = [Model(endpoint_id=server.id, name="big"), Model(endpoint_id=server.id, name="small")]
    session.add_all(models)
    session.commit()
    agents = [make_agent(session, workspace=workspace, model=m, name=m.name.title())
              for m in models]  # fmt: skip
    # "big" wins the SQL tasks (recent); "small" wins the parsing task (ten days ago).
    sql = [_contest(session, workspace, agents, models, title=f"SQL {i}", outcome="a", days_ago=0)
           for i in range(2)]  # fmt: skip
    parsing = _contest(session, workspace, agents, models, title="Parse", outcome="b", days_ago=10)
    for task in sql:
        client.patch(f"/api/v1/tasks/{task.id}", json={"tags": ["sql"]})
    client.patch(f"/api/v1/tasks/{parsing.id}", json={"tags": ["parsing"]})
    url = f"/api/v1/workspaces/{workspace.slug}/leaderboard"

    def wins(query: str) -> dict[str, int]:
        response = client.get(url + query)
        assert response.status_code == 200, response.text
        return {row["name"]: row["wins"] for row in response.json()["rows"]}

    assert wins("") == {"big": 2, "small": 1}
    assert wins("?tag=sql") == {"big": 2, "small": 0}
    assert wins("?tag=parsing") == {"big": 0, "small": 1}
    assert wins("?tag=nothing") == {}
    today = utcnow().date()
    assert wins(f"?since={today - timedelta(days=1)}") == {"big": 2, "small": 0}
    assert wins(f"?until={today - timedelta(days=5)}") == {"big": 0, "small": 1}

    # Tagging a task changes what the filter counts, though no vote changed (no stale cache).
    client.patch(f"/api/v1/tasks/{parsing.id}", json={"tags": ["parsing", "sql"]})
    assert wins("?tag=sql") == {"big": 2, "small": 1}
    fitted = board_service.fits
    wins("?tag=sql")
    assert board_service.fits == fitted  # …and an unchanged state is served from the cache

    page = BeautifulSoup(client.get(f"/w/{workspace.slug}/leaderboard?tag=parsing").text,
                         "html.parser")  # fmt: skip
    options = [o["value"] for o in page.find(id="lb-tag").find_all("option")]
    assert options == ["", "parsing", "sql"]
    assert page.find(id="lb-tag").find("option", selected=True)["value"] == "parsing"
    assert "tag=parsing" in page.find(id="export-leaderboard-csv")["href"]
    csv_rows = client.get(page.find(id="export-leaderboard-csv")["href"]).text.splitlines()
    assert len(csv_rows) == 3 and csv_rows[1].startswith("small,")  # the filter carries over

    for bad in ("?since=yesterday", "?until=2026-13-01", "?tag=" + "x" * 40, "?by=size",
                "?since=2026-11-30&until=2026-11-01"):  # fmt: skip
        assert client.get(url + bad).status_code == 400, bad
        assert client.get(f"/w/{workspace.slug}/leaderboard{bad}").status_code == 400, bad
