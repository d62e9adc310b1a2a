"""Interference: the embedded model's speed while people browse Switchboard, ÷ its speed idle.

    python -m bench.interference [--users 50] [--runs 5] [--tokens 128]

Starts a throwaway stack (``switchboard up`` with the embedded Gemma 3 270M), fills a workspace
with tasks (short answers from the same model), then measures the model's decode tokens/s on
one 128-token stream straight from llama-server (``ignore_eos``, no prompt cache):

* idle: nothing else runs (measured before and after the load; the median of both);
* browsing: while ``--users`` simulated people (locust, headless, in its own process:
  ``bench.browse_load``) open the board and task pages, signed in, thinking 0.5–2 s between
  pages.

Prints both, their ratio (target ≥ 0.9) and what the people got (requests, failures, latency),
and the JSON line ``make bench`` reads. Nothing is asserted: machines here are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.llm import Finish, Timeouts, stream_chat
from bench.report import emit, row
from bench.stack import REPO, Stack, load_note, stack

TARGET = 0.9
PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."


def decode_rate(sb: Stack, tokens: int) -> float:
    """Decode tokens/s of one stream straight from the embedded llama-server."""
    endpoint = sb.embedded_endpoint()
    first = last = 0.0
    finish: Finish | None = None
    for event in stream_chat(
        base_url=endpoint["base_url"], api_key=sb.embedded_key(),
        model=endpoint["models"][0]["name"], messages=[{"role": "user", "content": PROMPT}],
        max_tokens=tokens, temperature=0.0, timeouts=Timeouts(first_token=120, between_tokens=60),
        extra={"ignore_eos": True, "cache_prompt": False},
    ):  # fmt: skip
        if isinstance(event, Finish):
            finish = event
        elif event.text:
            last = time.perf_counter()
            first = first or last
    assert finish is not None and first and last > first
    produced = finish.completion_tokens or tokens
    return (produced - 1) / (last - first)


def seed(sb: Stack, tasks: int) -> list[str]:
    """A workspace with ``tasks`` answered tasks; the paths people browse."""
    slug = sb.workspace("bench interference")
    model = sb.embedded_endpoint()["models"][0]
    agent = sb.agent(slug, name="Helper", model_id=model["id"],
                     role_prompt="You answer briefly.", max_tokens=8)  # fmt: skip
    ids, runs = [], []
    for number in range(tasks):
        created = sb.post(f"/workspaces/{slug}/tasks",
                          {"title": f"Question {number}", "brief": f"Name a colour ({number}).",
                           "agent_ids": [agent]})  # fmt: skip
        ids.append(created["id"])
        runs.append(created["started"]["runs"][0]["id"])
    for run_id in runs:
        sb.wait_finished(run_id)
    return [f"/w/{slug}", *(f"/t/{task_id}" for task_id in ids[:5])]


@contextmanager
def browsing(sb: Stack, paths: list[str], users: int) -> Iterator[dict[str, Any]]:
    """Simulated people browse ``paths`` while inside; their figures are filled in on leaving."""
    cookies = {name: value for name, value in sb.cookies.items()}
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.browse_load", "--host", sb.base_url,
         "--cookies", json.dumps(cookies), "--paths", ",".join(paths), "--users", str(users)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    figures: dict[str, Any] = {}
    try:
        line = process.stdout.readline()
        if line.strip() != "spawned":
            raise RuntimeError(f"bench.browse_load did not start: {line!r}")
        yield figures
    finally:
        process.stdin.close()
        output = process.stdout.read()
        process.wait(60)
    lines = [line for line in output.splitlines() if line.startswith("{")]
    if lines:
        figures.update(json.loads(lines[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--tasks", type=int, default=30, help="tasks on the board")
    parser.add_argument(
        "--niceness", type=int, default=None, help="the stack's SWITCHBOARD_PARTS_NICENESS"
    )
    args = parser.parse_args()

    note = load_note()
    niceness = {} if args.niceness is None else {"SWITCHBOARD_PARTS_NICENESS": str(args.niceness)}
    with stack(settings=niceness) as sb:
        paths = seed(sb, args.tasks)
        decode_rate(sb, 16)  # warm-up
        idle = [decode_rate(sb, args.tokens) for _ in range(args.runs)]
        with browsing(sb, paths, args.users) as people:
            for path in paths[:2]:  # the pages answer, signed in, before measuring
                sb.client.get(path).raise_for_status()
            busy = [decode_rate(sb, args.tokens) for _ in range(args.runs)]
        idle += [decode_rate(sb, args.tokens) for _ in range(args.runs)]
        cpu = sb.cpu_seconds()

    idle_rate, busy_rate = statistics.median(idle), statistics.median(busy)
    ratio = busy_rate / idle_rate
    print(f"{args.tokens}-token streams straight from llama-server, median of {args.runs} "
          f"(idle: {2 * args.runs}, before and after); at start: {note}")  # fmt: skip
    print(f"  {'idle':<32}{idle_rate:8.1f} tokens/s")
    print(f"  {f'while {args.users} people browse':<32}{busy_rate:8.1f} tokens/s")
    print(f"  {'browsing / idle':<32}{ratio:8.3f}x   (target ≥ {TARGET})")
    if people:
        print(f"  the people: {people['requests']} pages, {people['failures']} failed, "
              f"{people['requests_per_s']} pages/s, median {people['median_ms']} ms, "
              f"p95 {people['p95_ms']} ms")  # fmt: skip
    used = ", ".join(f"{part} {seconds:.1f}" for part, seconds in sorted(cpu.items()))
    print(f"  CPU seconds of the stack's processes in all: {used}")
    figures = {"users": args.users, "runs": args.runs, "idle_tokens_per_s": round(idle_rate, 2),
               "browsing_tokens_per_s": round(busy_rate, 2), "ratio": round(ratio, 3),
               "people": people, "parts_niceness": args.niceness}  # fmt: skip
    emit("interference", figures, [
        row(f"model tokens/s while {args.users} people browse ÷ idle",
            f"{idle_rate:.1f} tok/s idle", f"{busy_rate:.1f} tok/s",
            ratio, f"≥ {TARGET}", ratio >= TARGET),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
