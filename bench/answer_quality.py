"""Whether the bundled model's answers are usable: the chat format against the transcript format.

    python -m bench.answer_quality [--max-tokens 160] [--formats chat,transcript]

Starts a throwaway stack (``switchboard up``: embedded Gemma 3 270M, Redis, one worker, web) and
puts a fixed set of prompts — facts, small Python functions, one-line explanations — to one
agent at temperature 0 through Switchboard's API, once with the embedded model's prompt format
set to ``chat`` (llama-server's Gemma chat template) and once to ``transcript`` (a completion
prompt with worked examples and a stop at the next turn; ``PATCH /api/v1/models/{id}``).

An answer is **clean** when it is not empty, does not echo the role prompt, was not stopped by
the loop guard (``stopped: the model was repeating itself``) and stopped on its own (fewer
tokens than ``max_tokens``). A fact is **right** when the answer contains the expected word.
Code **parses** when the answer has a fenced code block that ``ast.parse`` accepts. Prints the
shares per format and every answer's first line; the last line is JSON. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import ast
import re
from dataclasses import dataclass
from typing import Any

from bench.report import emit, row
from bench.stack import Stack, load_note, stack

ROLE_PROMPT = "You are Helper. You answer the question briefly and correctly."
LOOP_STOPPED = "stopped: the model was repeating itself"


@dataclass(frozen=True)
class Prompt:
    kind: str  # "fact", "code" or "explain"
    text: str
    expected: str = ""  # for a fact: a word the right answer contains


PROMPTS = (
    Prompt("fact", "What is the capital of France?", "Paris"),
    Prompt("fact", "What is the capital of Japan?", "Tokyo"),
    Prompt("fact", "How many days are there in a week?", "seven|7"),
    Prompt("fact", "What is the largest planet in the solar system?", "Jupiter"),
    Prompt("fact", "What gas do plants take in from the air?", "carbon dioxide|CO2"),
    Prompt("fact", "Who wrote Romeo and Juliet?", "Shakespeare"),
    Prompt("fact", "What is the chemical symbol for water?", "H2O|H₂O"),
    Prompt("code", "Write a Python function that adds two numbers."),
    Prompt("code", "Write a Python function that reverses a string."),
    Prompt("code", "Write a Python function that checks whether a number is even."),
    Prompt("code", "Write a Python function that returns the largest item of a list."),
    Prompt("code", "Write a Python function is_prime(n)."),
    Prompt("code", "Write a Python function that counts the words in a sentence."),
    Prompt("explain", "In one sentence, what is a function?"),
    Prompt("explain", "In one sentence, what is a list in Python?"),
    Prompt("explain", "In one sentence, what does a compiler do?"),
    Prompt("explain", "In one sentence, what is recursion?"),
    Prompt("explain", "In one sentence, what is a loop?"),
)

CODE_BLOCK = re.compile(r"```[a-zA-Z0-9_+-]*\n(.*?)(?:```|$)", re.S)


@dataclass(frozen=True)
class Graded:
    prompt: Prompt
    text: str
    status: str
    error: str | None
    tokens: int | None
    echoed: bool
    looped: bool
    stopped_itself: bool
    right: bool | None  # facts only
    parses: bool | None  # code only

    @property
    def clean(self) -> bool:
        return (
            bool(self.text.strip())
            and not self.echoed
            and not self.looped
            and (self.stopped_itself)
        )


def echoes(text: str, role_prompt: str) -> bool:
    """Whether the answer repeats the role prompt (or a good part of one of its sentences)."""
    lowered = text.lower()
    sentences = [s.strip().lower() for s in re.split(r"(?<=\.)\s", role_prompt) if s.strip()]
    return any(s[:24] in lowered for s in sentences if len(s) >= 12)


def code_parses(text: str) -> bool:
    for block in CODE_BLOCK.findall(text):
        try:
            ast.parse(block)
        except SyntaxError:
            continue
        if block.strip():
            return True
    return False


def grade(prompt: Prompt, run: dict[str, Any], text: str, max_tokens: int) -> Graded:
    tokens = run.get("completion_tokens")
    looped = run.get("error") == LOOP_STOPPED
    return Graded(
        prompt=prompt, text=text, status=run["status"], error=run.get("error"), tokens=tokens,
        echoed=echoes(text, ROLE_PROMPT), looped=looped,
        stopped_itself=run["status"] == "succeeded" and not looped
        and tokens is not None and tokens < max_tokens,
        right=bool(re.search(prompt.expected, text, re.I)) if prompt.kind == "fact" else None,
        parses=code_parses(text) if prompt.kind == "code" else None,
    )  # fmt: skip


def ask_all(sb: Stack, slug: str, agent: int, max_tokens: int) -> list[Graded]:
    """Every prompt as a task of its own (the server's 4 slots take them in parallel)."""
    started = []
    for prompt in PROMPTS:
        task = sb.post(
            f"/workspaces/{slug}/tasks",
            {"title": prompt.text[:60], "brief": prompt.text, "agent_ids": [agent]},
        )
        started.append((prompt, task["id"], task["started"]["runs"][0]["id"]))
    graded = []
    for prompt, task_id, run_id in started:
        run = sb.wait_finished(run_id, timeout=600)
        messages = sb.get(f"/tasks/{task_id}")["messages"]
        text = next(m["content"] for m in messages if m["id"] == run["output_message_id"])
        graded.append(grade(prompt, run, text, max_tokens))
    return graded


def share(items: list[bool]) -> float:
    return round(sum(items) / len(items), 3) if items else 0.0


def summary(graded: list[Graded]) -> dict[str, Any]:
    facts = [g for g in graded if g.prompt.kind == "fact"]
    code = [g for g in graded if g.prompt.kind == "code"]
    return {
        "answers": len(graded),
        "clean": share([g.clean for g in graded]),
        "echoed": sum(g.echoed for g in graded),
        "looped": sum(g.looped for g in graded),
        "ran_to_max_tokens": sum(not g.stopped_itself and not g.looped for g in graded),
        "facts_right": share([bool(g.right) for g in facts]),
        "code_parses": share([bool(g.parses) for g in code]),
    }


def first_line(text: str) -> str:
    line = next((line for line in text.strip().splitlines() if line.strip()), "")
    return (line[:70] + "…") if len(line) > 70 else line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument(
        "--formats", default="chat,transcript", help="comma-separated: chat, transcript"
    )
    args = parser.parse_args()

    note = load_note()
    results: dict[str, dict[str, Any]] = {}
    with stack() as sb:
        model = sb.embedded_endpoint()["models"][0]
        slug = sb.workspace("bench answer quality")
        agent = sb.agent(slug, name="Helper", model_id=model["id"], role_prompt=ROLE_PROMPT,
                         max_tokens=args.max_tokens)  # fmt: skip
        for prompt_format in args.formats.split(","):
            sb.api("PATCH", f"/models/{model['id']}", json={"prompt_format": prompt_format})
            graded = ask_all(sb, slug, agent, args.max_tokens)
            results[prompt_format] = summary(graded)
            print(f"\n== {prompt_format} ==")
            for g in graded:
                flags = "clean" if g.clean else ",".join(
                    name for name, bad in (("empty", not g.text.strip()), ("echo", g.echoed),
                                           ("loop", g.looped), ("no-stop", not g.stopped_itself))
                    if bad
                )  # fmt: skip
                mark = {True: " right", False: " WRONG", None: ""}[g.right]
                mark += {True: " parses", False: " NO-CODE", None: ""}[g.parses]
                print(f"  [{flags}{mark}] {g.prompt.text[:44]!r:48} → {first_line(g.text)!r}")
    print(
        f"\n{len(PROMPTS)} prompts, temperature 0, max_tokens {args.max_tokens}; at start: {note}"
    )
    print(f"{'format':12} {'clean':>6} {'echo':>5} {'loop':>5} {'no-stop':>8} {'facts':>6} "
          f"{'code':>6}")  # fmt: skip
    for name, r in results.items():
        print(
            f"{name:12} {r['clean']:6.0%} {r['echoed']:5} {r['looped']:5} "
            f"{r['ran_to_max_tokens']:8} {r['facts_right']:6.0%} {r['code_parses']:6.0%}"
        )
    emit("answer_quality", {"max_tokens": args.max_tokens, **results}, [
        row(f"clean answers from the bundled model, {name} format ({len(PROMPTS)} prompts)", "—",
            f"{r['clean']:.0%}", None, "≥ 85 %" if name == "transcript" else "—",
            r["clean"] >= 0.85 if name == "transcript" else None)
        for name, r in results.items()
    ])  # fmt: skip


if __name__ == "__main__":
    main()
