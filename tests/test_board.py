"""The board: columns a page at a time, creating and moving tasks, agents and activity."""

from __future__ import annotations

from bs4 import BeautifulSoup
from sqlmodel import select

from app.models import Task
from app.services import board as board_service
from app.services.board import COLUMN_PAGE
from tests.engine_helpers import start_task, wait_for_runs
from tests.orm_helpers import orm_statements, went_through_orm


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


def test_each_card_offers_the_moves_with_its_own_column_selected(client, session, team):
    # The options are rendered once per status and kept: each column's cards must still get
    # their own, on the board and again on the next view.
    workspace, _ = team
    created = {}
    for status in ("backlog", "running", "review", "done", "review"):
        task = client.post(f"/api/v1/workspaces/{workspace.slug}/tasks", json={"title": status})
        client.post(f"/t/{task.json()['id']}/move", data={"status": status})
        created[task.json()["id"]] = status
    for _ in range(2):
        board = soup(client.get(f"/w/{workspace.slug}"))
        for task_id, status in created.items():
            options = board.select(f"#move-{task_id} option")
            assert [o["value"] for o in options] == ["backlog", "running", "review", "done"]
            assert [o["value"] for o in options if o.has_attr("selected")] == [status]


def test_the_boards_ids_and_counts_are_read_without_the_orm(client, session, team):
    # They make no objects: the ORM's execution path was only a cost (a board reads them on
    # every view).
    workspace, (coder, *_) = team
    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    with orm_statements() as seen:
        board = soup(client.get(f"/w/{workspace.slug}"))
    assert board.select_one(f"#column-review #task-{task['id']}") is not None
    assert went_through_orm(seen, board_service._ACTIVE_RUNS, board_service._NEWEST_RUN_FAILED,
                            board_service._EVALUATION_TASKS) == []  # fmt: skip


def test_big_columns_load_a_page_at_a_time(client, session, team):
    workspace, _ = team
    total = 2 * COLUMN_PAGE + 5
    session.add_all(
        Task(workspace_id=workspace.id, title=f"task {n}", position=n) for n in range(total)
    )
    session.add(Task(workspace_id=workspace.id, title="finished", status="done"))
    session.commit()
    board = soup(client.get(f"/w/{workspace.slug}"))
    cards = board.select("#column-backlog-tasks .task-card")
    # The newest first, a page of them, and the column's count is of all its tasks.
    assert len(cards) == COLUMN_PAGE and cards[0]["id"] == f"task-{total}"
    assert board.find(id="column-backlog-count").text == str(total)
    assert board.find(id="column-done-more") is None  # a short column has no "more"
    more = board.find(id="column-backlog-more").find("a")
    assert more.text == f"Show {total - COLUMN_PAGE} more"
    # htmx swaps the next page in for the link, with a link to the page after it.
    fragment = client.get(more["hx-get"], headers={"HX-Request": "true"})
    second = soup(fragment)
    assert second.find("html") is None and len(second.select(".task-card")) == COLUMN_PAGE
    assert second.find(id=f"task-{total - COLUMN_PAGE}") is not None  # the next in order
    following = second.find(id="column-backlog-more").find("a")
    assert following.text == "Show 5 more"
    last = soup(client.get(following["hx-get"], headers={"HX-Request": "true"}))
    assert [li["id"] for li in last.select(".task-card")] == [f"task-{n}" for n in range(5, 0, -1)]
    assert last.find(id="column-backlog-more") is None  # the end: nothing more to show
    # Without JavaScript the link opens the board with that column at that page.
    page = soup(client.get(more["href"]))
    assert page.find("html") is not None
    shown = page.select("#column-backlog-tasks .task-card")
    assert shown[0]["id"] == f"task-{total - COLUMN_PAGE}" and len(shown) == COLUMN_PAGE
    assert page.select_one("#column-done .task-card") is not None  # the other columns as ever
    assert page.find(id="column-backlog-more").find("a").text == "Show 5 more"


def test_a_page_past_the_end_of_a_column_is_empty(client, session, team):
    workspace, _ = team
    session.add(Task(workspace_id=workspace.id, title="only one"))
    session.commit()
    response = client.get(
        f"/w/{workspace.slug}/column/backlog?offset=50", headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert soup(response).select(".task-card") == []
    assert client.get(f"/w/{workspace.slug}/column/sideways").status_code == 400


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
