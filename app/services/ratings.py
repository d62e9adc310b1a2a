"""Bradley–Terry ratings from pairwise verdicts, with bootstrap intervals.

A verdict between two contestants is a win, a tie or "both bad". The fit is maximum
likelihood (Hunter's MM algorithm in numpy, checked against ``choix`` in the tests) on a matrix
of wins, where a decisive verdict adds one win and a tie — and "both bad", which says neither
is better — adds half a win to each side. Ratings are
shown on the familiar Elo scale: 400 points is a factor of ten in the odds, and the contestants'
mean is 1000. Intervals come from a bootstrap over verdicts (the verdicts are resampled with
replacement and the fit repeated), so they widen where few votes back a rating.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)

ELO_SCALE = 400 / math.log(10)
ELO_MEAN = 1000.0
# A light prior keeps the fit finite when a contestant has only won (or only lost).
REGULARISATION = 0.01
BOOTSTRAP_ROUNDS = 200
MAX_ITERATIONS = 2000
TOLERANCE = 1e-7


@dataclass(frozen=True)
class Verdict(Generic[K]):
    """One comparison of two contestants: ``winner`` is None for a tie or "both bad"."""

    first: K
    second: K
    winner: K | None


@dataclass(frozen=True)
class Rating(Generic[K]):
    contestant: K
    rating: float
    low: float
    high: float
    wins: int
    ties: int
    losses: int


def win_matrix(verdicts: Sequence[Verdict[K]], contestants: Sequence[K]) -> np.ndarray:
    """``m[i, j]`` = how often i beat j; a tie counts half a win each way."""
    index = {contestant: i for i, contestant in enumerate(contestants)}
    matrix = np.zeros((len(contestants), len(contestants)))
    for verdict in verdicts:
        i, j = index[verdict.first], index[verdict.second]
        if verdict.winner is None:
            matrix[i, j] += 0.5
            matrix[j, i] += 0.5
        elif verdict.winner == verdict.first:
            matrix[i, j] += 1
        else:
            matrix[j, i] += 1
    return matrix


def _strengths(matrices: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Centred Bradley–Terry log-strengths for a stack of win matrices (R × n × n → R × n).

    Maximum likelihood by Hunter's MM iteration, vectorised over the stack so a whole
    bootstrap is fitted at once; every pair gets REGULARISATION pseudo-wins each way (a light
    prior that keeps unbeaten or winless contestants finite).
    """
    rounds, size, _ = matrices.shape
    if size == 1:
        return np.zeros((rounds, 1))
    wins = matrices + REGULARISATION * (1 - np.eye(size))
    games = wins + wins.transpose(0, 2, 1)
    total_wins = wins.sum(axis=2)
    strength = np.exp(start) if start is not None else np.ones((rounds, size))
    for _ in range(MAX_ITERATIONS):
        pair_sums = strength[:, :, None] + strength[:, None, :]
        updated = total_wins / (games / pair_sums).sum(axis=2)
        updated /= np.exp(np.log(updated).mean(axis=1, keepdims=True))
        change = np.abs(np.log(updated) - np.log(strength)).max()
        strength = updated
        if change < TOLERANCE:
            break
    logs = np.log(strength)
    return np.asarray(logs - logs.mean(axis=1, keepdims=True))


def fit(matrix: np.ndarray) -> np.ndarray:
    """Elo-scaled Bradley–Terry strengths for a win matrix (mean 1000)."""
    return np.asarray(ELO_MEAN + ELO_SCALE * _strengths(matrix[None])[0])


def _bootstrap(
    verdicts: Sequence[Verdict[K]], contestants: Sequence[K], rounds: int, seed: int
) -> np.ndarray:
    """``rounds`` × contestants ratings, each from the verdicts resampled with replacement."""
    rng = np.random.default_rng(seed)
    # Resampling verdicts is resampling the counts of each distinct (pair, outcome) cell; a
    # cell adds its count to one or (a tie: half each) two entries of the win matrix.
    cells: dict[tuple[int, int, int], int] = {}
    index = {contestant: i for i, contestant in enumerate(contestants)}
    for verdict in verdicts:
        i, j = index[verdict.first], index[verdict.second]
        outcome = 0 if verdict.winner is None else (1 if verdict.winner == verdict.first else 2)
        cells[(i, j, outcome)] = cells.get((i, j, outcome), 0) + 1
    keys = list(cells)
    counts = np.array([cells[key] for key in keys], dtype=float)
    size = len(contestants)
    # How one verdict of each cell lands in the win matrix (flattened).
    spread = np.zeros((len(keys), size * size))
    for n, (i, j, outcome) in enumerate(keys):
        if outcome == 0:
            spread[n, i * size + j] += 0.5
            spread[n, j * size + i] += 0.5
        elif outcome == 1:
            spread[n, i * size + j] += 1
        else:
            spread[n, j * size + i] += 1
    draws = rng.multinomial(len(verdicts), counts / counts.sum(), size=rounds)
    matrices = (draws @ spread).reshape(rounds, size, size)
    start = _strengths(win_matrix(verdicts, contestants)[None])
    return np.asarray(ELO_MEAN + ELO_SCALE * _strengths(matrices, np.repeat(start, rounds, 0)))


def rate(
    verdicts: Sequence[Verdict[K]],
    *,
    rounds: int = BOOTSTRAP_ROUNDS,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[Rating[K]]:
    """Ratings with ``confidence`` intervals, best first; contestants come from the verdicts."""
    contestants: list[K] = []
    for verdict in verdicts:
        for contestant in (verdict.first, verdict.second):
            if contestant not in contestants:
                contestants.append(contestant)
    if not contestants:
        return []
    point = fit(win_matrix(verdicts, contestants))
    tail = (1 - confidence) / 2 * 100
    if rounds > 0 and len(contestants) > 1:
        samples = _bootstrap(verdicts, contestants, rounds, seed)
        low, high = np.percentile(samples, [tail, 100 - tail], axis=0)
    else:
        low = high = point
    tallies = {contestant: [0, 0, 0] for contestant in contestants}
    for verdict in verdicts:
        if verdict.winner is None:
            tallies[verdict.first][1] += 1
            tallies[verdict.second][1] += 1
        else:
            loser = verdict.second if verdict.winner == verdict.first else verdict.first
            tallies[verdict.winner][0] += 1
            tallies[loser][2] += 1
    ratings = [
        Rating(
            contestant=contestant,
            rating=float(point[i]),
            low=float(min(low[i], point[i])),
            high=float(max(high[i], point[i])),
            wins=tallies[contestant][0],
            ties=tallies[contestant][1],
            losses=tallies[contestant][2],
        )
        for i, contestant in enumerate(contestants)
    ]
    return sorted(ratings, key=lambda r: r.rating, reverse=True)


def win_chance(rating: float, against: float = ELO_MEAN) -> float:
    """The chance a contestant rated ``rating`` beats one rated ``against``."""
    return 1 / (1 + 10 ** ((against - rating) / 400))


def wilson_interval(passed: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """A 95 % interval for a pass rate (Wilson score: sensible for small counts)."""
    if total == 0:
        return (0.0, 1.0)
    rate_ = passed / total
    denominator = 1 + z * z / total
    centre = (rate_ + z * z / (2 * total)) / denominator
    margin = z * math.sqrt(rate_ * (1 - rate_) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - margin), min(1.0, centre + margin))
