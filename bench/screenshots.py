"""The README's screenshots, taken in a real browser against a real stack.

    python -m bench.screenshots            # writes docs/img/*.png

Starts ``switchboard up`` on a throwaway data folder (``bench.stack``) with a scripted
OpenAI-compatible model server instead of the embedded model, so the pictures are the same on
every machine: a role's answer is chosen from its system prompt, and a judge's prompt gets a
verdict. The server serves two "models" (named ``scripted-…``: nothing here measures a real
model) so the leaderboard has two rows. Then, with Playwright and the system Chromium, as a
person would: the demo workspace (its first task fanned out to Coder and Explorer, answers
side by side), a comparison of the two with a person's vote and a judge's, a few more votes
through the API so the leaderboard has something to rank, the board and the leaderboard.
Each PNG is checked to stay under ``MAX_BYTES``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from app.runtime.preflight import free_loopback_port
from bench.stack import REPO, Stack, stack

OUT = REPO / "docs" / "img"
CHROMIUM = os.environ.get("SWITCHBOARD_TEST_CHROMIUM", "/usr/bin/chromium")
MAX_BYTES = 200_000
DESKTOP = {"width": 1440, "height": 900}
MODELS = {"scripted-small-270m": 270_000_000, "scripted-large-1.5b": 1_500_000_000}

ANSWERS = {
    "Coder": (
        "```python\ndef reverse_words(sentence):\n"
        '    return " ".join(reversed(sentence.split()))\n```\n\n'
        "Splitting on whitespace keeps each word's punctuation with it."
    ),
    "Explorer": (
        "1. `split()` then `reversed()`: one line, keeps punctuation attached.\n"
        "2. A regular expression over `\\S+`: keeps the original spacing, a little longer."
    ),
    "Tester": (
        "```python\ndef test_reverse_words():\n"
        '    assert reverse_words("Hello, world!") == "world! Hello,"\n```\n\nPASS'
    ),
    "Reviewer": "The function drops repeated spaces; say so in its docstring.",
}
JUDGE_VERDICT = "Verdict: A\nReason: A gives working code; B only lists approaches."


def _pick(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    last = messages[-1]["content"] if messages else ""
    if last.startswith("Judge the answers"):
        return JUDGE_VERDICT
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    return next((text for name, text in ANSWERS.items() if f"You are {name}" in system),
                "Here is my answer.")  # fmt: skip


def _chunk(model: str, content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    payload = {"id": "chatcmpl-shot", "object": "chat.completion.chunk", "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def scripted_model(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/v1/models`` and a streamed ``/v1/chat/completions``: the role's answer, word by
    word, a little slower on the larger model."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"].endswith("/models"):
        data = json.dumps({"object": "list", "data": [{"id": m, "object": "model"}
                                                      for m in MODELS]}).encode()  # fmt: skip
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": data})
        return
    if not scope["path"].endswith("/chat/completions"):
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
        return
    request = json.loads(body or b"{}")
    model = request.get("model", "scripted")
    pause = 0.004 if "large" in model else 0.002
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})  # fmt: skip
    words = _pick(request).split(" ")
    for index, word in enumerate(words):
        text = word if index == 0 else " " + word
        await send({"type": "http.response.body", "body": _chunk(model, text), "more_body": True})
        await asyncio.sleep(pause)
    usage = {"prompt_tokens": 60, "completion_tokens": len(words),
             "total_tokens": 60 + len(words)}  # fmt: skip
    tail = _chunk(model, finish="stop") + b"data: " + json.dumps(
        {"id": "chatcmpl-shot", "object": "chat.completion.chunk", "model": model,
         "choices": [], "usage": usage}).encode() + b"\n\ndata: [DONE]\n\n"  # fmt: skip
    await send({"type": "http.response.body", "body": tail})


def serve_scripted_model() -> str:
    """The scripted model on a free loopback port, in a daemon thread; its base URL."""
    port = free_loopback_port()
    config = uvicorn.Config(scripted_model, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/v1"


def register_models(sb: Stack, base_url: str) -> dict[str, int]:
    """The scripted server as an endpoint, with each model's parameter count; ids by name."""
    endpoint = sb.post("/endpoints", {"name": "scripted", "base_url": base_url})
    ids = {}
    for model in sb.get(f"/endpoints/{endpoint['id']}/models"):
        ids[model["name"]] = model["id"]
        sb.api("PATCH", f"/models/{model['id']}",
               json={"parameter_count": MODELS[model["name"]]})  # fmt: skip
    return ids


