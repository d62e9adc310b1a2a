"""Answers into files, the command that runs them, and pytest's report read back."""

from __future__ import annotations

import pytest

from app.checks.codeblocks import (
    MAX_ANSWER_CHARS,
    MAX_FILES,
    code_blocks,
    files_from_answers,
    run_command_for,
)
from app.checks.pytest_report import (
    MAX_FAILURES,
    MAX_REPORT_BYTES,
    FailedTest,
    parse_junit,
    parse_summary,
    read_report,
)

# Answers into files -----------------------------------------------------------------------------


def test_code_and_test_answers_become_solution_and_tests() -> None:
    code = "Here you go:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nDone."
    tests = "```py\nfrom solution import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n```"
    assert files_from_answers(code, tests) == {
        "solution.py": "def add(a, b):\n    return a + b\n",
        "test_solution.py": (
            "from solution import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
        ),
    }


def test_blocks_of_one_answer_are_joined() -> None:
    code = "```python\nimport math\n```\nthen\n```python\ndef area(r):\n    return math.pi * r\n```"
    assert files_from_answers(code, None) == {
        "solution.py": "import math\n\ndef area(r):\n    return math.pi * r\n"
    }


@pytest.mark.parametrize(
    "first_line",
    ["# file: helpers.py", "# helpers.py", "# File: helpers.py", "#filename: helpers.py"],
)
def test_a_first_line_comment_names_the_file(first_line: str) -> None:
    code = f"```python\n{first_line}\nVALUE = 1\n```\n```python\nfrom helpers import VALUE\n```"
    assert files_from_answers(code, None) == {
        "helpers.py": f"{first_line}\nVALUE = 1\n",
        "solution.py": "from helpers import VALUE\n",
    }


def test_the_info_string_names_the_file() -> None:
    assert files_from_answers("```python utils.py\nX = 1\n```", None) == {"utils.py": "X = 1\n"}
    assert files_from_answers("```python:pkg/mod.py\nX = 1\n```", None) == {"pkg/mod.py": "X = 1\n"}


def test_other_languages_and_shown_output_are_left_out() -> None:
    code = (
        "```bash\npip install requests\n```\n```python\nprint(6 * 7)\n```\n"
        "Output:\n```\nThe answer is 42!\n```\n```\n42\n```\n```text\n42\n```\n```json\n{}\n```"
    )
    assert files_from_answers(code, None) == {"solution.py": "print(6 * 7)\n"}


def test_a_bare_block_of_python_is_kept() -> None:
    assert files_from_answers("```\nx = 1\n```", None) == {"solution.py": "x = 1\n"}


def test_an_answer_without_blocks_counts_when_it_is_python() -> None:
    assert files_from_answers("def f():\n    return 1\n", None) == {
        "solution.py": "def f():\n    return 1\n"
    }
    assert files_from_answers("I would write a loop that adds them.", None) == {}
    assert files_from_answers("Sure", None) == {}
    assert files_from_answers("", "") == {}


def test_names_that_climb_out_are_cut_to_their_last_part() -> None:
    code = (
        "```python\n# file: ../../etc/evil.py\nA = 1\n```\n"
        "```python\n# file: /tmp/abs.py\nB = 2\n```\n"
        "```python\n# file: ./ok.py\nC = 3\n```"
    )
    assert files_from_answers(code, None) == {
        "evil.py": "# file: ../../etc/evil.py\nA = 1\n",
        "abs.py": "# file: /tmp/abs.py\nB = 2\n",
        "ok.py": "# file: ./ok.py\nC = 3\n",
    }


def test_names_with_no_safe_part_fall_back_to_the_default() -> None:
    code = "```python\n# file: ../.py\nA = 1\n```"
    assert files_from_answers(code, None) == {"solution.py": "# file: ../.py\nA = 1\n"}


def test_the_test_answer_cannot_replace_the_code_under_test() -> None:
    code = "```python\ndef add(a, b):\n    return a + b\n```"
    tests = (
        "```python\n# solution.py\ndef add(a, b):\n    return 3\n```\n"
        "```python\nfrom solution import add\n\ndef test_add():\n    assert add(1, 2) == 3\n```"
    )
    files = files_from_answers(code, tests)
    assert files["solution.py"] == "def add(a, b):\n    return a + b\n"
    assert set(files) == {"solution.py", "test_solution.py"}


def test_odd_fences() -> None:
    markdown = (
        "~~~python\na = 1\n~~~\n"
        "````python\nb = '```'\n````\n"
        "   ```python\n   c = 3\n   ```\n"
        "```python\nunclosed = True\n"
    )
    assert [block.text for block in code_blocks(markdown)] == [
        "a = 1",
        "b = '```'",
        "c = 3",
        "unclosed = True",
    ]


def test_a_fence_with_backticks_in_its_info_is_not_a_fence() -> None:
    # Only the last line is a fence, opening an empty block that runs to the end.
    assert [block.text for block in code_blocks("```py`thon\nx = 1\n```")] == [""]
    assert files_from_answers("```py`thon\nx = 1\n```", None) == {}


