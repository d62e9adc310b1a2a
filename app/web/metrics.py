"""Prometheus metrics: HTTP latency per route, measured here, and the run engine's state, read
from SQL at scrape time (so every web worker reports the same numbers and nothing on a run's
path pays for them).

With several web workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder so the latency
histograms of all workers are summed (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta

from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import Session, col, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import get_engine
from app.models import Model, ModelEndpoint, Run, RunStatus
from app.models.common import utcnow

REQUEST_SECONDS = Histogram(
    "switchboard_http_request_duration_seconds",
    "Time to the response's headers, per route template.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)
SPEED_BUCKETS = (1, 2, 5, 10, 20, 40, 80, 160, 320)
# How far back the per-model histograms look (they are rebuilt from SQL at each scrape).
RECENT = timedelta(hours=24)


class MetricsMiddleware:
    """Times each request to its response headers, labelled by route template (never the raw
    path, so ids do not multiply the series). Plain ASGI: no task or body stream per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                REQUEST_SECONDS.labels(scope["method"], template, str(message["status"])).observe(
                    time.perf_counter() - started
                )
            await send(message)

        await self.app(scope, receive, timed_send)


def _histogram(name: str, doc: str, buckets: tuple[float, ...], samples: dict[str, list[float]]):
    family = HistogramMetricFamily(name, doc, labels=["model"])
    for model, values in samples.items():
        counts = [sum(1 for v in values if v <= bound) for bound in buckets]
        family.add_metric(
            [model],
            buckets=[(str(b), c) for b, c in zip(buckets, counts, strict=True)]
            + [("+Inf", len(values))],
            sum_value=sum(values),
        )
    return family


class EngineCollector(Collector):
    """Runs by state, queue depth and runs in progress per endpoint, and recent answers'
    time to first token and tokens/s per model — read from SQL when scraped."""

    def collect(self) -> Iterator[Metric]:
        with Session(get_engine()) as session:
            by_state = dict(
                session.exec(
                    select(Run.status, func.count(col(Run.id))).group_by(col(Run.status))  # type: ignore[call-overload]
                ).all()
            )
            per_endpoint = session.exec(
                select(  # type: ignore[call-overload]
                    ModelEndpoint.name,
                    ModelEndpoint.max_concurrency,
                    Run.status,
                    func.count(col(Run.id)),
                )  # fmt: skip
                .join(Model, col(Model.endpoint_id) == col(ModelEndpoint.id))
                .join(Run, col(Run.model_id) == col(Model.id))
                .where(col(Run.status).in_([RunStatus.queued, RunStatus.running]))
                .group_by(
                    col(ModelEndpoint.name), col(ModelEndpoint.max_concurrency), col(Run.status)
                )  # fmt: skip
            ).all()
            limits = session.exec(select(ModelEndpoint.name, ModelEndpoint.max_concurrency)).all()
            recent = session.exec(
                select(  # type: ignore[call-overload]
                    Model.name, Run.started_at, Run.first_token_at, Run.tokens_per_second
                )
                .join(Model, col(Model.id) == col(Run.model_id))
                .where(Run.status == RunStatus.succeeded, col(Run.finished_at) >= utcnow() - RECENT)
            ).all()
        states = GaugeMetricFamily("switchboard_runs", "Runs by state.", labels=["state"])
        for state in RunStatus:
            states.add_metric([state.value], by_state.get(state.value, 0))
        yield states
        depth = GaugeMetricFamily(
            "switchboard_endpoint_queue_depth",
            "Runs waiting per model endpoint.",
            labels=["endpoint"],
        )
        busy = GaugeMetricFamily(
            "switchboard_endpoint_running",
            "Runs in progress per model endpoint.",
            labels=["endpoint"],
        )
        limit = GaugeMetricFamily(
            "switchboard_endpoint_max_concurrency",
            "Concurrency limit per endpoint.",
            labels=["endpoint"],
        )
        counts = {(name, status): count for name, _, status, count in per_endpoint}
        for name, max_concurrency in limits:
            depth.add_metric([name], counts.get((name, RunStatus.queued.value), 0))
            busy.add_metric([name], counts.get((name, RunStatus.running.value), 0))
            limit.add_metric([name], max_concurrency)
        yield from (depth, busy, limit)
        ttft: dict[str, list[float]] = {}
        speed: dict[str, list[float]] = {}
        for model, started, first_token, tokens_per_second in recent:
            if started and first_token:
                ttft.setdefault(model, []).append((first_token - started).total_seconds())
            if tokens_per_second is not None:
                speed.setdefault(model, []).append(tokens_per_second)
        yield _histogram(
            "switchboard_time_to_first_token_seconds",
            "Time to first token of answers finished in the last 24 h.", TTFT_BUCKETS, ttft,
        )  # fmt: skip
        yield _histogram(
            "switchboard_tokens_per_second",
            "Generation speed of answers finished in the last 24 h.", SPEED_BUCKETS, speed,
        )  # fmt: skip


def registries() -> Iterable[CollectorRegistry]:
    """The process's own metrics (or all workers' in multiprocess mode), and the engine's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        combined = CollectorRegistry()
        MultiProcessCollector(combined)
        yield combined
    else:
        yield REGISTRY
    engine = CollectorRegistry()
    engine.register(EngineCollector())
    yield engine


def exposition() -> bytes:
    """Every metric in Prometheus's text format."""
    return b"".join(generate_latest(registry) for registry in registries())
