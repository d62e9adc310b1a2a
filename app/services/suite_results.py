"""A suite run's results: a cell per prompt × agent, a summary per agent, and what changed
since the previous run of the same suite.

A cell's outcome is read from the things that decide it: the answer's run, the findings
recorded when it finished, the sandbox check and the judge's run. Statuses:

  queued, running   the answer is not written yet
  checking          answered; a check or the judge has not finished
  passed / failed   every check passed / at least one failed (a failed run fails)
  error             a check could not be carried out (no sandbox here, the judge's run failed)
  cancelled         the run was cancelled
  answered          the prompt has no checks

The pass rate counts passed out of passed + failed; the rest is shown, not counted.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from app.engine.checks import summary as check_summary
from app.evals.kinds import read_verdict
from app.models import (
    Agent,
    Check,
    CheckStatus,
    Message,
    Model,
    Run,
    RunStatus,
    Suite,
    SuiteResult,
    SuiteRun,
)

JUDGED = ("passed", "failed")
UNFINISHED = ("queued", "running", "checking")


@dataclass
class Cell:
    """One prompt put to one agent."""

    prompt_index: int
    agent_id: int | None
    status: str
    findings: list[dict[str, Any]]
    run: Run | None
    task_id: int | None
    change: str | None = None  # "better" or "worse" than the previous run of the suite

    @property
    def answer_id(self) -> int | None:
        return self.run.output_message_id if self.run else None

    @property
    def time_to_first_token_ms(self) -> float | None:
        run = self.run
        if run is None or run.started_at is None or run.first_token_at is None:
            return None
        return (run.first_token_at - run.started_at).total_seconds() * 1000


@dataclass
class AgentSummary:
    agent_id: int
    name: str
    passed: int = 0
    failed: int = 0
    unfinished: int = 0
    other: int = 0
    median_time_to_first_token_ms: float | None = None
    median_tokens_per_second: float | None = None

    @property
    def pass_rate(self) -> float | None:
        judged = self.passed + self.failed
        return self.passed / judged if judged else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.passed, self.passed + self.failed)


@dataclass
class Grid:
    suite_run: SuiteRun
    prompts: list[dict[str, Any]]
    agents: list[AgentSummary]
    cells: dict[tuple[int, int | None], Cell]
    previous: SuiteRun | None = None
    better: list[Cell] = field(default_factory=list)
    worse: list[Cell] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return not any(cell.status in UNFINISHED for cell in self.cells.values())

    def cell(self, prompt_index: int, agent_id: int | None) -> Cell | None:
        return self.cells.get((prompt_index, agent_id))


def wilson(passed: int, total: int, z: float = 1.96) -> tuple[float, float] | None:
    """The 95 % Wilson score interval of a pass rate (sound at 0 %, 100 % and small counts)."""
    if total == 0:
        return None
    share = passed / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    half /= 1 + z * z / total
    return max(0.0, centre - half), min(1.0, centre + half)


def _check_finding(check: Check | None) -> dict[str, Any]:
    if check is None:
        return {"kind": "python", "passed": None, "reason": "The check was deleted.", "error": True}
    status = CheckStatus(check.status)
    if status in (CheckStatus.queued, CheckStatus.running):
        return {"kind": "python", "passed": None, "reason": "Running in the sandbox."}
    if status in (CheckStatus.unavailable, CheckStatus.cancelled):
        return {"kind": "python", "passed": None, "reason": check_summary(check), "error": True}
    # An error is the code's doing (a crash, a timeout, no tests ran): the answer fails.
    return {"kind": "python", "passed": status == CheckStatus.passed,
            "reason": check_summary(check)[:300]}  # fmt: skip


def _judge_finding(run: Run | None, reply: str | None) -> dict[str, Any]:
    if run is None:
        return {"kind": "judge", "passed": None, "reason": "The judge's run was deleted.",
                "error": True}  # fmt: skip
    if run.status in (RunStatus.queued, RunStatus.running):
        return {"kind": "judge", "passed": None, "reason": "The judge is answering."}
    if run.status != RunStatus.succeeded:
        why = f"The judge's run {run.status}: {run.error or ''}".strip()
        return {"kind": "judge", "passed": None, "reason": why, "error": True}
    return read_verdict(reply or "").as_dict()


def _status(run: Run | None, result: SuiteResult, findings: list[dict[str, Any]]) -> str:
    if run is None:
        return "error"
    if run.status in (RunStatus.queued, RunStatus.running, RunStatus.cancelled):
        return str(run.status)
    if run.status == RunStatus.failed:
        return "failed"
    if result.answered_at is None or result.answered_at != run.finished_at:
        return "checking"
    if any(f["passed"] is None and not f.get("error") for f in findings):
        return "checking"
    if any(f["passed"] is False for f in findings):
        return "failed"
    if any(f.get("error") for f in findings):
        return "error"
    return "passed" if findings else "answered"


def cells_of(session: Session, suite_runs: list[SuiteRun]) -> dict[int, list[Cell]]:
    """Every cell of these suite runs, by suite run id."""
    ids = [s.id for s in suite_runs]
    results = session.exec(
        select(SuiteResult).where(col(SuiteResult.suite_run_id).in_(ids))
        .order_by(col(SuiteResult.prompt_index), col(SuiteResult.id))
    ).all()  # fmt: skip
    run_ids = {r.run_id for r in results} | {r.judge_run_id for r in results}
    runs = {r.id: r for r in session.exec(select(Run).where(col(Run.id).in_(run_ids))).all()}
    check_ids = [r.code_check_id for r in results if r.code_check_id is not None]
    checks = {c.id: c for c in session.exec(select(Check).where(col(Check.id).in_(check_ids)))}
    replies = dict(
        session.exec(
            select(Message.id, Message.content).where(
                col(Message.id).in_([
                    runs[r.judge_run_id].output_message_id for r in results
                    if r.judge_run_id in runs
                ])
            )
        ).all()
    )  # fmt: skip
    cells: dict[int, list[Cell]] = {i: [] for i in ids}  # type: ignore[misc]
    for result in results:
        run = runs.get(result.run_id)
        findings = list(result.findings)
        answered = run is not None and result.answered_at == run.finished_at
        if answered and result.code_check_id is not None:
            findings.append(_check_finding(checks.get(result.code_check_id)))
        if answered and result.judge_task_id is not None:
            judge_run = runs.get(result.judge_run_id)
            reply = replies.get(judge_run.output_message_id) if judge_run else None
            findings.append(_judge_finding(judge_run, reply))
        status = _status(run, result, findings)
        cells[result.suite_run_id].append(
            Cell(result.prompt_index, result.agent_id, status, findings, run, result.task_id)
        )
    return cells


def _summaries(
    cells: list[Cell], agent_ids: list[int], names: dict[int, str]
) -> list[AgentSummary]:
    summaries = {a: AgentSummary(a, names.get(a, f"#{a} (deleted)")) for a in agent_ids}
    for summary in summaries.values():
        mine = [c for c in cells if c.agent_id == summary.agent_id]
        for cell in mine:
            if cell.status == "passed":
                summary.passed += 1
            elif cell.status == "failed":
                summary.failed += 1
            elif cell.status in UNFINISHED:
                summary.unfinished += 1
            else:
                summary.other += 1
        ttfts = [t for c in mine if (t := c.time_to_first_token_ms) is not None]
        speeds = [s for c in mine if c.run and (s := c.run.tokens_per_second) is not None]
        summary.median_time_to_first_token_ms = statistics.median(ttfts) if ttfts else None
        summary.median_tokens_per_second = statistics.median(speeds) if speeds else None
    return list(summaries.values())


def agent_names(session: Session, agent_ids: list[int]) -> dict[int, str]:
    return {
        a.id: a.name  # type: ignore[misc]
        for a in session.exec(select(Agent).where(col(Agent.id).in_(agent_ids))).all()
    }


def grid(*, session: Session, suite_run: SuiteRun, previous: SuiteRun | None = None) -> Grid:
    """The results grid of a suite run, compared with ``previous`` (a run of the same suite)."""
    runs = [suite_run] + ([previous] if previous is not None else [])
    cells = cells_of(session, runs)
    mine = cells[suite_run.id]  # type: ignore[index]
    names = agent_names(session, suite_run.agent_ids)
    result = Grid(
        suite_run=suite_run,
        prompts=suite_run.prompts,
        agents=_summaries(mine, suite_run.agent_ids, names),
        cells={(c.prompt_index, c.agent_id): c for c in mine},
        previous=previous,
    )
    if previous is not None:
        # The same prompt (by its text: prompts may be added or moved) to the same agent.
        before = {
            (previous.prompts[c.prompt_index]["prompt"], c.agent_id): c.status
            for c in cells[previous.id]  # type: ignore[index]
        }
        for cell in mine:
            was = before.get((suite_run.prompts[cell.prompt_index]["prompt"], cell.agent_id))
            if was == "failed" and cell.status == "passed":
                cell.change = "better"
                result.better.append(cell)
            elif was == "passed" and cell.status == "failed":
                cell.change = "worse"
                result.worse.append(cell)
    return result


RESULT_COLUMNS = (
    "suite", "run_number", "prompt_index", "prompt", "agent", "model", "status", "findings",
    "task_id", "run_id", "answer_message_id", "time_to_first_token_ms", "tokens_per_second",
    "completion_tokens",
)  # fmt: skip


def result_records(*, session: Session, suite: Suite, suite_run: SuiteRun) -> list[dict[str, Any]]:
    """One record per cell, for the CSV and JSON exports."""
    cells = cells_of(session, [suite_run])[suite_run.id]  # type: ignore[index]
    names = agent_names(session, suite_run.agent_ids)
    model_ids = {c.run.model_id for c in cells if c.run and c.run.model_id}
    models = {
        m.id: m.name for m in session.exec(select(Model).where(col(Model.id).in_(model_ids))).all()
    }
    return [
        {
            "suite": suite.name,
            "run_number": suite_run.number,
            "prompt_index": cell.prompt_index,
            "prompt": suite_run.prompts[cell.prompt_index]["prompt"],
            "agent": names.get(cell.agent_id) if cell.agent_id else None,  # type: ignore[arg-type]
            "model": models.get(cell.run.model_id) if cell.run and cell.run.model_id else None,
            "status": cell.status,
            "findings": cell.findings,
            "task_id": cell.task_id,
            "run_id": cell.run.id if cell.run else None,
            "answer_message_id": cell.answer_id,
            "time_to_first_token_ms": round(t, 1)
            if (t := cell.time_to_first_token_ms) is not None
            else None,
            "tokens_per_second": round(cell.run.tokens_per_second, 2)
            if cell.run and cell.run.tokens_per_second is not None
            else None,
            "completion_tokens": cell.run.completion_tokens if cell.run else None,
        }  # fmt: skip
        for cell in cells
    ]
