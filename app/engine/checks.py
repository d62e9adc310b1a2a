"""Checks on a worker: an answer's code (and another answer's tests) run once in the sandbox.

The delivery contract of the run engine holds here too, in the same SQL (``app.engine.delivery``):
a check is created in SQL with its summary message, sent to the ``checks`` queue only after
commit (``dispatched_at``), *claimed* by a conditional UPDATE (queued, or running under a lease
that ran out, or held by a worker process known dead) before it runs, and finished by a
conditional UPDATE guarded by who holds the claim — so a redelivered or duplicate message records
one result at most. The sweeper sends again a check whose message never reached the broker or
was lost. A check whose worker died ``MAX_ATTEMPTS`` times ends ``error``.

Cancelling ends a check at once (unlike a run's, its partial work is worth nothing): its status
in SQL is the durable flag. The worker watches it while the sandbox runs — every
``WATCH_EVERY_S``, with the output so far, which it publishes for the live card — and kills the
sandbox's whole process tree when the check is no longer its own.

Nothing runs outside the sandbox: where it cannot start the check ends ``unavailable`` with the
reason and how to enable it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.checks.codeblocks import code_blocks, files_from_answers, run_command_for
from app.checks.pytest_report import REPORT_FILE, read_report
from app.checks.sandbox import SandboxLimits, SandboxResult, prepare_runtime, run_in_sandbox
from app.config import Settings
from app.db import session_scope
from app.engine import delivery
from app.engine.delivery import holder_is_gone, holder_of, is_held, lapsed, update_held
from app.models import (
    CHECK_ACTIVE,
    Check,
    CheckStatus,
    Message,
    MessageKind,
    MessageRole,
    Pipeline,
    Run,
    RunStatus,
    Task,
    User,
)
from app.models.common import utcnow
from app.services import NotFound, ServiceError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
WATCH_EVERY_S = 0.5  # how often a running check publishes its output and looks for a cancel
LEASE_MARGIN_S = 10.0  # beyond the wall-clock limit: starting the sandbox, reading its report
MAX_OUTPUT_CHARS = 4_000  # the tail of the output kept with a check
MAX_SUMMARY_FAILURES = 5
CUT_MARK = "[… output cut …]\n"
_TEST_MARK = ("def test", "import pytest", "from pytest")


def limits_from(settings: Settings) -> SandboxLimits:
    """The sandbox limits the settings ask for."""
    return SandboxLimits(
        cpu_seconds=settings.check_cpu_seconds,
        memory_mb=settings.check_memory_mb,
        processes=settings.check_processes,
        file_size_mb=settings.check_file_size_mb,
        open_files=settings.check_open_files,
        wall_seconds=settings.check_wall_seconds,
        output_bytes=settings.check_output_bytes,
    )


def check_lease(settings: Settings) -> timedelta:
    """How long a claim holds: the whole sandbox is dead by then."""
    return timedelta(seconds=settings.check_wall_seconds + LEASE_MARGIN_S)


def has_code(text: str) -> bool:
    """Whether an answer holds Python a check can run."""
    return bool(files_from_answers(text, None))


def has_tests(text: str) -> bool:
    """Whether an answer holds tests: a Python block with a test function or pytest."""
    return any(
        any(mark in block.text for mark in _TEST_MARK)
        for block in code_blocks(text)
        if block.language in ("", "python", "py", "python3", "py3")
    )


def summary(check: Check) -> str:
    """The plain text the next agent on the branch reads."""
    status = CheckStatus(check.status)
    if status in CHECK_ACTIVE:
        return "Checks: not finished yet."
    if status in (CheckStatus.unavailable, CheckStatus.cancelled):
        return f"Checks: {status.value}. {check.reason or ''}".strip()
    if check.tests_passed is None:  # a script, not tests
        head = f"Checks: the code ran, exit code {check.exit_code}."
        if status == CheckStatus.error:
            head = f"Checks: error. {check.reason or ''}".strip()
        tail = check.output[-1000:].strip()
        return f"{head}\n{tail}" if tail and status != CheckStatus.passed else head
    total = (check.tests_passed or 0) + (check.tests_failed or 0) + (check.tests_errors or 0)
    lines = [f"Checks: {check.tests_passed} of {total} passed."]
    for failure in check.failures[:MAX_SUMMARY_FAILURES]:
        lines.append(f"{failure['name']}: {failure['message']}")
    if len(check.failures) > MAX_SUMMARY_FAILURES:
        lines.append(f"… and {len(check.failures) - MAX_SUMMARY_FAILURES} more.")
    if status == CheckStatus.error and check.reason:
        lines.append(check.reason)
    return "\n".join(lines)


# --- creating and cancelling (in the caller's transaction) -----------------------------------


def _answer(session: Session, task_id: int, message_id: int, what: str) -> Message:
    message = session.get(Message, message_id)
    if message is None or message.task_id != task_id:
        raise NotFound(f"No such {what} in this task.")
    if message.role != MessageRole.assistant:
        raise ServiceError(f"The {what} must be an agent's answer.")
    if session.exec(
        select(Run.id).where(
            Run.output_message_id == message_id, col(Run.status).in_(list(_UNFINISHED))
        )
    ).first():
        raise ServiceError(f"Wait until the {what} is finished.")
    return message


_UNFINISHED = (RunStatus.queued, RunStatus.running)


def create_check(
    *,
    session: Session,
    task: Task,
    author: User | None,
    code_message_id: int,
    test_message_id: int | None = None,
    pipeline: Pipeline | None = None,
    pipeline_round: int | None = None,
    pipeline_step: int | None = None,
    tests_text: str | None = None,
) -> Check:
    """A queued check of an answer's code (against another answer's tests, or tests given as
    ``tests_text``), with its summary message under the answer that was checked. The caller
    commits, then sends it."""
    code = _answer(session, task.id, code_message_id, "code answer")  # type: ignore[arg-type]
    tests = (
        _answer(session, task.id, test_message_id, "test answer")  # type: ignore[arg-type]
        if test_message_id is not None
        else None
    )
    if tests is not None and tests.id == code.id:
        raise ServiceError("Run an answer's tests against another answer's code.")
    if tests is not None and not has_tests(tests.content):
        raise ServiceError("The test answer holds no tests (a Python block with def test_…).")
    files = files_from_answers(code.content, tests.content if tests else tests_text)
    try:
        run_command_for(files)
    except ValueError:
        raise ServiceError("This answer holds no Python code to run.") from None
    under = tests or code
    node = Message(
        task_id=task.id,  # type: ignore[arg-type]
        parent_id=under.id,
        role=MessageRole.user,
        kind=MessageKind.check,
        content="Checks: not finished yet.",
    )
    session.add(node)
    session.flush()
    check = Check(
        task_id=task.id,  # type: ignore[arg-type]
        code_message_id=code.id,  # type: ignore[arg-type]
        test_message_id=tests.id if tests else None,
        tests_text=tests_text if tests is None else None,
        message_id=node.id,
        pipeline_id=pipeline.id if pipeline else None,
        pipeline_round=pipeline_round,
        pipeline_step=pipeline_step,
        created_by_id=author.id if author else None,
    )
    session.add(check)
    session.flush()
    delivery.record(session, task_id=check.task_id, actor=author, verb="queued",
                    subject_type="check", subject_id=check.id)  # fmt: skip
    return check


def cancel_check(*, session: Session, check: Check, actor: User) -> Check:
    """End a queued or running check cancelled now. A running one's worker sees it within
    ``WATCH_EVERY_S``, kills its sandbox and discards its result."""
    ended = {"status": CheckStatus.cancelled, "reason": "Cancelled.", "finished_at": utcnow(),
             "lease_until": None}  # fmt: skip
    delivery.cancel(session, Check, check.id, noun="check", queued=ended, running=ended)  # type: ignore[arg-type]
    check = session.get(Check, check.id, populate_existing=True) or check
    _write_summary(session, check)
    delivery.record(session, task_id=check.task_id, actor=actor, verb="cancelled",
                    subject_type="check", subject_id=check.id)  # fmt: skip
    return check


def code_answers(*, session: Session, task_id: int, tests: Message) -> list[Message]:
    """The finished answers of the task that hold code a test answer can be run against: every
    one but the tests themselves, oldest first."""
    answers = session.exec(
        select(Message)
        .join(Run, col(Run.output_message_id) == col(Message.id))
        .where(
            Message.task_id == task_id,
            Message.role == MessageRole.assistant,
            Message.id != tests.id,
            Run.status == RunStatus.succeeded,
        )
        .order_by(col(Message.id))
    ).all()
    return [answer for answer in answers if has_code(answer.content)]


def handed_answer(*, session: Session, message: Message) -> Message | None:
    """The answer this one was handed (the answer above its instruction), if it was."""
    instruction = session.get(Message, message.parent_id) if message.parent_id else None
    handed = (
        session.get(Message, instruction.parent_id)
        if instruction is not None and instruction.parent_id
        else None
    )
    return handed if handed is not None and handed.role == MessageRole.assistant else None


def auto_check(*, run_id: int) -> list[int]:
    """After a hand-off's answer: when it holds tests, check them against the answer it was
    handed. The ids of the checks to send (none, or one; idempotent under redelivery)."""
    with session_scope() as session:
        run = session.get(Run, run_id)
        if run is None or run.status != RunStatus.succeeded or run.output_message_id is None:
            return []
        answer = session.get(Message, run.output_message_id)
        handed = handed_answer(session=session, message=answer) if answer else None
        if answer is None or handed is None:
            return []
        if not has_tests(answer.content) or not has_code(handed.content):
            return []
        if session.exec(select(Check.id).where(Check.test_message_id == answer.id)).first():
            return []
        task = session.get(Task, run.task_id)
        assert task is not None
        pipeline = session.get(Pipeline, run.pipeline_id) if run.pipeline_id else None
        checked = pipeline if pipeline is not None and pipeline.run_checks else None
        check = create_check(
            session=session, task=task, author=None, code_message_id=handed.id,  # type: ignore[arg-type]
            test_message_id=answer.id, pipeline=checked,
            pipeline_round=run.pipeline_round if checked else None,
            pipeline_step=run.pipeline_step if checked else None,
        )  # fmt: skip
        return [check.id] if check.id is not None else []


# --- carrying one out on a worker --------------------------------------------------------------


def claim(
    *, session: Session, check_id: int, worker: str, lease: timedelta, dead: str | None = None
) -> int | None:
    """Take the check for this worker (running, one more attempt); the attempts before this
    one, or None when it is not ours to run. ``dead`` names a holder known to be dead
    (``holder_is_gone``), whose lease need not be waited for."""
    now = utcnow()
    attempts = session.execute(
        sa.update(Check)
        .where(
            col(Check.id) == check_id,
            sa.or_(
                col(Check.status) == CheckStatus.queued,
                sa.and_(col(Check.status) == CheckStatus.running, lapsed(Check, now)),
                sa.and_(
                    col(Check.status) == CheckStatus.running,
                    col(Check.claimed_by) == dead if dead is not None else sa.false(),
                ),
            ),
        )
        .values(
            status=CheckStatus.running,
            claimed_by=worker,
            lease_until=now + lease,
            attempts=Check.attempts + 1,  # type: ignore[operator]
            started_at=sa.func.coalesce(Check.started_at, now),
        )
        .returning(col(Check.attempts))
    ).scalar_one_or_none()
    return int(attempts) - 1 if attempts is not None else None


@dataclass(frozen=True)
class Verdict:
    """What a check found, ready to be written."""

    status: CheckStatus
    exit_code: int | None = None
    tests_passed: int | None = None
    tests_failed: int | None = None
    tests_errors: int | None = None
    failures: tuple[dict[str, str], ...] = ()
    output: str = ""
    output_truncated: bool = False
    duration_s: float | None = None
    reason: str | None = None


def output_tail(output: str, truncated: bool = False) -> tuple[str, bool]:
    """The tail of a check's output that is kept, and whether some was cut."""
    cut = truncated or len(output) > MAX_OUTPUT_CHARS
    tail = output[-MAX_OUTPUT_CHARS:]
    return (CUT_MARK + tail if cut else tail), cut