def more_votes(sb: Stack, slug: str, agents: dict[str, int]) -> None:
    """A few fan-outs of Coder (small model) and Reviewer (large), each compared and voted on,
    so the leaderboard ranks something: the large model wins four of six."""
    for number, outcome in enumerate(["b", "b", "a", "b", "tie", "b"]):
        task = sb.post(f"/workspaces/{slug}/tasks", {
            "title": f"Warm-up {number + 1}", "brief": f"Question {number + 1}.",
            "agent_ids": [agents["Coder"], agents["Reviewer"]], "tags": ["warm-up"]})  # fmt: skip
        answers = []
        for run in task["started"]["runs"]:
            sb.wait_finished(run["id"])
            answers.append(run["output_message_id"])
        comparison = sb.post("/comparisons", {"message_ids": answers})
        sb.post(f"/comparisons/{comparison['id']}/votes", {"outcome": outcome})


def shoot(page: Any, name: str, **options: Any) -> Path:
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path), **options)
    size = path.stat().st_size
    print(f"{path.relative_to(REPO)}: {size / 1000:.0f} kB")
    if size > MAX_BYTES:
        raise SystemExit(f"{path.name} is {size} bytes, over {MAX_BYTES}")
    return path


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    base_url = serve_scripted_model()
    with stack(embedded_model=False) as sb, sync_playwright() as playwright:
        models = register_models(sb, base_url)
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        context = browser.new_context(base_url=sb.base_url, viewport=DESKTOP)
        context.add_cookies([{"name": c.name, "value": c.value or "", "url": sb.base_url}
                             for c in sb.client.cookies.jar])  # fmt: skip
        context.set_default_timeout(60_000)
        page = context.new_page()

        # The demo workspace: its first task fanned out to Coder and Explorer.
        page.goto("/")
        page.click("form[action='/workspaces/demo'] button")
        page.wait_for_url("**/t/*")
        page.wait_for_function("() => !document.querySelector('#fanout-columns .live')")
        task_url = page.url
        slug = page.eval_on_selector("a[href^='/w/']", "a => a.getAttribute('href')").split("/")[2]
        page.eval_on_selector("#fanout-columns", "e => e.scrollIntoView({block: 'end'})")
        shoot(page, "task-fanout")

        agents = {a["name"]: a["id"] for a in sb.get(f"/workspaces/{slug}/agents")}
        for name in ("Reviewer", "Explorer"):  # the second model, for two rows to rank
            sb.api("PATCH", f"/agents/{agents[name]}",
                   json={"model_id": models["scripted-large-1.5b"]})  # fmt: skip

        # Compare the fan-out, vote, and ask the judge.
        page.goto(task_url)
        page.click("#fanout-compare")
        page.wait_for_url("**/c/*")
        page.click("#vote-a")
        expect(page.locator("#my-vote")).to_be_visible()
        page.select_option("#judge-agent", label="Reviewer")
        page.click("#judge-ask")
        expect(page.locator("#judgements [id$='-verdict']")).to_be_visible()
        # The whole page in a window of its height: the vote bar (sticky) in its place.
        height = page.evaluate("() => document.documentElement.scrollHeight")
        page.set_viewport_size({"width": DESKTOP["width"], "height": height})
        shoot(page, "compare")
        page.set_viewport_size(DESKTOP)

        more_votes(sb, slug, agents)
        page.goto(f"/w/{slug}")
        shoot(page, "board")
        page.goto(f"/w/{slug}/leaderboard")
        expect(page.locator("#leaderboard-table")).to_be_visible()
        shoot(page, "leaderboard", full_page=True)
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
