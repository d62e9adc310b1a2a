"""How fast Switchboard carries a stream to its viewers: one run of a model that is never the
bottleneck, read by 1 and by 100 SSE viewers at once, against reading that model directly.

    python -m bench.stream_capacity [--words 2000] [--runs 3] [--viewers 100]

A scripted OpenAI-compatible server (``bench.stack.ScriptedModel``, in a child process)
streams 2,000 one-word chunks back to back. It is registered as a model endpoint of a
throwaway stack (``switchboard up`` without the embedded model) and an agent uses it. Measured:

* direct: words/s an httpx client reads straight from the scripted server;
* 1 viewer: words/s that one SSE client (``GET /api/v1/runs/{id}/events``) receives;
* N viewers: N SSE clients (asyncio, one connection each) following the same run.

The viewers are ``bench.sse_viewer``'s lean HTTP/1.1 readers: they stand for browsers on other
machines, and httpx's async client used more of the two cores than the web process did.

For the viewers the scripted answer is held back until every viewer is connected and the worker
is waiting on the model, and the clock starts when it is released; each viewer's rate is the
words it received divided by the time until its last word. Words are counted, not events: the
run engine coalesces tokens into one stream entry every ~50 ms. Prints each rate as a ratio of
the direct rate. Nothing is asserted: machines here are shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass

import httpx

from bench.report import emit, row
from bench.sse_viewer import cookie_header, view_run
from bench.stack import (
    Event,
    ScriptedModel,
    Stack,
    StackError,
    last_token_at,
    load_note,
    stack,
    terminal,
    tokens_text,
    wait_for_quiet,
)


def read_direct(model: ScriptedModel) -> tuple[float, int]:
    """(seconds from the response's headers to the last word, words) read straight from the
    server. The clock starts where the viewers' does: their run's request has its headers (the
    answer is held after them) when the answer is released. Until 2026-11-30 it started before
    making the client (~30 ms here: it loads the CA bundle) and connecting, in Switchboard's
    favour."""
    body = {"model": model.MODEL, "stream": True, "max_tokens": model.count,
            "messages": [{"role": "user", "content": "Go."}]}  # fmt: skip
    words = 0
    with (
        httpx.Client(timeout=60) as client,
        client.stream("POST", f"{model.base_url}/chat/completions", json=body) as response,
    ):
        started = last = time.perf_counter()
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[6:]).get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    words += len(text.split())
                    last = time.perf_counter()
    return last - started, words


# Issue 14's targets.
TARGET_RATIO = 0.9
TARGET_CONNECT_MS = 300.0


@dataclass(frozen=True)
class Delivery:
    rates: list[float]  # words/s per viewer, from the release of the answer to its last word
    words: list[int]  # words each viewer received
    first_word_ms: float  # median, from the release to the viewer's first word
    engine_rate: float | None  # the run's own tokens_per_second (the worker reading the model)
    spread_s: float  # last word of the slowest viewer − of the fastest
    events: float  # median token events per viewer
    cpu: dict[str, float]  # CPU seconds each part used from the release to the last viewer's end
    connect_s: float  # from opening the viewers' connections until each has its first event


async def deliver(sb: Stack, model: ScriptedModel, slug: str, agent: int, viewers: int) -> Delivery:
    """One run, followed by ``viewers`` SSE clients that are all connected before it streams."""
    model.hold()
    answered_before = model.answered
    created = sb.post(
        f"/workspaces/{slug}/tasks", {"title": "stream", "brief": "Go.", "agent_ids": [agent]}
    )
    run_id = created["started"]["runs"][0]["id"]
    cookies = cookie_header(sb.cookies)
    opened = [asyncio.Event() for _ in range(viewers)]
    connecting = time.perf_counter()
    tasks = [asyncio.create_task(view_run(sb.base_url, cookies, run_id, o)) for o in opened]
    await asyncio.wait_for(asyncio.gather(*(o.wait() for o in opened)), 120)
    connected_s = time.perf_counter() - connecting
    # The worker has claimed the run and its request waits at the model.
    deadline = time.monotonic() + 60
    while model.waiting < 1:
        if time.monotonic() > deadline:
            model.release()
            raise StackError(f"run {run_id} did not reach the model within 60 s")
        await asyncio.sleep(0.005)
    cpu_before = {**sb.cpu_seconds(), "model": model.cpu_seconds(),
                  "viewers": time.process_time()}  # fmt: skip
    released = time.perf_counter()
    model.release()
    results: list[list[Event]] = await asyncio.wait_for(asyncio.gather(*tasks), 300)
    cpu_after = {**sb.cpu_seconds(), "model": model.cpu_seconds(),
                 "viewers": time.process_time()}  # fmt: skip
    cpu = {part: cpu_after[part] - cpu_before.get(part, 0.0) for part in cpu_after}
    if model.answered != answered_before + 1:
        raise StackError("the scripted model did not serve exactly one answer")
    rates, counts, firsts, lasts = [], [], [], []
    done = terminal(results[0])
    for events in results:
        terminal(events)
        count = len(tokens_text(events).split())
        last = last_token_at(events) or released
        first = next(e.at for e in events if e.type == "token" and e.data.get("text"))
        rates.append(count / (last - released))
        counts.append(count)
        firsts.append((first - released) * 1000)
        lasts.append(last)
    events = statistics.median(sum(e.type == "token" for e in r) for r in results)
    return Delivery(rates, counts, statistics.median(firsts), done.data.get("tokens_per_second"),
                    max(lasts) - min(lasts), events, cpu, connected_s)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--viewers", type=int, default=100)
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
    model = ScriptedModel(args.words)
    with model.running(), stack(embedded_model=False) as sb:
        endpoint = sb.post(
            "/endpoints",
            {"name": "Scripted words", "base_url": model.base_url, "max_concurrency": 4},
        )
        model_id = endpoint["models"][0]["id"]
        slug = sb.workspace("bench stream capacity")
        agent = sb.agent(slug, name="Words", model_id=model_id, role_prompt="You count.",
                         max_tokens=args.words + 10)  # fmt: skip
        # Warm-up: the worker picks up the new endpoint's queue; connections and imports.
        read_direct(model)
        asyncio.run(deliver(sb, model, slug, agent, 1))
        directs, ones, many = [], [], []
        for _ in range(args.runs):
            directs.append(read_direct(model))
            ones.append(asyncio.run(deliver(sb, model, slug, agent, 1)))
            many.append(asyncio.run(deliver(sb, model, slug, agent, args.viewers)))
            directs.append(read_direct(model))

    direct_rate = statistics.median(words / seconds for seconds, words in directs)
    one_rate = statistics.median(d.rates[0] for d in ones)
    many_median = statistics.median(statistics.median(d.rates) for d in many)
    many_slowest = statistics.median(min(d.rates) for d in many)
    aggregate = many_median * args.viewers
    engine = [d.engine_rate for d in ones + many if d.engine_rate]
    complete = all(w == args.words for d in ones + many for w in d.words)
    n = args.viewers
    first_one = statistics.median(d.first_word_ms for d in ones)
    first_many = statistics.median(d.first_word_ms for d in many)
    spread_ms = statistics.median(d.spread_s for d in many) * 1000
    print(f"{args.words} one-word chunks from a scripted model, median of {args.runs} runs; "
          f"at start: {note}")  # fmt: skip
    show("direct, httpx from the model server", direct_rate, "words/s")
    if engine:
        show("the worker reading the model (run)", statistics.median(engine), "tokens/s")
    show("1 SSE viewer", one_rate, "words/s", f"first word after {first_one:.1f} ms")
    show(f"{n} SSE viewers, median viewer", many_median, "words/s",
         f"first word after {first_many:.1f} ms")  # fmt: skip
    show(f"{n} SSE viewers, slowest viewer", many_slowest, "words/s",
         f"last words {spread_ms:.0f} ms apart")  # fmt: skip
    show(f"{n} SSE viewers, all together", aggregate, "words/s")
    show("1 viewer / direct", one_rate / direct_rate, "x")
    show(f"{n} viewers (median) / direct", many_median / direct_rate, "x")
    show(f"{n} viewers (slowest) / direct", many_slowest / direct_rate, "x")
    for label, runs in (("1 viewer", ones), (f"{n} viewers", many)):
        parts = ("worker", "web", "redis", "model", "viewers")
        used = ", ".join(
            f"{part} {statistics.median(d.cpu.get(part, 0.0) for d in runs) * 1000:.0f}"
            for part in parts
        )
        events = statistics.median(d.events for d in runs)
        print(f"  CPU ms while streaming to {label}: {used}; {events:.0f} token events each")
    connect_ms = statistics.median(d.connect_s for d in many) * 1000
    print(f"  {n} viewers connected (each has its first event) in {connect_ms:.0f} ms")
    print(f"  every viewer got all {args.words} words: {'yes' if complete else 'NO'}")
    figures = {"words": args.words, "runs": args.runs, "viewers": n,
               "direct_words_per_s": round(direct_rate), "one_viewer_words_per_s": round(one_rate),
               "median_viewer_words_per_s": round(many_median),
               "slowest_viewer_words_per_s": round(many_slowest),
               "connect_ms": round(connect_ms, 1), "complete": complete}  # fmt: skip
    direct = f"{direct_rate:,.0f} words/s (direct)"
    emit("stream_capacity", figures, [
        row("one SSE viewer's rate", direct, f"{one_rate:,.0f} words/s", one_rate / direct_rate,
            f"≥ {TARGET_RATIO}×", one_rate / direct_rate >= TARGET_RATIO and complete),
        row(f"{n} SSE viewers, the median viewer's rate", direct, f"{many_median:,.0f} words/s",
            many_median / direct_rate, f"≥ {TARGET_RATIO}×",
            many_median / direct_rate >= TARGET_RATIO and complete),
        row(f"{n} SSE viewers connected (each has its first event)", "—",
            f"{connect_ms:.0f} ms", None, f"≤ {TARGET_CONNECT_MS:.0f} ms",
            connect_ms <= TARGET_CONNECT_MS),
    ])  # fmt: skip


def show(label: str, value: float, unit: str, extra: str = "") -> None:
    figure = f"{value:9.2f}" if unit == "x" else f"{value:9.0f}"
    print(f"  {label:<38}{figure} {unit:<9}{extra}".rstrip())


if __name__ == "__main__":
    main()
