"""The loop guard on hostile text: loops it must stop, and repetitive text it must let be."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from app.engine.loop_guard import LoopGuard


def feed(pieces: Iterable[str]) -> LoopGuard:
    guard = LoopGuard()
    for piece in pieces:
        if guard.feed(piece):
            break
    return guard


def tokens(text: str, size: int = 3) -> list[str]:
    """``text`` cut into token-sized pieces, so loops complete mid-piece."""
    return [text[i : i + size] for i in range(0, len(text), size)]


# --- loops ---------------------------------------------------------------------------------


def test_a_repeated_sentence_is_stopped_keeping_one_copy() -> None:
    intro = "Here is the answer.\n"
    guard = feed(tokens(intro + "The capital of France is Paris. " * 10))

    assert guard.looping
    assert guard.kept == intro + "The capital of France is Paris."


def test_a_cycle_of_several_lines_is_stopped() -> None:
    cycle = "Step: read the input\nStep: check it\n"
    guard = feed(tokens("Plan:\n" + cycle * 6, size=5))

    assert guard.looping
    assert guard.kept == "Plan:\n" + cycle.rstrip()


def test_a_short_line_repeated_between_blank_lines_is_stopped() -> None:
    guard = feed(tokens("Paris.\n\nParis.\n\nParis.\n\nParis.\n\n", size=2))

    assert guard.looping
    assert guard.kept == "Paris."


def test_a_short_span_repeated_for_long_is_stopped() -> None:
    guard = feed(tokens("Well, " + "ha " * 100))

    assert guard.looping
    assert guard.kept == "Well, ha"


def test_the_loop_is_found_as_soon_as_its_third_copy_is_complete() -> None:
    unit = "I am not sure what you mean. "
    text = "Sorry!\n" + unit * 3
    guard = LoopGuard()
    results = [guard.feed(piece) for piece in tokens(text, size=1)]

    assert results[-1] is True
    assert results.count(True) == 1  # only at the very last character
    assert guard.kept == "Sorry!\n" + unit.rstrip()


def test_once_looping_it_stays_looping_and_ignores_more_text() -> None:
    guard = feed(["x = compute_the_value(1)\n" * 3])
    assert guard.looping
    kept = guard.kept

    assert guard.feed("something new") is True
    assert guard.kept == kept == "x = compute_the_value(1)"


# --- text that repeats but is not a loop ---------------------------------------------------

CODE = """\
def walk(tree):
    for node in tree:
        if node:
            if node.children:
                for child in node.children:
                    if child:
                        yield child
                    }
                }
            }
        }


    return None




end
"""

NESTED_ENDS = """\
def outer
  def inner
    if x
      1
    end
  end
end
"""

C_CODE = """\
int main(void) {
    if (a) {
        if (b) {
            if (c) {
                x();
            }
        }
    }
    return 0;
}
"""

TABLE = """\
| name  | x | y |
|-------|---|---|
| a     | 0 | 0 |
| b     | 0 | 1 |
| c     | 1 | 0 |
| d     | 1 | 1 |
"""

LIST = """\
- check the input
- check the output
- check the edge cases
- check the input again
1. one
2. two
3. three
"""

RULES = "Title\n" + "=" * 60 + "\n\n" + "-" * 60 + "\n" + "-" * 60 + "\ntext\n"

TESTS = """\
def test_add():
    assert add(1, 2) == 3
    assert add(2, 2) == 4
    assert add(0, 0) == 0

def test_sub():
    assert sub(1, 2) == -1
"""

INDENTED = "def f():\n" + " " * 400 + "return 1\n"


@pytest.mark.parametrize(
    "text",
    [CODE, NESTED_ENDS, C_CODE, TABLE, LIST, RULES, TESTS, INDENTED, "\n" * 300, "}\n" * 50],
    ids=[
        "code",
        "nested-ends",
        "c",
        "table",
        "list",
        "rules",
        "tests",
        "indent",
        "blank",
        "braces",
    ],
)
@pytest.mark.parametrize("size", [1, 4])
def test_no_false_alarm(text: str, size: int) -> None:
    guard = feed(tokens(text, size))

    assert not guard.looping
    assert guard.kept == text
