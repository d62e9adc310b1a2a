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

It is fed every token of every run, so a feed costs about the same however long the text has
grown: the span check looks only at the last ``WINDOW`` characters (more than ``REPEATS`` ×
``MAX_PERIOD``) and, for periods of ``_ANCHOR`` characters or more, only at the periods where the
text's last ``_ANCHOR`` characters occur again (``str.find``); lines are followed as they
complete, never split again from the start.
"""

from __future__ import annotations

MIN_SPAN = 20
REPEATS = 3
MIN_SHORT_RUN = 200
MAX_PERIOD = 600  # longer cycles are rare, and checking them costs more than they save
WINDOW = 4 * MAX_PERIOD  # the tail the span check looks at: any loop it can find fits in it
_ANCHOR = 16  # a period at least this long repeats the text's last _ANCHOR characters


class LoopGuard:
    """Feed it streamed text; :meth:`feed` turns True once the text has started looping."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self._tail = ""  # the last WINDOW (to 2 × WINDOW) characters
        self._loop_start: int | None = None
        # Lines: the pieces of the line not yet complete, the last complete non-blank line
        # (right-stripped), how many times in a row it came, and where the first of them ends.
        self._line_pieces: list[str] = []
        self._line: str | None = None
        self._line_repeats = 0
        self._line_first_end = 0

    @property
    def looping(self) -> bool:
        return self._loop_start is not None

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def kept(self) -> str:
        """The text so far, cut after the first copy of the loop once one is found."""
        if self._loop_start is None:
            return self.text
        return self.text[: self._loop_start].rstrip()

    def feed(self, text: str) -> bool:
        """Add streamed ``text``; True when the tail is now a loop."""
        if self._loop_start is not None:
            return True
        if not text:
            return False  # nothing changed since the last check
        offset = self._length
        self._parts.append(text)
        self._length += len(text)
        tail = self._tail + text
        if len(tail) > 2 * WINDOW:
            tail = tail[-WINDOW:]
        self._tail = tail
        self._follow_lines(text, offset)
        found = _span_loop(tail)
        if found is not None:
            start, period = found
            base = self._length - len(tail)
            if start == 0 and base > 0:  # the run goes on before the window: find where
                self._loop_start = _span_loop_end(self.text)
            else:
                self._loop_start = base + start + period
        elif self._line_repeats >= REPEATS and _alnum(self._line or "") >= 2:
            self._loop_start = self._line_first_end
        return self._loop_start is not None

    def _follow_lines(self, text: str, offset: int) -> None:
        """Take in the lines ``text`` completes (``offset``: where it starts in the text)."""
        if "\n" not in text:
            self._line_pieces.append(text)
            return
        pieces = text.split("\n")
        self._line_pieces.append(pieces[0])
        end = offset + len(pieces[0])  # where the first completed line's "\n" is
        for index in range(len(pieces) - 1):
            if index:
                end += 1 + len(pieces[index])
                line = pieces[index]
            else:
                line = "".join(self._line_pieces)
            if line.strip():
                line = line.rstrip()
                if line == self._line:
                    self._line_repeats += 1
                else:
                    self._line, self._line_repeats, self._line_first_end = line, 1, end
        self._line_pieces = [pieces[-1]]


def _alnum(line: str) -> int:
    return sum(ch.isalnum() for ch in line)


def _span_loop_end(text: str) -> int | None:
    """Where one copy of a repeating tail ends, or None."""
    found = _span_loop(text)
    return None if found is None else found[0] + found[1]


def _span_loop(text: str) -> tuple[int, int] | None:
    """(where the repeating tail starts, its period), or None.

    Only the periods that can pass are tried, shortest first: a period ``p`` that repeats
    ``REPEATS`` times at the tail has ``text[-1 - p] == text[-1]`` and, when ``p >= _ANCHOR``,
    has the last ``_ANCHOR`` characters again ``p`` characters earlier."""
    length = len(text)
    limit = min(MAX_PERIOD, length // REPEATS)
    if limit < 1:
        return None
    last = text[-1]
    periods = [p for p in range(1, min(limit, _ANCHOR - 1) + 1) if text[-1 - p] == last]
    if limit >= _ANCHOR:
        anchor = text[-_ANCHOR:]
        # The anchor again at ``at`` means period ``length - _ANCHOR - at``.
        lowest, end = max(0, length - _ANCHOR - limit), length - _ANCHOR
        at = text.rfind(anchor, lowest, end)
        while at != -1:
            periods.append(length - _ANCHOR - at)
            at = text.rfind(anchor, lowest, at + _ANCHOR - 1)
    covered = 0  # the tail already explained by a shorter period that did not count
    for period in periods:
        if REPEATS * period <= covered:
            continue
        unit = text[-period:]
        if text[-REPEATS * period :] != unit * REPEATS:
            continue
        start = _run_start(text, period)
        run = length - start
        if period >= MIN_SPAN or (run >= MIN_SHORT_RUN and not unit.isspace()):
            return start, period
        # A 60-character rule line has period 20 too; it is still one short span repeated.
        covered = run
    return None


def _run_start(text: str, period: int) -> int:
    """The first index from which ``text`` is periodic with ``period`` to its end."""
    start = len(text) - REPEATS * period
    while start >= period and text[start - period : start] == text[start : start + period]:
        start -= period
    while start > 0 and text[start - 1] == text[start - 1 + period]:
        start -= 1
    return start
