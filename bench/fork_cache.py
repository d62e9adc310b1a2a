"""Whether forks and reruns reuse llama-server's prompt cache, and what a 4-agent fan-out costs.

    python -m bench.fork_cache [--runs 3] [--prompt-tokens 1300] [--fanout-runs 3]

On a throwaway stack with the embedded Gemma 3 270M (4 slots), for each of ``--runs`` rounds:

1. a thread: a ~1,300-token first message (sized with llama-server's ``/apply-template`` and
   ``/tokenize``) answered by an agent (16 tokens, temperature 0);
2. cold: a fresh task whose first message is a different text of the same size;
3. fork: a new user reply under the thread's answer (``POST /messages/{answer}/replies``);
4. rerun: the thread's question answered again (``POST /messages/{answer}/reruns``).

Time to first token of each, two ways: from the POST to the first ``token`` SSE event, and the
run's own ``time_to_first_token_ms`` (claimed by a worker → first token). Prints fork / cold
and rerun / cold (target ≤ 0.1), and what llama-server's log says about each request: the slot
it chose and why, and how many prompt tokens it evaluated (the rest came from the slot's cache).

Then the fan-out, in rounds: one task to 4 agents with different role prompts (wall time from
the POST until all 4 are done) against the same 4 agents answering one after another (each a
fresh task, started when the one before is done); and, as the baseline from the same run, the
same 4 requests sent straight to llama-server all at once and one after another. Each of the
four ways gets a brief of its own of the same size, so none reuses another's prompt cache.
Prints at once / one after another for both, and Switchboard's ratio over llama-server's.
Nothing is asserted: machines here are shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from app.llm import Finish, Timeouts, stream_chat
from bench.report import emit, row
from bench.stack import (
    LlamaLog,
    SlotTask,
    Stack,
    afollow_run,
    first_token_at,
    follow_run,
    load_note,
    stack,
    terminal,
    wait_for_quiet,
)

READER = "You are a careful reader. You answer questions about the text you are given."
FAN_OUT = {
    "Coder": "You are Coder. You write short, correct Python code for what is asked.",
    "Tester": "You are Tester. You list the test cases that would break the solution.",
    "Reviewer": "You are Reviewer. You point out the risks and the unclear parts of a plan.",
    "Explorer": "You are Explorer. You suggest three other ways to approach the problem.",
}
FORK_QUESTION = "Now list the three most important points of that text."
_WORDS = (
    "river harbour lantern engine garden market winter signal letter bridge mountain station "
    "captain orchard library furnace meadow compass ledger window ribbon thunder pebble canvas "
    "anchor spindle quarry beacon cellar falcon harvest journal kettle marble needle parcel "
    "saddle timber velvet wagon yarrow zephyr copper glacier hollow island jasmine kernel"
)
VOCABULARY = _WORDS.split()


def text(seed: int, words: int) -> str:
    """Sentences of ordinary words; a different seed differs from the first word on."""
    rng = random.Random(seed)
    sentences, count = [], 0
    while count < words:
        length = rng.randint(6, 14)
        picked = [rng.choice(VOCABULARY) for _ in range(length)]
        sentences.append(" ".join(picked).capitalize() + ".")
        count += length
    return f"Text {seed}. " + " ".join(sentences)


class Sizer:
    """Sizes a first message so that the whole prompt is about ``target`` tokens."""

    def __init__(self, root: str, key: str) -> None:
        self.root = root
        self.headers = {"Authorization": f"Bearer {key}"}

    def prompt_tokens(self, role_prompt: str, content: str) -> int:
        messages = [
            {"role": "system", "content": role_prompt},
            {"role": "user", "content": content},
        ]
        prompt = httpx.post(f"{self.root}/apply-template", headers=self.headers,
                            json={"messages": messages}, timeout=30).json()["prompt"]  # fmt: skip
        tokens = httpx.post(f"{self.root}/tokenize", headers=self.headers,
                            json={"content": prompt, "add_special": True}, timeout=30)  # fmt: skip
        return len(tokens.json()["tokens"])

    def message(self, seed: int, role_prompt: str, target: int) -> tuple[str, int]:
        words = target
        for _ in range(4):
            content = text(seed, words)
            size = self.prompt_tokens(role_prompt, content)
            if abs(size - target) <= target * 0.01:
                break
            words = max(1, round(words * target / size))
        return content, size


def epoch(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp).timestamp() if stamp else None


@dataclass(frozen=True)
class Timed:
    """One run: time to first token via SSE (from the POST) and as the run records it."""

    sse_ms: float
    run_ms: float
    wall_s: float  # POST → done
    prompt_tokens: int | None
    completion_tokens: int | None
    publish_ms: float | None  # the worker got the first token → this client got it
    slots: list[SlotTask]
    run: dict[str, Any]


def timed(sb: Stack, log: LlamaLog, path: str, body: dict[str, Any]) -> Timed:
    """POST an operation that starts one run, follow it to the end."""
    log.new()
    started = time.perf_counter()
    started_wall = time.time()
    created = sb.post(path, body)
    runs = created["started"]["runs"] if "started" in created else created["runs"]
    run_id = runs[0]["id"]
    events = follow_run(sb.client, run_id)
    done = terminal(events)
    first = first_token_at(events)
    if done.type != "done" or first is None:
        raise RuntimeError(f"run {run_id} did not succeed: {done}")
    run = sb.wait_finished(run_id)
    worker_first = epoch(run["first_token_at"])
    publish = (started_wall + (first - started) - worker_first) * 1000 if worker_first else None
    return Timed(
        sse_ms=(first - started) * 1000,
        run_ms=run["time_to_first_token_ms"],
        wall_s=done.at - started,
        prompt_tokens=run["prompt_tokens"],
        completion_tokens=run["completion_tokens"],
        publish_ms=publish,
        slots=log.new(),
        run=run,
    )


def describe(slots: list[SlotTask]) -> str:
    if not slots:
        return "no request in llama-server's log"
    return "; ".join(
        f"slot {s.slot} by {s.selected}, evaluated {s.evaluated} prompt tokens"
        f" in {s.prompt_eval_ms or 0:.0f} ms"
        + "".join(f" ({note})" for note in s.notes if note.startswith("n_past was set"))
        for s in slots
    )


def fan_out(sb: Stack, slug: str, agents: list[int], brief: str) -> tuple[float, int, float]:
    """One task to all agents, each run followed on its SSE stream as a board would: (seconds
    from the POST until the last is done, tokens, seconds between the first and last start)."""
    started = time.time()
    created = sb.post(f"/workspaces/{slug}/tasks",
                      {"title": "fan-out", "brief": brief, "agent_ids": agents})  # fmt: skip
    run_ids = [r["id"] for r in created["started"]["runs"]]

    async def follow_all() -> None:
        async with httpx.AsyncClient(base_url=sb.base_url, cookies=sb.cookies) as client:
            for events in await asyncio.gather(*(afollow_run(client, i) for i in run_ids)):
                terminal(events)

    asyncio.run(follow_all())
    runs = [sb.wait_finished(run_id) for run_id in run_ids]
    assert all(r["status"] == "succeeded" for r in runs), runs
    # The server's finish times: when this client noticed adds nothing to the figure.
    last = max(epoch(r["finished_at"]) or 0.0 for r in runs)
    starts = [epoch(r["started_at"]) or 0.0 for r in runs]
    return last - started, sum(r["completion_tokens"] or 0 for r in runs), max(starts) - min(starts)


def one_by_one(sb: Stack, slug: str, agents: list[int], brief: str) -> tuple[float, int, float]:
    """The same agents one run at a time, each a fresh task, each started as soon as the one
    before is ``done`` on its SSE stream: (seconds until the last is done, tokens)."""
    started = time.time()
    run_ids = []
    for agent in agents:
        created = sb.post(f"/workspaces/{slug}/tasks",
                          {"title": "single", "brief": brief, "agent_ids": [agent]})  # fmt: skip
        run_ids.append(created["started"]["runs"][0]["id"])
        terminal(follow_run(sb.client, run_ids[-1]))
    runs = [sb.wait_finished(run_id) for run_id in run_ids]
    assert all(r["status"] == "succeeded" for r in runs), runs
    last = max(epoch(r["finished_at"]) or 0.0 for r in runs)
    return last - started, sum(r["completion_tokens"] or 0 for r in runs), 0.0


@dataclass(frozen=True)
class Wave:
    """Four answers, all at once (fan-out) or one after another (sequential)."""

    round: int
    side: str  # "switchboard" or "direct"
    how: str  # "fan-out" or "sequential"
    wall_s: float
    tokens: int
    start_spread_s: float
    slots: list[SlotTask]


def direct_answer(endpoint: dict[str, Any], key: str, tokens: int, role_prompt: str,
                  brief: str) -> int:  # fmt: skip
    """One answer straight from llama-server, as the engine would ask it; its token count."""
    finish = None
    for event in stream_chat(
        base_url=endpoint["base_url"], api_key=key, model=endpoint["models"][0]["name"],
        messages=[{"role": "system", "content": role_prompt}, {"role": "user", "content": brief}],
        max_tokens=tokens, temperature=0.0, timeouts=Timeouts(first_token=300, between_tokens=60),
        extra={"cache_prompt": True},
    ):  # fmt: skip
        if isinstance(event, Finish):
            finish = event
    return (finish.completion_tokens or 0) if finish else 0


def direct_fan_out(ask: Any, brief: str) -> tuple[float, int, float]:
    started = time.time()
    with ThreadPoolExecutor(len(FAN_OUT)) as pool:
        tokens = sum(pool.map(lambda prompt: ask(prompt, brief), FAN_OUT.values()))
    return time.time() - started, tokens, 0.0


def direct_one_by_one(ask: Any, brief: str) -> tuple[float, int, float]:
    started = time.time()
    tokens = sum(ask(prompt, brief) for prompt in FAN_OUT.values())
    return time.time() - started, tokens, 0.0


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=1300)
    parser.add_argument("--answer-tokens", type=int, default=16)
    parser.add_argument("--fanout-runs", type=int, default=3)
    parser.add_argument("--fanout-tokens", type=int, default=64)
    parser.add_argument("--fanout-prompt-tokens", type=int, default=300)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="first wait up to this long for the load average to fall below 1",
    )
    args = parser.parse_args()

    wait_for_quiet(args.quiet_wait)
    note = load_note()
    with stack() as sb:
        endpoint = sb.embedded_endpoint()
        model_id = endpoint["models"][0]["id"]
        sizer = Sizer(endpoint["base_url"].removesuffix("/v1"), sb.embedded_key())
        log = LlamaLog(sb.data_dir / "llama-server.log")
        slug = sb.workspace("bench fork cache")
        reader = sb.agent(slug, name="Reader", model_id=model_id, role_prompt=READER,
                          max_tokens=args.answer_tokens)  # fmt: skip
        rounds: list[dict[str, Timed]] = []
        sizes = []
        # Warm-up: weights paged in, the worker's first task imported.
        timed(sb, log, f"/workspaces/{slug}/tasks",
              {"title": "warm", "brief": "Say hello.", "agent_ids": [reader]})  # fmt: skip
        for index in range(args.runs):
            first, size = sizer.message(100 + 2 * index, READER, args.prompt_tokens)
            other, _ = sizer.message(101 + 2 * index, READER, args.prompt_tokens)
            sizes.append(size)
            thread = timed(sb, log, f"/workspaces/{slug}/tasks",
                           {"title": "thread", "brief": first, "agent_ids": [reader]})  # fmt: skip
            answer_id = thread.run["output_message_id"]
            cold = timed(sb, log, f"/workspaces/{slug}/tasks",
                         {"title": "cold", "brief": other, "agent_ids": [reader]})  # fmt: skip
            fork = timed(sb, log, f"/messages/{answer_id}/replies",
                         {"content": FORK_QUESTION, "agent_ids": [reader]})  # fmt: skip
            rerun = timed(sb, log, f"/messages/{answer_id}/reruns", {})
            rounds.append({"thread": thread, "cold": cold, "fork": fork, "rerun": rerun})

        agents = [
            sb.agent(
                slug,
                name=name,
                model_id=model_id,
                role_prompt=prompt,
                max_tokens=args.fanout_tokens,
            )  # fmt: skip
            for name, prompt in FAN_OUT.items()
        ]
        ask = functools.partial(direct_answer, endpoint, sb.embedded_key(), args.fanout_tokens)
        fans: list[Wave] = []
        if args.fanout_runs:
            # Warm-up: every worker process runs its first run (the first one pays for setting
            # up its connections), and llama-server its 4 slots.
            fan_out(sb, slug, agents, "Say hello.")
            direct_fan_out(ask, "Say hello.")
        for index in range(args.fanout_runs):
            # A brief of its own for each of the four ways, so that none reuses another's cache.
            briefs = [sizer.message(500 + 4 * index + k, READER, args.fanout_prompt_tokens)[0]
                      + " Explain what to do with it." for k in range(4)]  # fmt: skip
            ways = [
                ("switchboard", "fan-out", lambda b: fan_out(sb, slug, agents, b)),
                ("switchboard", "sequential", lambda b: one_by_one(sb, slug, agents, b)),
                ("direct", "fan-out", lambda b: direct_fan_out(ask, b)),
                ("direct", "sequential", lambda b: direct_one_by_one(ask, b)),
            ]
            # Alternate the order round by round: the machine's load drifts.
            order = ways if index % 2 == 0 else ways[::-1]
            for brief, (side, how, call) in zip(briefs, order, strict=True):
                log.new()
                wall, tokens, spread = call(brief)
                fans.append(Wave(index, side, how, wall, tokens, spread, log.new()))

    report(args, rounds, sizes, fans, note)


def report(args: Any, rounds: list[dict[str, Timed]], sizes: list[int], fans: list[Wave],
           note: str) -> None:  # fmt: skip
    print(f"at start: {note}")
    rows: list[dict[str, Any]] = []
    if rounds:
        rows += report_cache(args, rounds, sizes)
    if fans:
        rows += report_fan_out(args, fans)
    emit("fork_cache", {"runs": args.runs, "fanout_runs": args.fanout_runs}, rows)


def report_cache(
    args: Any, rounds: list[dict[str, Timed]], sizes: list[int]
) -> list[dict[str, Any]]:
    kinds = ("thread", "cold", "fork", "rerun")
    sse = {k: median([r[k].sse_ms for r in rounds]) for k in kinds}
    own = {k: median([r[k].run_ms for r in rounds]) for k in kinds}
    print(f"prompt of ~{median(sizes):.0f} tokens, {args.answer_tokens}-token answers, "
          f"median of {args.runs} rounds")  # fmt: skip
    print("  time to first token   POST → SSE   claimed → first token   worker → SSE   prompt")
    for kind in kinds:
        tokens = median([r[kind].prompt_tokens or 0 for r in rounds])
        lag = median([r[kind].publish_ms for r in rounds if r[kind].publish_ms is not None])
        print(f"  {kind:<20}{sse[kind]:8.0f} ms   {own[kind]:14.0f} ms   {lag:9.0f} ms"
              f"   {tokens:6.0f}")  # fmt: skip
    evaluated = {k: median([sum(s.evaluated or 0 for s in r[k].slots) for r in rounds])
                 for k in kinds}  # fmt: skip
    for kind in ("fork", "rerun"):
        print(f"  {kind + ' / cold':<20}{sse[kind] / sse['cold']:8.3f}x   "
              f"{own[kind] / own['cold']:14.3f}x   (target ≤ 0.1); prompt tokens llama-server "
              f"evaluated {evaluated[kind]:.0f} / {evaluated['cold']:.0f}")  # fmt: skip
    print("  llama-server, round by round:")
    for number, found in enumerate(rounds, 1):
        for kind in kinds:
            print(f"    {number} {kind:<7} {describe(found[kind].slots)}")
    return [
        row(f"time to first token of a {kind}, POST → SSE (~{median(sizes):.0f}-token prompt)",
            f"{sse['cold']:.0f} ms (cold)", f"{sse[kind]:.0f} ms", sse[kind] / sse["cold"],
            "≤ 0.1×", sse[kind] / sse["cold"] <= 0.1)
        for kind in ("fork", "rerun")
    ]  # fmt: skip


def report_fan_out(args: Any, fans: list[Wave]) -> list[dict[str, Any]]:
    count = len({w.round for w in fans})
    print(f"4 agents ({args.fanout_tokens} tokens each at most, ~{args.fanout_prompt_tokens}-token "
          f"brief, a brief of its own for each wave), median of {count}")  # fmt: skip

    def pick(side: str, how: str) -> list[Wave]:
        return [w for w in fans if w.side == side and w.how == how]

    ratios = {}
    for side, label in (("switchboard", "through Switchboard"), ("direct", "llama-server alone")):
        fan, seq = pick(side, "fan-out"), pick(side, "sequential")
        fan_wall, seq_wall = median([w.wall_s for w in fan]), median([w.wall_s for w in seq])
        for how, waves, wall in (("at once", fan, fan_wall), ("one after another", seq, seq_wall)):
            each = ", ".join(f"{w.wall_s:.2f}" for w in waves)
            tokens = median([w.tokens for w in waves])
            print(f"  {label + ', ' + how:<40}{wall:6.2f} s   {tokens:4.0f} tokens   "
                  f"(each: {each} s)")  # fmt: skip
        paired = median([f.wall_s / s.wall_s for f, s in zip(fan, seq, strict=True)])
        ratios[side] = fan_wall / seq_wall
        print(f"  {label}: at once / one after another   {fan_wall / seq_wall:6.2f}x"
              f"   (paired by round {paired:.2f}x)")  # fmt: skip
    print(f"  Switchboard's fan-out ratio / llama-server's   "
          f"{ratios['switchboard'] / ratios['direct']:6.2f}x")  # fmt: skip
    spread = ", ".join(f"{w.start_spread_s * 1000:.0f}" for w in pick("switchboard", "fan-out"))
    print(f"  Switchboard fan-out: the 4 runs started within {spread} ms of each other")
    for side in ("switchboard", "direct"):
        for how in ("fan-out", "sequential"):
            slots = [sorted(s.slot for s in w.slots) for w in pick(side, how)]
            evaluated = [sum(s.evaluated or 0 for s in w.slots) for w in pick(side, how)]
            print(f"  {side} {how}: slots {slots}, prompt tokens evaluated {evaluated}")
    ours, theirs = ratios["switchboard"], ratios["direct"]
    return [
        row("4-agent fan-out: at once ÷ one after another",
            f"{theirs:.2f}× (llama-server alone)", f"{ours:.2f}×", ours / theirs)
    ]  # fmt: skip


if __name__ == "__main__":
    main()