def judge(result: SandboxResult, *, tests: bool) -> Verdict:
    """Turn what the sandbox saw into a verdict."""
    output = result.stdout + (("\n" + result.stderr) if result.stderr else "")
    tail, cut = output_tail(output, result.truncated)
    common = {
        "exit_code": result.exit_code, "output": tail, "output_truncated": cut,
        "duration_s": round(result.duration_s, 3),
    }  # fmt: skip
    if result.status == "unavailable":
        return Verdict(CheckStatus.unavailable, reason=result.reason, **common)  # type: ignore[arg-type]
    if result.status == "cancelled":
        return Verdict(CheckStatus.cancelled, reason=result.reason, **common)  # type: ignore[arg-type]
    if result.status in ("timeout", "killed"):
        return Verdict(CheckStatus.error, reason=result.reason, **common)  # type: ignore[arg-type]
    if not tests:
        status = CheckStatus.passed if result.status == "ok" else CheckStatus.failed
        return Verdict(status, **common)  # type: ignore[arg-type]
    report = read_report(junit=result.files.get(REPORT_FILE), output=result.stdout)
    if report is None:
        reason = "pytest ran no tests (a syntax error, or no test functions)."
        return Verdict(CheckStatus.error, reason=reason, **common)  # type: ignore[arg-type]
    failed = report.failed + report.errors
    status = CheckStatus.passed if failed == 0 and report.passed > 0 else CheckStatus.failed
    return Verdict(
        status,
        tests_passed=report.passed,
        tests_failed=report.failed,
        tests_errors=report.errors,
        failures=tuple({"name": f.name, "message": f.message} for f in report.failures),
        **common,  # type: ignore[arg-type]
    )


