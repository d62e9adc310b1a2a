"""Comparing the same answers again opens the comparison made before (with its votes), and the
task page lists its comparisons and their votes."""

from __future__ import annotations

from bs4 import BeautifulSoup
from sqlmodel import select

from app.models import Comparison, Message, Task
from tests.factories import make_user, make_workspace, sign_in


def _fan_out(session, workspace) -> tuple[Task, Message, list[Message]]:
    task = Task(workspace_id=workspace.id, title="Compare me")
    session.add(task)
    session.flush()
    question = Message(task_id=task.id, role="user", content="Which is better?")
    session.add(question)
    session.flush()
    answers = [Message(task_id=task.id, role="assistant", content=f"Answer {n}",
                       parent_id=question.id) for n in "xyz"]  # fmt: skip
    session.add_all(answers)
    session.commit()
    return task, question, answers


def test_compare_again_reuses_the_comparison_and_the_task_lists_its_votes(client, session):
    user = make_user(session)
    sign_in(client, session, user)
    workspace = make_workspace(session, owner=user)
    task, question, answers = _fan_out(session, workspace)

    first = client.post(f"/t/{task.id}/compare", data={"question_id": question.id},
                        follow_redirects=False)  # fmt: skip
    assert first.status_code == 303
    comparison_path = first.headers["location"]
    comparison_id = int(comparison_path.rsplit("/", 1)[1])
    voted = client.post(f"{comparison_path}/vote",
                        data={"outcome": "best", "winner_message_id": answers[2].id})  # fmt: skip
    assert voted.status_code == 200

    again = client.post(f"/t/{task.id}/compare", data={"question_id": question.id},
                        follow_redirects=False)  # fmt: skip
    assert again.headers["location"] == comparison_path
    reopened = BeautifulSoup(client.get(comparison_path).text, "html.parser")
    assert reopened.find(id="my-vote").text == "You voted: C is best."
    # Blind is another comparison (its agents stay hidden until the vote).
    blind = client.post(f"/t/{task.id}/compare", data={"question_id": question.id,
                        "blind": "true"}, follow_redirects=False)  # fmt: skip
    assert blind.headers["location"] != comparison_path
    assert len(session.exec(select(Comparison).where(Comparison.task_id == task.id)).all()) == 2

    page = BeautifulSoup(client.get(f"/t/{task.id}").text, "html.parser")
    listed = page.find(id=f"task-comparison-{comparison_id}")
    assert listed is not None
    assert "3 branches" in listed.text and "votes: C is best" in listed.text
    assert listed.find("a")["href"] == comparison_path
    blind_id = int(blind.headers["location"].rsplit("/", 1)[1])
    assert "no votes yet" in page.find(id=f"task-comparison-{blind_id}").text
