"""The board: columns a page at a time, creating and moving tasks, agents and activity."""

from __future__ import annotations

from bs4 import BeautifulSoup
from sqlmodel import select

from app.models import Task
from tests.engine_helpers import wait_for_runs


def soup(response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


def test_create_a_task_that_fans_out_from_the_board(client, session, team):
    workspace, (coder, tester, *_) = team
    response = client.post(
        f"/w/{workspace.slug}/tasks",
        data={"title": "Parse dates", "brief": "Write a date parser.",
              "agent_ids": [str(coder.id), str(tester.id)]},
        follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303
    task_id = int(response.headers["location"].rsplit("/", 1)[1])
    runs = wait_for_runs(client, task_id, 2)
    assert {r["status"] for r in runs} == {"succeeded"}
    board = soup(client.get(f"/w/{workspace.slug}"))
    assert board.select_one(f"#column-review #task-{task_id}") is not None
    feed = board.find(id="activity-feed")
    assert "created task “Parse dates”" in " ".join(feed.text.split())
    # A run's line names its agent and task, and when.
    lines = [" ".join(li.text.split()) for li in feed.find_all("li")]
    assert any(line.startswith("Coder succeeded · Parse dates") for line in lines), lines
    assert all(li.find("time") for li in feed.find_all("li"))


def test_a_task_without_a_title_is_refused_and_the_form_kept(client, session, team):
    workspace, _ = team
    response = client.post(f"/w/{workspace.slug}/tasks", data={"title": " ", "brief": "keep me"})
    assert response.status_code == 400
    page = soup(response)
    assert page.find(id="page-error").text == "Give the task a title."
    assert page.find(id="task-brief").text == "keep me"
    assert session.exec(select(Task)).all() == []


def test_move_a_task_between_columns(client, session, team):
    workspace, _ = team
    task = client.post(f"/api/v1/workspaces/{workspace.slug}/tasks", json={"title": "t"}).json()
    client.post(f"/t/{task['id']}/move", data={"status": "done"})
    board = soup(client.get(f"/w/{workspace.slug}"))
    assert board.select_one(f"#column-done #task-{task['id']}") is not None
    assert client.post(f"/t/{task['id']}/move", data={"status": "sideways"}).status_code == 400


def test_big_columns_load_a_page_at_a_time(client, session, team):
    workspace, _ = team
    session.add_all(
        Task(workspace_id=workspace.id, title=f"task {n}", position=n) for n in range(60)
    )
    session.commit()
    board = soup(client.get(f"/w/{workspace.slug}"))
    assert len(board.select("#column-backlog-tasks .task-card")) == 50
    more = board.find(id="column-backlog-more").find("a")
    assert more.text == "Show 10 more"
    fragment = client.get(more["hx-get"], headers={"HX-Request": "true"})
    rest = soup(fragment)
    assert rest.find("html") is None and len(rest.select(".task-card")) == 10
    assert rest.find(id="task-59") is None and rest.find(id="task-1") is not None


def test_agents_show_their_model_and_its_health(client, session, team):
    workspace, (coder, *_) = team
    board = soup(client.get(f"/w/{workspace.slug}"))
    row = board.find(id=f"agent-{coder.id}")
    assert "scripted" in row.text and row.find(class_="health") is not None


def test_owners_rename_a_workspace_and_the_slug_stays(client, session, team):
    workspace, _ = team
    renamed = client.post(f"/w/{workspace.slug}/rename", data={"name": "New name"},
                          follow_redirects=True)  # fmt: skip
    assert renamed.url.path == f"/w/{workspace.slug}" and "New name" in renamed.text
    assert client.post(f"/w/{workspace.slug}/rename", data={"name": " "}).status_code == 400


def test_a_card_flags_its_failed_run_until_a_newer_run(client, session, team, model_server):
    from tests.engine_helpers import CHAT, by_system_prompt, start_task
    from tests.scripted_server import Reply

    workspace, (coder, *_) = team
    model_server.on(CHAT, Reply(500, {"error": {"message": "model crashed"}}))
    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    board = soup(client.get(f"/w/{workspace.slug}"))
    assert board.find(id=f"task-{task['id']}-failed") is not None
    model_server.on(CHAT, by_system_prompt)
    answer_id = task["started"]["runs"][0]["output_message_id"]
    client.post(f"/m/{answer_id}/rerun", data={"agent_id": str(coder.id)})
    wait_for_runs(client, task["id"], 2)
    board = soup(client.get(f"/w/{workspace.slug}"))
    assert board.find(id=f"task-{task['id']}-failed") is None
