"""Read what pytest said about a check: counts and the failed tests with their messages.

The JUnit XML report is written by the code under test, so it is hostile input: it is read only
when small, never with a DOCTYPE (no entities to expand), and anything malformed is ignored.
Without a usable report, pytest's own summary lines in the output are read instead.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "REPORT_FILE",
    "FailedTest",
    "PytestReport",
    "parse_junit",
    "parse_summary",
    "read_report",
]

REPORT_FILE = "report.xml"
MAX_REPORT_BYTES = 1024 * 1024
MAX_FAILURES = 20
MAX_NAME_CHARS = 200
MAX_MESSAGE_CHARS = 500

_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)\b")
_SUMMARY_LINE = re.compile(r"^=*\s*(?:\d+ \w+(?:, )?)+ in [\d.]+s(?: \([^)]*\))?\s*=*$")
_FAILED_LINE = re.compile(r"^(?P<kind>FAILED|ERROR) (?P<name>\S+)(?: - (?P<message>.*))?$")


@dataclass(frozen=True)
class FailedTest:
    """One test that failed or errored, and what pytest said about it."""

    name: str
    message: str


@dataclass(frozen=True)
class PytestReport:
    """How many tests passed, failed, errored and were skipped, and which ones failed."""

    passed: int
    failed: int
    errors: int
    skipped: int
    failures: tuple[FailedTest, ...]
    source: Literal["junit", "summary"]

    @property
    def total(self) -> int:
        """Every test pytest reported on."""
        return self.passed + self.failed + self.errors + self.skipped


def read_report(*, junit: bytes | None, output: str) -> PytestReport | None:
    """The report from the JUnit XML if it is usable, else from pytest's output, else None."""
    report = parse_junit(junit) if junit is not None else None
    return report or parse_summary(output)


def parse_junit(data: bytes) -> PytestReport | None:
    """Counts and failures from a JUnit XML report; None if it is too big or not one."""
    if len(data) > MAX_REPORT_BYTES or re.search(rb"<!(DOCTYPE|ENTITY)", data, re.IGNORECASE):
        return None
    try:
        root = ET.fromstring(data)
    except (ET.ParseError, ValueError, RecursionError):
        return None
    if root.tag not in ("testsuites", "testsuite"):
        return None
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures: list[FailedTest] = []
    for case in root.iter("testcase"):
        outcome, element = _outcome(case)
        counts[outcome] += 1
        if element is not None and outcome in ("failed", "errors") and len(failures) < MAX_FAILURES:
            failures.append(FailedTest(name=_case_name(case), message=_message(element)))
    return PytestReport(**counts, failures=tuple(failures), source="junit")


def parse_summary(output: str) -> PytestReport | None:
    """Counts and failures from pytest's terminal output; None if it has no summary line."""
    lines = output.splitlines()[-200:]
    summary = next((line for line in reversed(lines) if _SUMMARY_LINE.match(line.strip())), None)
    if summary is None:
        return None
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    for number, word in _COUNT.findall(summary):
        key = {"error": "errors", "xfailed": "skipped", "xpassed": "passed"}.get(word, word)
        counts[key] += int(number)
    failures = [
        FailedTest(name=match["name"][:MAX_NAME_CHARS], message=_clip(match["message"] or ""))
        for match in map(_FAILED_LINE.match, lines)
        if match is not None
    ]
    return PytestReport(**counts, failures=tuple(failures[:MAX_FAILURES]), source="summary")


def _outcome(case: ET.Element) -> tuple[str, ET.Element | None]:
    """How one test case ended, and the element that says why."""
    for tag, outcome in (("failure", "failed"), ("error", "errors"), ("skipped", "skipped")):
        element = case.find(tag)
        if element is not None:
            return outcome, element
    return "passed", None


def _case_name(case: ET.Element) -> str:
    """``module.Class.test`` as pytest's JUnit report names it."""
    classname, name = case.get("classname", ""), case.get("name", "")
    return (f"{classname}.{name}" if classname and name else classname or name)[:MAX_NAME_CHARS]


def _message(element: ET.Element) -> str:
    """The message of a failure or error, with the last ``E`` line when it adds something."""
    message = (element.get("message") or "").strip()
    explained = [line[1:].strip() for line in (element.text or "").splitlines() if line[:2] == "E "]
    last = explained[-1] if explained else ""
    if last and last not in message:
        message = f"{message}: {last}" if message else last
    return _clip(message)


def _clip(text: str) -> str:
    """``text`` cut to MAX_MESSAGE_CHARS."""
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"
