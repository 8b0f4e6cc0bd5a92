"""Prometheus metrics of a service, served at `GET /metrics` (text format).

What every service records: a histogram of request durations by method, route *template* (never
the raw path: bounded cardinality) and status, timed by a pure ASGI middleware; what operators
add: payments by outcome (`operators/api.py`); what is computed at scrape time: the settlement
queues (a cheap SQL count the service supplies) and the SQLAlchemy pool of the service's engine.

Two modes, chosen when a service's state is built:

- **per app** (no `PROMETHEUS_MULTIPROC_DIR`): each `ServiceMetrics` owns a `CollectorRegistry`
  with its own histogram and counter. Tests and the scenario engine build many apps in one
  process; they never clash ("Duplicated timeseries") and an app's metrics go with the app.
- **multiprocess** (`PROMETHEUS_MULTIPROC_DIR` set, as `orchestration.network.Network` does for
  every service it spawns under uvicorn `--workers N`): the histogram and counter are process-wide
  singletons whose values prometheus_client keeps in mmap files in that directory, one set per
  worker; a scrape sums every worker's files (`MultiProcessCollector`). prometheus_client picks
  its value store from that variable at import, so it must be set before the process starts.

Gauges computed at scrape time (queues, pool, process) come from the worker that answers the
scrape: the queues are database counts, the same from any worker; the pool and process figures
are that one worker's.

`/metrics` needs `Authorization: Bearer <token>` (the network's `keys/metrics.token`); an app
built without a token answers 404 `metrics_disabled`.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cbdc.web.problems import problem

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The classic text format every Prometheus version reads (our names are all legacy-safe).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Service requests take from under a millisecond (reads) to seconds (inline RTGS settlement).
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Any other method is counted as "OTHER": a client must not be able to mint label values.
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
UNMATCHED = "unmatched"  # the route label of a request no route matched (a 404)

QueueDepths = Callable[[], Mapping[str, int]]


class _Instruments:
    """The metrics recorded as requests run (the rest are computed at scrape time)."""

    def __init__(self, registry: CollectorRegistry | None, *, payments: bool) -> None:
        self.requests = Histogram(
            "cbdc_http_request_duration_seconds",
            "HTTP requests by method, route template and status: duration in seconds",
            ("method", "route", "status"),
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.payments = Counter(
            "cbdc_payments",
            "Payment orders by path (single, batch) and outcome; refusals with their code",
            ("path", "outcome", "code"),
            registry=registry if payments else None,
        )


@functools.cache
def _process_instruments() -> _Instruments:
    # Multiprocess mode: one set per process. Two metric objects of one name would share mmap
    # slots but not their cached values, and would overwrite each other's counts.
    return _Instruments(None, payments=True)


def payment_outcome(receipt: Mapping[str, Any]) -> str:
    """`completed`, `pending_settlement`, `replayed`, or `failed` (settlement refused)."""
    if receipt.get("replayed"):
        return "replayed"
    status = receipt.get("status")
    if status == "pending_settlement":
        return "pending_settlement"
    if status in ("failed", "returned"):
        return "failed"
    return "completed"  # completed here, or settled / delivered across operators


class ServiceMetrics:
    """One service app's metrics and the registry `/metrics` renders."""

    def __init__(
        self,
        *,
        service: str,
        name: str,
        engine: Engine,
        queue_depths: QueueDepths,
        payments: bool = False,
    ) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        if self.multiprocess:
            instruments = _process_instruments()
            MultiProcessCollector(self.registry)
        else:
            instruments = _Instruments(self.registry, payments=payments)
        self._requests = instruments.requests
        self._payments = instruments.payments
        # Label lookups cost more than the observation: children are kept by label values
        # (bounded: methods, route templates and statuses are all finite sets).
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._payment_children: dict[tuple[str, str, str], Any] = {}
        self.registry.register(
            _ScrapeTimeGauges(service=service, name=name, engine=engine, queues=queue_depths)
        )
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "OTHER"
        key = (method, route, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self._requests.labels(method, route, str(status))
        child.observe(seconds)

    def count_payments(self, path: str, outcome: str, code: str = "", n: int = 1) -> None:
        key = (path, outcome, code)
        child = self._payment_children.get(key)
        if child is None:
            child = self._payment_children[key] = self._payments.labels(path, outcome, code)
        child.inc(n)

    def count_receipt(self, path: str, receipt: Mapping[str, Any]) -> None:
        self.count_payments(path, payment_outcome(receipt))

    def count_batch(self, results: Iterable[Mapping[str, Any]]) -> None:
        """One count per order of a batch: its receipt's outcome, or refused with its code."""
        for result in results:
            if result["ok"]:
                self.count_receipt("batch", result["receipt"])
            else:
                self.count_payments("batch", "refused", str(result["problem"]["code"]))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ScrapeTimeGauges(Collector):
    """Gauges read when scraped: nothing is kept between scrapes, nothing is on the hot path."""

    def __init__(self, *, service: str, name: str, engine: Engine, queues: QueueDepths) -> None:
        self.service, self.name, self.engine, self.queues = service, name, engine, queues

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily(
            "cbdc_service_info", "The service answering (always 1)", labels=["service", "name"]
        )
        info.add_metric([self.service, self.name], 1)
        yield info
        yield from self._pool()  # before the queue count takes a connection of its own
        yield from self._queues()

    def _pool(self) -> Iterable[Metric]:
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):
            return
        figures = {
            "size": ("Connections the pool keeps (pool_size)", pool.size()),
            "max_overflow": (
                "Connections the pool may open beyond its size",
                getattr(pool, "_max_overflow", 0),
            ),
            "checked_out": ("Connections in use", pool.checkedout()),
            "checked_in": ("Idle connections in the pool", pool.checkedin()),
            "overflow": ("Connections open beyond the pool size", max(0, pool.overflow())),
        }
        for key, (doc, value) in figures.items():
            yield GaugeMetricFamily(
                f"cbdc_db_pool_{key}", f"{doc}; of the worker answering the scrape", value=value
            )

    def _queues(self) -> Iterable[Metric]:
        try:
            depths = self.queues()
        except Exception:  # the database may be down: the other figures still help then
            log.warning("counting the settlement queues for /metrics", exc_info=True)
            return
        family = GaugeMetricFamily(
            "cbdc_settlement_queue_depth",
            "Settlement work waiting, counted in the database at scrape time",
            labels=["queue"],
        )
        for queue, depth in depths.items():
            family.add_metric([queue], depth)
        yield family


