"""Noticing a model that repeats itself, from the text it streams.

Small models, base models above all, fall into loops: the same line, or the same few lines,
again and again until ``max_tokens``. :class:`LoopGuard` is fed the streamed text and says when
the tail has become a loop:

- a **span** of at least ``MIN_SPAN`` characters repeated ``REPEATS`` times back to back at the
  tail (a multi-line cycle, or a long line);
- a shorter span (``"ha "``, ``"!"``) repeated until the run covers ``MIN_SHORT_RUN``
  characters — never plain whitespace (indentation, blank lines);
- the same **line** ``REPEATS`` times in a row (blank lines between do not count), when it
  has at least two letters or digits — so code's repeated ``}``, ``)`` or blank lines, and a
  table's rule lines, never count, and ``end`` lines at different depths differ by their
  indentation.

Periodicity does not depend on where a token boundary falls, so checking after every piece of
text finds the loop as soon as its third repetition is complete. :attr:`LoopGuard.kept` is the
text before the loop plus one copy of the repeated part.
"""

from __future__ import annotations

MIN_SPAN = 20
REPEATS = 3
MIN_SHORT_RUN = 200
MAX_PERIOD = 600  # longer cycles are rare, and checking them costs more than they save


class LoopGuard:
    """Feed it streamed text; :meth:`feed` turns True once the text has started looping."""

    def __init__(self) -> None:
        self._text = ""
        self._loop_start: int | None = None

    @property
    def looping(self) -> bool:
        return self._loop_start is not None

    @property
    def kept(self) -> str:
        """The text so far, cut after the first copy of the loop once one is found."""
        if self._loop_start is None:
            return self._text
        return self._text[: self._loop_start].rstrip()

    def feed(self, text: str) -> bool:
        """Add streamed ``text``; True when the tail is now a loop."""
        if self._loop_start is not None:
            return True
        self._text += text
        self._loop_start = _span_loop(self._text)
        if self._loop_start is None:
            self._loop_start = _line_loop(self._text)
        return self._loop_start is not None


def _span_loop(text: str) -> int | None:
    """Where one copy of a repeating tail ends, or None."""
    limit = min(MAX_PERIOD, len(text) // REPEATS)
    covered = 0  # the tail already explained by a shorter period that did not count
    for period in range(1, limit + 1):
        if text[-1 - period] != text[-1] or REPEATS * period <= covered:
            continue
        unit = text[-period:]
        if text[-REPEATS * period :] != unit * REPEATS:
            continue
        start = _run_start(text, period)
        run = len(text) - start
        if period >= MIN_SPAN or (run >= MIN_SHORT_RUN and not unit.isspace()):
            return start + period
        # A 60-character rule line has period 20 too; it is still one short span repeated.
        covered = run
    return None


def _run_start(text: str, period: int) -> int:
    """The first index from which ``text`` is periodic with ``period`` to its end."""
    start = len(text) - REPEATS * period
    while start > 0 and text[start - 1] == text[start - 1 + period]:
        start -= 1
    return start


def _line_loop(text: str) -> int | None:
    """Where the first of ``REPEATS`` equal complete lines at the tail ends, or None.

    Blank lines between them do not break the repetition ("Paris.\n\nParis.\n\n…").
    """
    ends: list[int] = []  # where each complete, non-blank line ends
    lines: list[str] = []
    offset = 0
    for line in text.split("\n")[:-1]:  # complete lines only
        offset += len(line) + 1
        if line.strip():
            lines.append(line.rstrip())
            ends.append(offset - 1)
    if len(lines) < REPEATS or sum(ch.isalnum() for ch in lines[-1]) < 2:
        return None
    if any(line != lines[-1] for line in lines[-REPEATS:]):
        return None
    first = len(lines) - REPEATS
    while first > 0 and lines[first - 1] == lines[-1]:
        first -= 1
    return ends[first]
