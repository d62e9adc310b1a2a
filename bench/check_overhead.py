"""What the sandbox adds to one check: ``print("ok")`` through the sandbox and as a plain process.

    python -m bench.check_overhead [--runs 30]

Prepares a check runtime in a temporary folder, warms both sides up once, then runs, interleaved
(plain, sandboxed, plain, …), the same one-line program with the same interpreter: as
``subprocess.run([python, "-c", code])`` and through ``run_in_sandbox`` (bwrap, the supervisor,
the rlimits, the file written into /work). Prints the medians, the ratio sandboxed / plain, and
how many such checks one worker slot runs per minute; the last line is JSON. Nothing is
asserted: machines here are shared and noisy.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from app.checks.sandbox import SandboxLimits, prepare_runtime, run_in_sandbox, sandbox_problem
from bench.report import emit, row

CODE = 'print("ok")'


def plain(python: Path) -> float:
    """Seconds to run CODE as a plain child process."""
    started = time.perf_counter()
    done = subprocess.run([str(python), "-c", CODE], capture_output=True, check=True)
    elapsed = time.perf_counter() - started
    assert done.stdout == b"ok\n"
    return elapsed


def sandboxed(python: Path) -> float:
    """Seconds to run CODE as a check in the sandbox."""
    started = time.perf_counter()
    result = run_in_sandbox(
        files={"main.py": CODE},
        command=["python", "main.py"],
        limits=SandboxLimits(),
        runtime=python,
    )
    elapsed = time.perf_counter() - started
    assert result.status == "ok" and result.stdout == "ok\n", result
    return elapsed


def main() -> None:
    """Measure, print the figures, and end with one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    problem = sandbox_problem()
    if problem is not None:
        raise SystemExit(problem)
    folder = Path(tempfile.mkdtemp(prefix="check-bench-"))
    try:
        python = prepare_runtime(folder / "runtime")
        plain(python)  # warm up: the page cache, and the sandbox's one-time bwrap probe
        sandboxed(python)
        baseline, sandbox = [], []
        for _ in range(args.runs):
            baseline.append(plain(python))
            sandbox.append(sandboxed(python))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    baseline_s, sandbox_s = statistics.median(baseline), statistics.median(sandbox)
    ratios = [s / b for s, b in zip(sandbox, baseline, strict=True)]
    figures = {
        "metric": "check_overhead",
        "runs": args.runs,
        "baseline_s": round(baseline_s, 4),
        "sandbox_s": round(sandbox_s, 4),
        "ratio": round(statistics.median(ratios), 2),
        "added_ms": round((sandbox_s - baseline_s) * 1000, 1),
        "checks_per_minute": round(60 / sandbox_s),
    }
    print(f"plain python -c:   median {baseline_s * 1000:7.1f} ms over {args.runs} runs")
    print(f"run_in_sandbox:    median {sandbox_s * 1000:7.1f} ms")
    print(f"ratio (median of pairs): {figures['ratio']}x, +{figures['added_ms']} ms per check")
    print(f"one worker slot: about {figures['checks_per_minute']} trivial checks per minute")
    emit("check_overhead", figures, [
        row("one trivial check (print) in the sandbox",
            f"{baseline_s * 1000:.1f} ms (plain subprocess)",
            f"{sandbox_s * 1000:.1f} ms", figures["ratio"]),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
