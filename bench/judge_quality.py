"""How well a judge agent on the bundled model reads: verdicts it gives, and right ones.

    python -m bench.judge_quality [--pairs 12] [--judge-examples/--no-judge-examples]

Starts ``switchboard up`` (the embedded Gemma 3 270M) on a throwaway data folder. Writes into
its database a task per question with two answers, one right and one wrong (the right one in
column A for half of them, B for the other half), compares them, and asks a judge agent on the
embedded model to judge each comparison through the API — a real run on the model's queue,
read by the same strict parser as in the product. Prints the share of judgements that cast a
vote (readable), of votes that pick the right answer, and how often the judge said A, B, tie or
both bad (a judge that always says "A" scores half by position alone). With
``--judge-examples`` (the default) the judge agent has worked examples of the verdict format,
which a base model copies; without them it has its role prompt only. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from bench.stack import Stack, StackError, load_note, stack

FACTS = [
    ("What is the capital of France?", "Paris.", "Berlin."),
    ("How many legs does a spider have?", "Eight.", "Six."),
    ("What is 7 times 8?", "56.", "54."),
    ("Which planet is closest to the Sun?", "Mercury.", "Mars."),
    ("What is the boiling point of water at sea level in Celsius?", "100 degrees.", "80 degrees."),
    ("Who wrote Romeo and Juliet?", "William Shakespeare.", "Charles Dickens."),
    ("What is the largest ocean on Earth?", "The Pacific Ocean.", "The Indian Ocean."),
    ("How many days are in a leap year?", "366.", "365."),
    ("What gas do plants take in from the air?", "Carbon dioxide.", "Oxygen."),
    ("What is the square root of 81?", "9.", "8."),
    ("In which continent is Kenya?", "Africa.", "Asia."),
    ("What is the chemical symbol for gold?", "Au.", "Ag."),
]
JUDGE_PROMPT = (
    "You are Judge. You compare two answers to a question and say which is right. Reply with "
    "a Verdict line and a Reason line."
)
JUDGE_EXAMPLES = """\
User: Question: What colour is the sky on a clear day?
Answer A: Green.
Answer B: Blue.
Assistant: Verdict: B
Reason: The sky is blue.

User: Question: What is 2 plus 2?
Answer A: 4.
Answer B: 5.
Assistant: Verdict: A
Reason: 2 plus 2 is 4."""


def seed(data_dir: Path, slug: str, pairs: int) -> list[tuple[int, str]]:
    """A task per question with a right and a wrong answer, compared: (comparison id, the
    letter of the right answer)."""
    from sqlmodel import Session, select

    from app.db import create_db_engine
    from app.models import Comparison, ComparisonBranch, Message, Task, Workspace

    engine = create_db_engine(f"sqlite:///{data_dir / 'switchboard.db'}")
    seeded = []
    with Session(engine) as session:
        workspace = session.exec(select(Workspace).where(Workspace.slug == slug)).one()
        for number, (question, right, wrong) in enumerate(FACTS[:pairs]):
            task = Task(workspace_id=workspace.id, title=f"Fact {number + 1}", status="review")  # type: ignore[arg-type]
            session.add(task)
            session.flush()
            asked = Message(task_id=task.id, role="user", content=question)  # type: ignore[arg-type]
            session.add(asked)
            session.flush()
            letter = "A" if number % 2 == 0 else "B"
            texts = [right, wrong] if letter == "A" else [wrong, right]
            answers = [Message(task_id=task.id, parent_id=asked.id, role="assistant",  # type: ignore[arg-type]
                               content=text) for text in texts]  # fmt: skip
            session.add_all(answers)
            comparison = Comparison(task_id=task.id)  # type: ignore[arg-type]
            session.add(comparison)
            session.flush()
            session.add_all(
                ComparisonBranch(comparison_id=comparison.id, message_id=answer.id, position=i)  # type: ignore[arg-type]
                for i, answer in enumerate(answers)
            )
            session.commit()
            seeded.append((comparison.id, letter))  # type: ignore[arg-type]
    engine.dispose()
    return seeded


def judge_agent(sb: Stack, slug: str, examples: bool) -> int:
    model = sb.embedded_endpoint()
    models = sb.get(f"/endpoints/{model['id']}/models")
    body = {"name": "Judge", "model_id": models[0]["id"], "role_prompt": JUDGE_PROMPT,
            "max_tokens": 40, "temperature": 0.0,
            "examples": JUDGE_EXAMPLES if examples else ""}  # fmt: skip
    return int(sb.post(f"/workspaces/{slug}/agents", body)["id"])


def wait_settled(sb: Stack, comparison: int, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sb.get(f"/comparisons/{comparison}/judgements")
        if found and found[0]["status"] != "pending":
            return found[0]  # type: ignore[no-any-return]
        time.sleep(0.3)
    raise StackError(f"the judgement on comparison {comparison} did not settle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--judge-examples", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    print(load_note())
    with stack() as sb:
        slug = sb.workspace("Judge bench")
        judge = judge_agent(sb, slug, args.judge_examples)
        seeded = seed(sb.data_dir, slug, min(args.pairs, len(FACTS)))
        said: Counter[str] = Counter()
        right = readable = 0
        for comparison, _ in seeded:
            sb.post(f"/comparisons/{comparison}/judgements", {"agent_id": judge})
        for comparison, letter in seeded:
            judgement = wait_settled(sb, comparison)
            if judgement["status"] != "voted":
                said[judgement["status"]] += 1
                continue
            readable += 1
            vote = next(v for v in sb.get(f"/comparisons/{comparison}")["votes"]
                        if v["id"] == judgement["vote_id"])  # fmt: skip
            verdict = {"a": "A", "b": "B"}.get(vote["outcome"], vote["outcome"])
            said[verdict] += 1
            right += verdict == letter
    total = len(seeded)
    result = {"pairs": total, "readable": readable, "right": right, "said": dict(said),
              "judge_examples": args.judge_examples}  # fmt: skip
    print(f"readable verdicts: {readable} of {total} ({readable / total:.0%})")
    print(f"right answer picked: {right} of {total} ({right / total:.0%}); chance would be 50 %")
    print(f"what the judge said: {dict(said)}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