def test_huge_answers_are_capped() -> None:
    huge = "```python\n" + "x = 1\n" * 1_000_000 + "```"
    files = files_from_answers(huge, huge)
    assert sum(len(text) for text in files.values()) <= 2 * MAX_ANSWER_CHARS + 2
    many = "".join(f"```python\n# file: m{i}.py\nX = {i}\n```\n" for i in range(100))
    assert len(files_from_answers(many, None)) == MAX_FILES


def test_deeply_nested_text_is_not_python() -> None:
    assert files_from_answers("(" * 100_000, None) == {}


def test_a_file_and_a_folder_of_the_same_name_keep_the_folder() -> None:
    code = "```python\n# file: pkg\nX = 1\n```\n```python\n# file: pkg/mod.py\nY = 2\n```"
    assert set(files_from_answers(code, None)) <= {"pkg/mod.py", "solution.py"}


# The command ------------------------------------------------------------------------------------


def test_tests_run_under_pytest_with_a_junit_report() -> None:
    files = {"solution.py": "", "test_solution.py": "", "b_test.py": "", "helper.py": ""}
    assert run_command_for(files) == [
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--color=no",
        "--junitxml=report.xml",
        "b_test.py",
        "test_solution.py",
    ]


def test_code_without_tests_runs_as_a_script() -> None:
    assert run_command_for({"solution.py": "", "helper.py": ""}) == ["python", "solution.py"]
    assert run_command_for({"main.py": ""}) == ["python", "main.py"]
    with pytest.raises(ValueError, match="no Python code"):
        run_command_for({})


# pytest's report --------------------------------------------------------------------------------

JUNIT = b"""<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">
<testsuite name="pytest" errors="1" failures="2" skipped="1" tests="5">
<testcase classname="test_solution" name="test_ok" />
<testcase classname="test_solution" name="test_bad"><failure message="assert -1 == 5">
E   assert -1 == 5</failure></testcase>
<testcase classname="test_solution" name="test_skip"><skipped message="later" /></testcase>
<testcase classname="test_solution" name="test_err"><error message="failed on setup">
E       fixture 'tmp_path_x' not found</error></testcase>
<testcase classname="test_solution.TestK" name="test_m"><failure message="ValueError: boom" />
</testcase></testsuite></testsuites>"""


def test_junit_counts_and_failures() -> None:
    report = parse_junit(JUNIT)
    assert report is not None
    assert (report.passed, report.failed, report.errors, report.skipped) == (1, 2, 1, 1)
    assert report.total == 5
    assert report.failures == (
        FailedTest("test_solution.test_bad", "assert -1 == 5"),
        FailedTest("test_solution.test_err", "failed on setup: fixture 'tmp_path_x' not found"),
        FailedTest("test_solution.TestK.test_m", "ValueError: boom"),
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not xml at all",
        b"<testsuites><testcase name='x'>",  # cut short
        b"<html><body>hi</body></html>",
        b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><testsuites>&b;</testsuites>',
        b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><testsuites/>',
        b"<testsuites>" + b" " * MAX_REPORT_BYTES + b"</testsuites>",
    ],
)
def test_hostile_or_broken_junit_is_ignored(data: bytes) -> None:
    assert parse_junit(data) is None


def test_failures_and_messages_are_capped() -> None:
    cases = b"".join(
        b'<testcase name="t%d"><failure message="%s" /></testcase>' % (i, b"m" * 10_000)
        for i in range(100)
    )
    report = parse_junit(b"<testsuite>" + cases + b"</testsuite>")
    assert report is not None
    assert report.failed == 100
    assert len(report.failures) == MAX_FAILURES
    assert all(len(failure.message) <= 500 for failure in report.failures)


def test_summary_lines_stand_in_for_a_missing_report() -> None:
    output = (
        "F.s\n=========================== short test summary info ============================\n"
        "FAILED test_solution.py::test_bad - assert 3 == 4\n"
        "ERROR test_solution.py::test_err\n"
        "1 failed, 1 passed, 1 skipped, 1 error in 0.04s\n"
    )
    report = read_report(junit=None, output=output)
    assert report is not None
    assert report.source == "summary"
    assert (report.passed, report.failed, report.errors, report.skipped) == (1, 1, 1, 1)
    assert report.failures == (
        FailedTest("test_solution.py::test_bad", "assert 3 == 4"),
        FailedTest("test_solution.py::test_err", ""),
    )


def test_a_decorated_summary_line_is_read() -> None:
    report = parse_summary("============ 3 passed, 1 warning in 0.12s (0:00:00) ============")
    assert report is not None
    assert (report.passed, report.failed) == (3, 0)


def test_output_without_a_summary_has_no_report() -> None:
    assert read_report(junit=b"garbage", output="Traceback ...\nSyntaxError: oops") is None
    assert parse_summary("no tests ran in 0.01s") is None
