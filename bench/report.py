"""``make bench``: run every benchmark, collect the JSON line each prints last, and rewrite the
one summary table of docs/benchmarks.md.

    python -m bench.report [--quick] [--only NAME,NAME] [--skip NAME,NAME] [--no-write]
    python -m bench.report --from-logs DIR     # rebuild the table from saved outputs

Each benchmark runs alone as ``python -m bench.NAME`` (its output is shown and saved under
``--logs``); its last line is one JSON object, whose ``table`` lists the rows it contributes:
metric, baseline, Switchboard, ratio, target and whether the target is met (:func:`row`,
:func:`emit`). A benchmark that fails or prints no such line gets a row saying so; the table
is still written. ``--quick`` runs each with small counts, to check that they work (its
figures are marked as such). The table goes between the markers in docs/benchmarks.md,
headed by the machine and the date.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
START = "<!-- bench:table:start (written by `make bench`: python -m bench.report) -->"
END = "<!-- bench:table:end -->"


# --- what a benchmark prints ----------------------------------------------------------------


def row(
    metric: str,
    baseline: str,
    switchboard: str,
    ratio: float | None = None,
    target: str = "—",
    met: bool | None = None,
) -> dict[str, Any]:
    """One line of the summary table; ``met`` None when the metric has no target."""
    rounded = None if ratio is None else round(ratio, 3)
    return {"metric": metric, "baseline": baseline, "switchboard": switchboard,
            "ratio": rounded, "target": target, "met": met}  # fmt: skip


def emit(bench: str, figures: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Print the benchmark's last line: its figures and its table rows, as one JSON object."""
    print(json.dumps({"bench": bench, **figures, "table": rows}), flush=True)


# --- running them ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bench:
    name: str
    args: list[str] = field(default_factory=list)
    quick: list[str] = field(default_factory=list)
    timeout_s: float = 3600


BENCHES = [
    Bench("model_direct", [], ["--runs", "2"]),
    Bench("run_overhead", [], ["--runs", "2"]),
    Bench("queue_latency", [], ["--runs", "100"]),
    Bench("stream_capacity", [], ["--runs", "1", "--viewers", "20"]),
    Bench("ui_latency", [], ["--requests", "20"]),
    Bench("interference", [], ["--users", "10", "--runs", "1", "--tasks", "5", "--tokens", "32"]),
    Bench("memory", [], ["--viewers", "20"]),
    Bench("worker_footprint", [], ["--runs", "8", "--words", "100"]),
    Bench("fork_cache", [], ["--runs", "1", "--fanout-runs", "1"]),
    Bench("check_overhead", [], ["--runs", "5"]),
    Bench("leaderboard", [], ["--votes", "1000", "--requests", "20"]),
    Bench("answer_quality", [], ["--formats", "transcript"]),
    Bench("soak", [], ["--runs", "40", "--minutes", "1"], timeout_s=5400),
]


def last_json(output: str) -> dict[str, Any] | None:
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                found = json.loads(line)
            except ValueError:
                return None
            return found if isinstance(found, dict) else None
        if line:
            return None
    return None


def run_bench(bench: Bench, quick: bool, logs: Path) -> dict[str, Any]:
    """Run one benchmark, showing and saving its output; its last JSON line, or a failure."""
    argv = [sys.executable, "-m", f"bench.{bench.name}", *(bench.quick if quick else bench.args)]
    print(f"\n=== {' '.join(argv[1:])}", flush=True)
    log = logs / f"{bench.name}.log"
    lines: list[str] = []
    started = time.monotonic()
    with subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as process, log.open("w") as sink:  # fmt: skip
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sink.write(line)
            lines.append(line)
            if time.monotonic() - started > bench.timeout_s:
                process.kill()
                break
        code = process.wait()
    return outcome(bench.name, code, "".join(lines), log)


def outcome(name: str, code: int, output: str, log: Path) -> dict[str, Any]:
    found = last_json(output)
    if code == 0 and found and isinstance(found.get("table"), list):
        return found
    why = f"exit status {code}" if code else "no JSON table on its last line"
    return {"bench": name, "table": [row(name, "—", f"**failed** ({why}; see {log})")]}


# --- the table ------------------------------------------------------------------------------


def machine() -> str:
    cores = os.cpu_count() or 0
    memory = ""
    try:
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))  # fmt: skip
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip()
                     for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))  # fmt: skip
    except (OSError, StopIteration):
        model = platform.processor()
    load = f"load average {os.getloadavg()[0]:.1f}"
    return f"{cores} cores{memory} ({model}); {platform.system()} {platform.release()}; {load}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _met(value: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "—"}[value]


def table(
    results: list[dict[str, Any]], *, when: str, where: str, quick: bool, note: str = ""
) -> str:
    caveat = (
        " — **a quick run: small counts, to check that the benchmarks work; not the figures**"
        if quick
        else ""
    )
    caveat += f" — {note}" if note else ""
    lines = [
        START,
        "",
        f"Measured {when} on {where}{caveat}. Each row comes from the JSON line its benchmark "
        "printed last; the sections below explain each benchmark.",
        "",
        "| benchmark | metric | baseline | Switchboard | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for result in results:
        for item in result["table"]:
            ratio = "—" if item.get("ratio") is None else f"{item['ratio']:.3g}×"
            cells = [f"`bench.{result['bench']}`", item["metric"], item["baseline"],
                     item["switchboard"], ratio, item.get("target", "—"),
                     _met(item.get("met"))]  # fmt: skip
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", END]
    return "\n".join(lines)


def write(doc: Path, text: str) -> None:
    """Put ``text`` between the markers (after the introduction, before the first section,
    the first time)."""
    current = doc.read_text()
    if START in current and END in current:
        before = current[: current.index(START)]
        after = current[current.index(END) + len(END) :]
        doc.write_text(before + text + after)
        return
    head, marker, rest = current.partition("\n## ")
    if marker:
        doc.write_text(f"{head.rstrip()}\n\n{text}\n{marker}{rest}")
    else:
        doc.write_text(f"{current.rstrip()}\n\n{text}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: check they work")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--skip", default="", help="comma-separated benchmark names")
    parser.add_argument("--logs", type=Path, default=Path("/tmp/switchboard-bench"))
    parser.add_argument("--from-logs", type=Path, help="rebuild the table from saved outputs")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--note", default="", help="a sentence for the table's heading")
    args = parser.parse_args()

    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    unknown = (only | skip) - {b.name for b in BENCHES}
    if unknown:
        parser.error(f"no such benchmark: {', '.join(sorted(unknown))}")
    chosen = [b for b in BENCHES if (not only or b.name in only) and b.name not in skip]
    results: list[dict[str, Any]] = []
    if args.from_logs:
        for bench in chosen:
            log = args.from_logs / f"{bench.name}.log"
            if log.exists():
                results.append(outcome(bench.name, 0, log.read_text(), log))
    else:
        args.logs.mkdir(parents=True, exist_ok=True)
        where = machine()  # before the benchmarks load it
        for bench in chosen:
            results.append(run_bench(bench, args.quick, args.logs))
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = table(results, when=when, where=machine() if args.from_logs else where,
                 quick=args.quick, note=args.note)  # fmt: skip
    print("\n" + text)
    if not args.no_write:
        write(args.doc, text)
        print(f"\nwrote the table into {args.doc}")


if __name__ == "__main__":
    main()
