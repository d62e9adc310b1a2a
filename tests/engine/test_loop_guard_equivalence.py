"""The loop guard's incremental checks find exactly what checking the whole text after every
piece finds (the plain algorithm, kept here as the oracle), and a feed's cost does not grow
with the length of the text."""

from __future__ import annotations

import random
import time

import pytest

from app.engine.loop_guard import MAX_PERIOD, MIN_SHORT_RUN, MIN_SPAN, REPEATS, LoopGuard


def _oracle_span(text: str) -> int | None:
    limit = min(MAX_PERIOD, len(text) // REPEATS)
    covered = 0
    for period in range(1, limit + 1):
        if text[-1 - period] != text[-1] or REPEATS * period <= covered:
            continue
        unit = text[-period:]
        if text[-REPEATS * period :] != unit * REPEATS:
            continue
        start = len(text) - REPEATS * period
        while start > 0 and text[start - 1] == text[start - 1 + period]:
            start -= 1
        run = len(text) - start
        if period >= MIN_SPAN or (run >= MIN_SHORT_RUN and not unit.isspace()):
            return start + period
        covered = run
    return None


def _oracle_lines(text: str) -> int | None:
    ends: list[int] = []
    lines: list[str] = []
    offset = 0
    for line in text.split("\n")[:-1]:
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


def _oracle(pieces: list[str]) -> tuple[int, str]:
    """(how many pieces were fed until the loop, or all of them; the text kept)."""
    text = ""
    for count, piece in enumerate(pieces, 1):
        text += piece
        start = _oracle_span(text)
        if start is None:
            start = _oracle_lines(text)
        if start is not None:
            return count, text[:start].rstrip()
    return len(pieces), text


def _guard(pieces: list[str]) -> tuple[int, str]:
    guard = LoopGuard()
    for count, piece in enumerate(pieces, 1):
        if guard.feed(piece):
            return count, guard.kept
    return len(pieces), guard.kept


ALPHABETS = ["ab", "ab \n", "abc \n", "  \n", "xyz.,", "the cat sat\n", "ab\t }"]


def _text(rng: random.Random) -> str:
    """Random text with repetitions of every size: fresh text, repeated units, repeated lines."""
    parts: list[str] = []
    for _ in range(rng.randint(1, 12)):
        alphabet = rng.choice(ALPHABETS)
        unit = "".join(rng.choice(alphabet) for _ in range(rng.choice([1, 2, 3, 7, 19, 20, 45])))
        kind = rng.random()
        if kind < 0.4:
            parts.append(unit * rng.randint(1, 4))
        elif kind < 0.6:
            parts.append((unit + "\n") * rng.randint(1, 4))
        elif kind < 0.8:
            parts.append(unit * rng.randint(20, 120))
        else:
            parts.append("".join(rng.choice("abcdefghij \n") for _ in range(rng.randint(1, 900))))
    return "".join(parts)


def _pieces(rng: random.Random, text: str) -> list[str]:
    pieces, at = [], 0
    while at < len(text):
        size = rng.choice([1, 1, 2, 3, 5, 8, 40, 3000])
        pieces.append(text[at : at + size])
        at += size
    return pieces


@pytest.mark.parametrize("seed", range(40))
def test_the_incremental_guard_agrees_with_checking_the_whole_text(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        pieces = _pieces(rng, _text(rng))
        assert _guard(pieces) == _oracle(pieces)


def test_a_loop_longer_than_the_window_keeps_the_text_before_it() -> None:
    intro = "Intro line.\n" + "fresh words " * 5 + "x"
    pieces = [intro] + ["   "] * 2000 + ["The same sentence, again and again. "] * 4
    assert _guard(pieces) == _oracle(pieces)


def test_a_feed_costs_the_same_however_long_the_text_is() -> None:
    """Long answers: one-word tokens and many lines; feeding the last tenth of 20,000 tokens
    must not cost much more than feeding the first tenth (the whole-text check was quadratic)."""
    tokens = [f" w{i}" + ("\n" if i % 7 == 0 else "") for i in range(20_000)]
    guard = LoopGuard()
    started = time.process_time()
    for token in tokens[:2000]:
        assert not guard.feed(token)
    first = time.process_time() - started
    for token in tokens[2000:18_000]:
        assert not guard.feed(token)
    started = time.process_time()
    for token in tokens[18_000:]:
        assert not guard.feed(token)
    last = time.process_time() - started
    assert last < first * 3 + 0.02, (first, last)
