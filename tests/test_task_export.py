"""A task exported as JSON and Markdown: every branch, run, comparison and vote."""

from __future__ import annotations

from tests.engine_helpers import start_task, wait_for_runs


def test_a_fanned_out_task_exports_every_branch_and_vote(client, session, team):
    workspace, agents = team
    task = start_task(client, workspace, agents[:2], brief="Say hello.")
    wait_for_runs(client, task["id"], 2)
    question = task["started"]["message"]["id"]
    compared = client.post(f"/t/{task['id']}/compare", data={"question_id": question},
                           follow_redirects=False)  # fmt: skip
    comparison_id = int(compared.headers["location"].rsplit("/", 1)[1])
    client.post(f"/api/v1/comparisons/{comparison_id}/votes", json={"outcome": "b"})

    record = client.get(f"/api/v1/tasks/{task['id']}/export").json()
    assert record["task"]["title"] == "t"
    answers = [m for m in record["messages"] if m["role"] == "assistant"]
    assert sorted(m["content"] for m in answers) == ["Coder says hello", "Tester says hello"]
    assert {r["status"] for r in record["runs"]} == {"succeeded"}
    assert record["comparisons"][0]["votes"] == [
        {"outcome": "b", "winner_message_id": record["comparisons"][0]["message_ids"][1],
         "by": "person", "reason": None}
    ]  # fmt: skip

    markdown = client.get(f"/api/v1/tasks/{task['id']}/export?format=markdown")
    assert markdown.headers["content-type"].startswith("text/markdown")
    text = markdown.text
    assert text.startswith("# t\n")
    assert text.count("## Branch ") == 2
    assert "Coder says hello" in text and "Tester says hello" in text
    assert f"Comparison {comparison_id}" in text and "person: b" in text
    assert client.get(f"/api/v1/tasks/{task['id']}/export?format=pdf").status_code == 400
