"""Helpers for tests that drive the run engine through the API with a real worker."""

from __future__ import annotations

import json
import time

from tests.scripted_server import answer

CHAT = "/v1/chat/completions"


def wait_for_runs(client, task_id: int, count: int, timeout: float = 60) -> list[dict]:
    """The task's runs once ``count`` of them are finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/api/v1/tasks/{task_id}")
        assert response.status_code == 200, response.text
        runs = response.json()["runs"]
        done = [r for r in runs if r["status"] in ("succeeded", "failed", "cancelled")]
        if len(done) >= count:
            return runs
        time.sleep(0.2)
    raise AssertionError(f"runs not finished in {timeout}s: {runs}")


def by_system_prompt(received) -> object:
    """Each agent answers with its own name, read from the system prompt it was sent."""
    system = received.json["messages"][0]["content"]
    return answer(f"{system.removeprefix('You are ').rstrip('.')} says hello", pause=0.01)


def start_task(client, workspace, agents, brief="First question.") -> dict:
    response = client.post(
        f"/api/v1/workspaces/{workspace.slug}/tasks",
        json={"title": "t", "brief": brief, "agent_ids": [a.id for a in agents]},
    )
    assert response.status_code == 201, response.text
    return response.json()


def chat_bodies(model_server) -> list[dict]:
    return [r.json for r in model_server.received if r.path == CHAT]


def read_events(client, run_id: int, *, last_event_id: str | None = None, limit: int = 10_000):
    """(id, event, data) of a run's SSE stream, up to ``limit`` events or the end."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events: list[tuple[str | None, str, dict]] = []
    current: dict[str, str] = {}
    with client.stream("GET", f"/api/v1/runs/{run_id}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith(":") or line.startswith("retry:"):
                continue
            if line:
                name, _, value = line.partition(": ")
                current[name] = value
                continue
            if "event" in current:
                events.append((current.get("id"), current["event"], json.loads(current["data"])))
            current = {}
            if len(events) >= limit or (events and events[-1][1] in ("done", "error")):
                break
    return events


def replay(events) -> str:
    """The text a browser shows after these events (``reset`` starts over)."""
    text = ""
    for _, event, data in events:
        if event == "reset":
            text = ""
        elif event == "token":
            text += data["text"]
    return text