def finish(*, session: Session, check_id: int, worker: str, verdict: Verdict) -> bool:
    """Write the verdict, only while this worker holds the claim. Idempotent."""
    written = update_held(
        session, Check, check_id, worker=worker, statuses=(CheckStatus.running,),
        status=verdict.status,
        exit_code=verdict.exit_code,
        tests_passed=verdict.tests_passed,
        tests_failed=verdict.tests_failed,
        tests_errors=verdict.tests_errors,
        failures=list(verdict.failures),
        output=verdict.output,
        output_truncated=verdict.output_truncated,
        duration_s=verdict.duration_s,
        reason=verdict.reason,
        finished_at=utcnow(),
        lease_until=None,
    )  # fmt: skip
    if not written:
        return False
    check = session.get(Check, check_id)
    assert check is not None
    session.refresh(check)
    _write_summary(session, check)
    delivery.record(session, task_id=check.task_id, actor=None, verb=str(verdict.status),
                    subject_type="check", subject_id=check_id)  # fmt: skip
    return True


def end_check(*, check_id: int, status: CheckStatus, reason: str) -> None:
    """End an unfinished check with a reason, whoever holds it (poison, a bug in the worker)."""
    with session_scope() as session:
        check = session.get(Check, check_id)
        if check is None or check.status not in CHECK_ACTIVE:
            return
        check.status, check.reason = status, reason
        check.finished_at, check.lease_until = utcnow(), None
        session.add(check)
        _write_summary(session, check)


