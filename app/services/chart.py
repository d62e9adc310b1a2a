"""Coordinates for the leaderboard's chart: rating (or win chance) against parameter count.

Only numbers are computed here; ``templates/_chart.svg`` draws them (colours come from CSS
variables, so the chart follows light and dark mode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.services.leaderboard import Row

WIDTH, HEIGHT = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 24, 48


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    low: float
    high: float
    label: str
    value: float
    parameters: str


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    points: list[Point]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    y_title: str
    x_title: str
    skipped: list[str]


def parameters_label(count: int) -> str:
    """270M, 1.5B, 7B."""
    if count >= 1e9:
        return f"{count / 1e9:.3g}B"
    return f"{count / 1e6:.3g}M"


def rating_chart(rows: list[Row]) -> Chart:
    """Rated rows with a known size, placed on a log scale of parameters."""
    shown = [r for r in rows if r.rating is not None and r.parameter_count]
    skipped = [r.name for r in rows if r.rating is not None and not r.parameter_count]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    if not shown:
        return Chart(WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM, [], [], [], "Rating",
                     "Parameters (log scale)", skipped)  # fmt: skip
    sizes = [math.log10(r.parameter_count) for r in shown if r.parameter_count]
    x_min, x_max = math.floor(min(sizes) * 2) / 2, math.ceil(max(sizes) * 2) / 2
    if x_max - x_min < 1:
        x_min, x_max = x_min - 0.5, x_max + 0.5
    lows = [r.low if r.low is not None else r.rating for r in shown]
    highs = [r.high if r.high is not None else r.rating for r in shown]
    y_min = math.floor((min(v for v in lows if v is not None) - 20) / 50) * 50
    y_max = math.ceil((max(v for v in highs if v is not None) + 20) / 50) * 50

    def x_of(log_size: float) -> float:
        return LEFT + (log_size - x_min) / (x_max - x_min) * plot_w

    def y_of(value: float) -> float:
        return TOP + (y_max - value) / (y_max - y_min) * plot_h

    points = []
    for row in shown:
        assert row.rating is not None and row.parameter_count
        low = row.low if row.low is not None else row.rating
        high = row.high if row.high is not None else row.rating
        points.append(
            Point(
                x=round(x_of(math.log10(row.parameter_count)), 1), y=round(y_of(row.rating), 1),
                low=round(y_of(low), 1), high=round(y_of(high), 1), label=row.name,
                value=round(row.rating), parameters=parameters_label(row.parameter_count),
            )
        )  # fmt: skip
    x_ticks = [
        Tick(round(x_of(exponent), 1), parameters_label(int(10**exponent)))
        for exponent in _steps(x_min, x_max, 0.5)
    ]
    step = max(50, (y_max - y_min) // 6 // 50 * 50)
    y_ticks = [Tick(round(y_of(v), 1), str(int(v))) for v in _steps(y_min, y_max, step)]
    return Chart(WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM, points, x_ticks, y_ticks,
                 "Rating (95 % interval)", "Parameters (log scale)", skipped)  # fmt: skip


def _steps(start: float, stop: float, step: float) -> list[float]:
    count = int(round((stop - start) / step))
    return [start + i * step for i in range(count + 1)]
