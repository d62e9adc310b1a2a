"""Turn agents' Markdown answers into the files of a check, and choose the command that runs them.

A fenced block (```` ``` ````, ```` ```python ````, ```` ```py ````, ``~~~``) holds code; other
languages (``bash``, ``text``, ``json`` …) are left out. A block whose first line is a comment
naming a file (``# file: utils.py``, ``# utils.py``), or whose info string names one
(```` ```python utils.py ````), becomes that file; the other blocks of the code answer are joined
into ``solution.py`` and those of the test answer into ``test_solution.py``. An answer with no
block at all counts as one block when the whole of it parses as Python.

Answers are model output: names that are not plain relative paths are cut to their last part or
dropped, a test answer cannot replace a file of the code answer, and sizes are capped.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from app.checks.pytest_report import REPORT_FILE
from app.checks.sandbox import BadFileName, check_file_name

__all__ = ["SOLUTION_FILE", "TEST_FILE", "code_blocks", "files_from_answers", "run_command_for"]

SOLUTION_FILE = "solution.py"
TEST_FILE = "test_solution.py"
MAX_ANSWER_CHARS = 200_000
MAX_FILES = 20
MAX_FILE_CHARS = 200_000

_PYTHON_LANGUAGES = {"", "python", "py", "python3", "py3"}
_OPEN_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_NAME_COMMENT = re.compile(
    r"^\s*#\s*(?:file(?:name)?\s*:\s*)?(?P<name>[\w./-]+\.py)\s*$", re.IGNORECASE
)


@dataclass(frozen=True)
class CodeBlock:
    """One fenced block: its language (lower case, may be empty), file name hint, and text."""

    language: str
    name: str | None
    text: str


def code_blocks(markdown: str) -> list[CodeBlock]:
    """Every fenced code block of ``markdown``, as CommonMark reads fences."""
    lines = markdown[:MAX_ANSWER_CHARS].splitlines()
    blocks: list[CodeBlock] = []
    index = 0
    while index < len(lines):
        opening = _OPEN_FENCE.match(lines[index])
        index += 1
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            continue
        body: list[str] = []
        while index < len(lines) and not _closes(lines[index], opening["fence"]):
            body.append(_dedent(lines[index], len(opening["indent"])))
            index += 1
        index += 1  # the closing fence; an unclosed block runs to the end, as in CommonMark
        language, name = _read_info(opening["info"])
        blocks.append(CodeBlock(language=language, name=name, text="\n".join(body)))
    return blocks


def files_from_answers(code_answer: str, test_answer: str | None) -> dict[str, str]:
    """The files of a check: the code answer's, then the test answer's that do not clash."""
    files = _files_from(code_answer, default=SOLUTION_FILE)
    if test_answer is not None:
        for name, text in _files_from(test_answer, default=TEST_FILE).items():
            if name not in files and len(files) < MAX_FILES:
                files[name] = text
    return _without_folder_clashes(files)


def run_command_for(files: dict[str, str]) -> list[str]:
    """pytest over the test files when there are any, else ``python solution.py``."""
    tests = sorted(name for name in files if _is_test_file(name))
    if tests:
        return [
            "python",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--color=no",
            f"--junitxml={REPORT_FILE}",
            *tests,
        ]
    if SOLUTION_FILE in files:
        return ["python", SOLUTION_FILE]
    scripts = sorted(name for name in files if name.endswith(".py"))
    if not scripts:
        raise ValueError("The answers hold no Python code to run.")
    return ["python", scripts[0]]


def _files_from(answer: str, *, default: str) -> dict[str, str]:
    """One answer's Python blocks as files; unnamed blocks joined into ``default``."""
    blocks = [block for block in code_blocks(answer) if _holds_python(block)]
    if not blocks and _is_python(answer[:MAX_ANSWER_CHARS]):
        blocks = [CodeBlock(language="python", name=None, text=answer[:MAX_ANSWER_CHARS])]
    files: dict[str, str] = {}
    for block in blocks:
        if not block.text.strip():
            continue
        name = _safe_name(block.name or _named_in_first_line(block.text)) or default
        if name not in files and len(files) >= MAX_FILES:
            continue
        joined = f"{files[name]}\n\n{block.text}" if name in files else block.text
        files[name] = joined[:MAX_FILE_CHARS]
    return {name: text if text.endswith("\n") else text + "\n" for name, text in files.items()}


def _holds_python(block: CodeBlock) -> bool:
    """Python blocks; one with no language only if it names a file or parses (not an output)."""
    if block.language not in _PYTHON_LANGUAGES:
        return False
    named = block.name or _named_in_first_line(block.text)
    return bool(block.language or named) or _is_python(block.text)


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened by ``fence``."""
    stripped = line.strip()
    indent = len(line) - len(line.lstrip(" "))
    return indent <= 3 and len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _dedent(line: str, width: int) -> str:
    """``line`` without up to ``width`` leading spaces (the opening fence's indent)."""
    spaces = len(line) - len(line.lstrip(" "))
    return line[min(spaces, width) :]


def _read_info(info: str) -> tuple[str, str | None]:
    """The language and file name hint in a fence's info string (```` ```python:app.py ````)."""
    words = info.strip().replace(":", " ").split()
    language = words[0].lower().lstrip("{.").rstrip("}") if words else ""
    name = next((word for word in words[1:] if word.endswith(".py")), None)
    return language, name


def _named_in_first_line(text: str) -> str | None:
    """The file name a block's first line gives in a comment, if it gives one."""
    first = text.lstrip("\n").split("\n", 1)[0]
    match = _NAME_COMMENT.match(first)
    return match["name"] if match else None


def _safe_name(name: str | None) -> str | None:
    """``name`` if it is a plain relative path, else its last part if that is one, else None."""
    if not name:
        return None
    for candidate in (name.removeprefix("./"), PurePosixPath(name).name):
        try:
            return check_file_name(candidate)
        except BadFileName:
            continue
    return None


def _is_python(text: str) -> bool:
    """Whether ``text`` parses as Python that does something (not a lone word or number)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(
        not isinstance(statement, ast.Expr) or isinstance(statement.value, ast.Call)
        for statement in tree.body
    )


def _is_test_file(name: str) -> bool:
    """Whether pytest collects ``name`` by its default rules."""
    base = PurePosixPath(name).name
    return base.endswith(".py") and (base.startswith("test_") or base.endswith("_test.py"))


def _without_folder_clashes(files: dict[str, str]) -> dict[str, str]:
    """Drop files whose name another file uses as a folder (``a.py`` and ``a.py/b.py``)."""
    names = set(files)
    return {
        name: text
        for name, text in files.items()
        if not any(other.startswith(name + "/") for other in names)
    }
