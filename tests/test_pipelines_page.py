"""Pipelines page: define one, start it from a task, see each step on one branch."""

from __future__ import annotations

from bs4 import BeautifulSoup
from sqlmodel import select

from app.models import Pipeline
from tests.engine_helpers import start_task, wait_for_runs


def test_define_and_start_a_pipeline_from_the_pages(client, session, team):
    workspace, (coder, tester, *_) = team
    created = client.post(
        f"/w/{workspace.slug}/pipelines",
        data={"name": "Write, test, fix",
              "step_agent": [str(coder.id), str(tester.id), str(coder.id), ""],
              "step_instruction": ["", "Test this.", "Fix it.", ""],
              "max_rounds": "1", "stop_word": "PASS"},
        follow_redirects=True,
    )  # fmt: skip
    assert created.status_code == 200
    pipeline = session.exec(select(Pipeline)).one()
    assert [s["agent_id"] for s in pipeline.steps] == [coder.id, tester.id, coder.id]
    listed = BeautifulSoup(created.text, "html.parser").find(id=f"pipeline-{pipeline.id}")
    assert "Tester: “Test this.”" in listed.text
    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    page = BeautifulSoup(client.get(f"/t/{task['id']}").text, "html.parser")
    form = page.find(id="pipeline-form")
    leaf = form.find("input", {"name": "message_id"})["value"]
    client.post(f"/t/{task['id']}/pipeline", data={"pipeline_id": pipeline.id, "message_id": leaf})
    # The first step answers the question again; then Tester and Coder each hand it on.
    runs = wait_for_runs(client, task["id"], 4)
    assert [r["pipeline_step"] for r in runs if r["pipeline_id"]] == [0, 1, 2]


def test_a_pipeline_without_steps_is_refused(client, session, team):
    workspace, _ = team
    response = client.post(
        f"/w/{workspace.slug}/pipelines", data={"name": "empty", "step_agent": ["", ""]}
    )
    assert response.status_code == 400
    assert (
        "between 1 and 6 steps"
        in BeautifulSoup(response.text, "html.parser").find(id="pipeline-error").text
    )


def test_a_pipeline_with_a_check_step_from_the_page(client, session, team):
    workspace, (coder, tester, *_) = team
    created = client.post(
        f"/w/{workspace.slug}/pipelines",
        data={"name": "Until green",
              "step_agent": [str(coder.id), str(tester.id), str(coder.id)],
              "step_instruction": ["", "Test this.", "Fix it."],
              "max_rounds": "3", "stop_when_checks_pass": "true"},
        follow_redirects=True,
    )  # fmt: skip
    assert created.status_code == 200
    pipeline = session.exec(select(Pipeline)).one()
    # Stopping when the checks pass needs the check step: it is turned on with it.
    assert (pipeline.run_checks, pipeline.stop_when_checks_pass) == (True, True)
    listed = BeautifulSoup(created.text, "html.parser").find(id=f"pipeline-{pipeline.id}")
    assert "runs checks" in listed.text and "stops when the checks pass" in listed.text
    page = BeautifulSoup(client.get(f"/w/{workspace.slug}/pipelines").text, "html.parser")
    assert page.find(id="pipeline-run-checks") and page.find(id="pipeline-stop-when-green")


def test_a_saved_pipeline_is_edited_started_from_the_list_and_deleted(client, session, team):
    workspace, (coder, tester, *_) = team
    client.post(f"/w/{workspace.slug}/pipelines",
                data={"name": "Solo", "step_agent": [str(coder.id)]})  # fmt: skip
    pipeline = session.exec(select(Pipeline)).one()
    pair = [str(coder.id), str(tester.id)]
    refused = client.post(f"/pipelines/{pipeline.id}", data={"name": "Pair", "step_agent": pair})
    assert refused.status_code == 400
    page = BeautifulSoup(refused.text, "html.parser")
    assert "Step 2" in page.find(id=f"pipeline-{pipeline.id}-error").text
    assert page.find(id=f"pipeline-{pipeline.id}-name")["value"] == "Pair"  # kept
    session.refresh(pipeline)
    assert pipeline.name == "Solo"
    saved = client.post(
        f"/pipelines/{pipeline.id}",
        data={"name": "Pair", "step_agent": [str(coder.id), str(tester.id)],
              "step_instruction": ["", "Test this."]},
        follow_redirects=False,
    )  # fmt: skip
    assert saved.status_code == 303 and saved.headers["location"].endswith(f"?saved={pipeline.id}")
    session.refresh(pipeline)
    assert (pipeline.name, len(pipeline.steps)) == ("Pair", 2)

    task = start_task(client, workspace, [coder])
    wait_for_runs(client, task["id"], 1)
    started = client.post(f"/pipelines/{pipeline.id}/start", data={"task_id": str(task["id"])},
                          follow_redirects=False)  # fmt: skip
    assert started.status_code == 303 and f"/t/{task['id']}?at=" in started.headers["location"]
    runs = wait_for_runs(client, task["id"], 3)
    assert [r["pipeline_step"] for r in runs if r["pipeline_id"]] == [0, 1]

    deleted = client.post(f"/pipelines/{pipeline.id}/delete", follow_redirects=False)
    assert deleted.status_code == 303
    assert session.exec(select(Pipeline)).all() == []