# ------------------------------------------------------------------ HTTP


class RequestMetricsMiddleware:
    """Times every HTTP request. Pure ASGI (no request objects, no body buffering): one wrapped
    `send` to see the status, and the route template read from the scope after the call (the
    router leaves the matched route in `scope["route"]`)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # if the app raises before answering, the server answers 500

        async def send_seeing_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_seeing_status)
        finally:
            self.metrics.observe_request(
                scope["method"], route_template(scope), status, time.perf_counter() - start
            )


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    return str(getattr(route, "path_format", None) or getattr(route, "path", UNMATCHED))


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def install(app: FastAPI, metrics: ServiceMetrics, *, token: str | None) -> None:
    """Serve `GET /metrics` and time every request. Call last in `create_app`: middleware added
    last runs outermost, so the timing covers the others (response signing)."""
    expected = token.encode() if token else None

    def serve_metrics(request: Request) -> Response:
        """Prometheus text format. `Authorization: Bearer <token>` (the network's
        `keys/metrics.token`); 404 `metrics_disabled` if the service has no token."""
        if expected is None:
            return problem(
                404,
                "metrics_disabled",
                "Metrics are not enabled on this service",
                "the service was started without a metrics token",
            )
        presented = bearer_token(request.headers.get("authorization"))
        if presented is None or not hmac.compare_digest(presented.encode(), expected):
            response = problem(
                401,
                "metrics_unauthorized",
                "Metrics need the bearer token",
                "send Authorization: Bearer <the network's keys/metrics.token>",
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    # A sync endpoint: the scrape counts rows in the database, so it runs in the thread pool.
    app.add_api_route(
        "/metrics",
        serve_metrics,
        methods=["GET"],
        tags=["monitoring"],
        response_class=PlainTextResponse,
    )
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