def _write_summary(session: Session, check: Check) -> None:
    if check.message_id is not None:
        session.execute(
            sa.update(Message)
            .where(col(Message.id) == check.message_id)
            .values(content=summary(check))
        )


class Watch:
    """While the sandbox runs: publish the output so far (the check's card shows it live) and
    say stop once the check is no longer this worker's — cancelled, or taken over."""

    def __init__(self, check_id: int, worker: str) -> None:
        self.check_id = check_id
        self.worker = worker
        self.published = ""

    def __call__(self, output: str) -> bool:
        tail, cut = output_tail(output)
        running = (CheckStatus.running,)
        try:
            with session_scope() as session:
                if tail != self.published:
                    ours = update_held(
                        session, Check, self.check_id, worker=self.worker, statuses=running,
                        output=tail, output_truncated=cut,
                    )  # fmt: skip
                    self.published = tail
                else:
                    ours = is_held(session, Check, self.check_id, worker=self.worker,
                                   statuses=running)  # fmt: skip
        except sa.exc.SQLAlchemyError:
            log.warning("check %s: could not look at its state; it goes on", self.check_id)
            return False
        if not ours:
            log.info("check %s: cancelled (or taken over); stopping its sandbox", self.check_id)
        return not ours


def _claim(check_id: int, worker: str, settings: Settings) -> int | None:
    """This delivery's claim: the attempts before it, or None when the check is not ours."""
    lease = check_lease(settings)
    with session_scope() as session:
        before = claim(session=session, check_id=check_id, worker=worker, lease=lease)
        if before is not None:
            return before
        # A redelivery after its worker process died (reject on worker lost): take it at once.
        holder = holder_of(session, Check, check_id)
        if holder != worker and holder_is_gone(holder):
            log.warning("check %s: its worker %s died; taking it over", check_id, holder)
            return claim(session=session, check_id=check_id, worker=worker, lease=lease,
                         dead=holder)  # fmt: skip
    return None


