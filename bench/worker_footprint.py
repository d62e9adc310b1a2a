"""What the run worker costs in memory while it streams 32 runs at once: one process of threads
(the default pool) against the former prefork pool (a process per run), in the same run.

    python -m bench.worker_footprint [--runs 32] [--words 400]

For each pool a throwaway stack (``switchboard up`` without the embedded model, with
``SWITCHBOARD_WORKER_POOL`` and ``SWITCHBOARD_WORKER_CONCURRENCY=--runs``) gets a scripted
model endpoint (``bench.stack.ScriptedModel``, its ``max_concurrency`` = ``--runs``) and one
agent; one warm-up run, then ``--runs`` tasks are posted at once. The model holds every answer
after its headers until all ``--runs`` requests are open — the worker then holds that many
streams at once — and releases them together. The worker's memory is read over all its
processes (Celery's main process and, for prefork, its pool children) every 0.2 s from the
posting until the last run has finished: RSS summed over the processes (what the target of
issue 14, 200 MB, reads), and PSS (pages shared between processes divided among them: what the
machine gives it). Prints both for each pool, their ratio, and JSON on its last line.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from bench.report import emit, row
from bench.stack import ScriptedModel, Stack, StackError, _leftovers, load_note, stack

MB = 1024 * 1024
TARGET_RSS_MB = 200.0
SAMPLE_EVERY_S = 0.2
# `switchboard up` names its run worker so (the checker is "checker@%h").
WORKER_MARK = "switchboard@"


@dataclass(frozen=True)
class Memory:
    processes: int
    rss_mb: float
    pss_mb: float


@dataclass(frozen=True)
class Footprint:
    pool: str
    at_rest: Memory  # after a warm-up run, nothing running
    all_held: Memory  # every stream open at the model at once
    peak_rss_mb: float  # the highest sum of RSS seen from the posting to the last run's end
    peak_pss_mb: float
    peak_processes: int
    runs_succeeded: int
    words_per_run: list[int]


def worker_pids(data_dir: Path) -> list[int]:
    """The run worker's processes in the stack on ``data_dir``: forked pool children carry their
    parent's command line."""
    found = []
    for pid in _leftovers(data_dir):
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "celery" in command and " worker " in command and WORKER_MARK in command:
                found.append(pid)
    return found


def memory(data_dir: Path) -> Memory:
    rss = pss = 0
    pids = worker_pids(data_dir)
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            info = psutil.Process(pid).memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
    return Memory(len(pids), rss / MB, pss / MB)


class Sampler:
    """Reads the worker's memory every ``SAMPLE_EVERY_S`` in a thread; keeps the peaks."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.peak_rss = self.peak_pss = 0.0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.take()
            if self._stop.wait(SAMPLE_EVERY_S):
                return

    def take(self) -> Memory:
        now = memory(self.data_dir)
        self.peak_rss = max(self.peak_rss, now.rss_mb)
        self.peak_pss = max(self.peak_pss, now.pss_mb)
        self.peak_processes = max(self.peak_processes, now.processes)
        return now

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.take()


def post_task(sb: Stack, slug: str, agent: int) -> int:
    created = sb.post(
        f"/workspaces/{slug}/tasks", {"title": "words", "brief": "Go.", "agent_ids": [agent]}
    )
    return int(created["started"]["runs"][0]["id"])


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


def measure(pool: str, model: ScriptedModel, runs: int) -> Footprint:
    settings = {"SWITCHBOARD_WORKER_POOL": pool, "SWITCHBOARD_WORKER_CONCURRENCY": str(runs)}
    with stack(embedded_model=False, settings=settings) as sb:
        endpoint = sb.post(
            "/endpoints",
            {"name": "Scripted words", "base_url": model.base_url, "max_concurrency": runs},
        )
        slug = sb.workspace(f"bench worker footprint {pool}")
        agent = sb.agent(slug, name="Words", model_id=endpoint["models"][0]["id"],
                         role_prompt="You count.", max_tokens=model.count + 10)  # fmt: skip
        # Warm-up: the worker picks up the new endpoint's queue; imports, connections.
        model.release()
        warm = sb.wait_finished(post_task(sb, slug, agent), timeout=120)
        if warm["status"] != "succeeded":
            raise StackError(f"the warm-up run ended {warm['status']}: {warm.get('error')}")
        at_rest = memory(sb.data_dir)
        model.hold()
        try:
            with Sampler(sb.data_dir) as sampler:
                run_ids = [post_task(sb, slug, agent) for _ in range(runs)]
                wait_for(lambda: model.waiting == runs, 300, f"{runs} streams open at once")
                all_held = sampler.take()
                model.release()
                finished = [sb.wait_finished(run_id, timeout=300) for run_id in run_ids]
        finally:
            model.release()
    return Footprint(
        pool=pool, at_rest=at_rest, all_held=all_held, peak_rss_mb=sampler.peak_rss,
        peak_pss_mb=sampler.peak_pss, peak_processes=sampler.peak_processes,
        runs_succeeded=sum(run["status"] == "succeeded" for run in finished),
        words_per_run=sorted({int(run["completion_tokens"] or 0) for run in finished}),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=32, help="concurrent runs (and threads)")
    parser.add_argument("--words", type=int, default=400, help="one-word chunks per answer")
    args = parser.parse_args()

    note = load_note()
    model = ScriptedModel(args.words)
    with model.running():
        threads = measure("threads", model, args.runs)
        prefork = measure("prefork", model, args.runs)
    print(f"{args.runs} runs streaming at once from a scripted model ({args.words} words each); "
          f"at start: {note}")  # fmt: skip
    print(f"  {'pool':<9}{'processes':>10}{'RSS at rest':>13}{'RSS, all held':>15}"
          f"{'RSS peak':>10}{'PSS peak':>10}{'succeeded':>11}")  # fmt: skip
    for found in (threads, prefork):
        print(f"  {found.pool:<9}{found.peak_processes:>10}{found.at_rest.rss_mb:>10.0f} MB"
              f"{found.all_held.rss_mb:>12.0f} MB{found.peak_rss_mb:>7.0f} MB"
              f"{found.peak_pss_mb:>7.0f} MB{found.runs_succeeded:>8}/{args.runs}")  # fmt: skip
    rss_ratio = threads.peak_rss_mb / prefork.peak_rss_mb
    pss_ratio = threads.peak_pss_mb / prefork.peak_pss_mb
    met = threads.peak_rss_mb <= TARGET_RSS_MB and threads.runs_succeeded == args.runs
    print(f"  threads / prefork: RSS {rss_ratio:.3f}x, PSS {pss_ratio:.3f}x; "
          f"target: threads RSS <= {TARGET_RSS_MB:.0f} MB at {args.runs} streams: "
          f"{'met' if met else 'NOT met'}")  # fmt: skip
    figures = {
        "runs": args.runs, "words": args.words, "load": note,
        "threads": asdict(threads), "prefork": asdict(prefork),
        "rss_ratio": round(rss_ratio, 4), "pss_ratio": round(pss_ratio, 4),
        "target_rss_mb": TARGET_RSS_MB, "met": met,
    }  # fmt: skip
    emit("worker_footprint", figures, [
        row(f"run worker RSS at {args.runs} streams (peak)",
            f"{prefork.peak_rss_mb:,.0f} MB (prefork, a process per run)",
            f"{threads.peak_rss_mb:,.0f} MB (threads, 1 process)", rss_ratio,
            f"≤ {TARGET_RSS_MB:.0f} MB", met),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