def execute_check(*, check_id: int, worker: str, settings: Settings) -> bool:
    """Carry out one delivery of a check; True when this delivery recorded its result."""
    before = _claim(check_id, worker, settings)
    if before is None:
        log.info("check %s: not claimable (finished, cancelled, or held)", check_id)
        return False
    if before >= MAX_ATTEMPTS:
        end_check(
            check_id=check_id, status=CheckStatus.error,
            reason=f"Its worker died {MAX_ATTEMPTS} times while running it; giving up.",
        )  # fmt: skip
        return False
    with session_scope() as session:
        check = session.get(Check, check_id)
        assert check is not None
        code = session.get(Message, check.code_message_id)
        tests = session.get(Message, check.test_message_id) if check.test_message_id else None
        code_text = code.content if code else ""
        test_text = tests.content if tests else check.tests_text
    files = files_from_answers(code_text, test_text)
    try:
        command = run_command_for(files)
    except ValueError as exc:
        verdict = Verdict(CheckStatus.error, reason=str(exc))
    else:
        runtime = prepare_runtime(settings.data_path / "check-runtime")
        result = run_in_sandbox(
            files=files, command=command, limits=limits_from(settings), runtime=runtime,
            bwrap=settings.bwrap, collect=[REPORT_FILE], watch=Watch(check_id, worker),
            watch_every=WATCH_EVERY_S,
        )  # fmt: skip
        verdict = judge(result, tests=command[1:3] == ["-m", "pytest"])
    with session_scope() as session:
        written = finish(session=session, check_id=check_id, worker=worker, verdict=verdict)
    if not written:
        log.warning("check %s: lost its claim (cancelled?) before finishing; discarded", check_id)
    return written


def sweep_checks(*, settings: Settings) -> list[int]:
    """Checks a dead worker or a lost message left behind: the ids to send again."""
    now = utcnow()
    with session_scope() as session:
        stale = session.exec(
            select(Check.id, Check.status, Check.attempts).where(
                delivery.needs_sending(Check, now, settings.broker_visibility_timeout)
            )
        ).all()
    resend: list[int] = []
    for check_id, status, attempts in stale:
        assert check_id is not None
        if status == CheckStatus.running and attempts >= MAX_ATTEMPTS:
            end_check(
                check_id=check_id, status=CheckStatus.error,
                reason=f"Its worker died {MAX_ATTEMPTS} times while running it; giving up.",
            )  # fmt: skip
        else:
            resend.append(check_id)
    return resend
