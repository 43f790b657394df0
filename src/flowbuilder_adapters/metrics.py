"""The process's metrics, in the Prometheus text format (prometheus-client).

One registry per process, in its memory: FlowBuilder never forks request workers (`serve` is
one process, a worker is one process), so each process counts what it did and serves only
that, the API on its own port at `GET /metrics`, a worker on `METRICS_PORT`. Several processes
on one host therefore never share a number, and a scraper sums the per-process series.
prometheus-client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`) is not used: leave it unset.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from flowbuilder_core.executions.model import (
    Execution,
    ExecutionId,
    ExecutionRequested,
    RunOutcome,
    StepResult,
)
from flowbuilder_core.executions.ports import Delivery, ExecutionQueue, RunObserver

_log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STEP_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

HTTP_REQUESTS = Counter(
    "flowbuilder_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "flowbuilder_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
EXECUTIONS_STARTED = Counter(
    "flowbuilder_executions_started",
    "Runs this process started (claimed), by trigger.",
    ["trigger"],
    registry=REGISTRY,
)
EXECUTIONS_FINISHED = Counter(
    "flowbuilder_executions_finished",
    "Runs this process finished, by the status it recorded and trigger.",
    ["status", "trigger"],
    registry=REGISTRY,
)
STEP_DURATION = Histogram(
    "flowbuilder_step_duration_seconds",
    "Time a node took, by node type and the step's status.",
    ["node_type", "status"],
    buckets=_STEP_BUCKETS,
    registry=REGISTRY,
)


class _Readiness(Collector):
    """The outbox backlog and the database's state as the API's last scrape found them; no
    series at all in a process that never checked (a worker relays no outbox)."""

    def __init__(self) -> None:
        self.database: bool | None = None
        self.outbox_backlog: int | None = None

    def collect(self) -> Iterator[Metric]:
        if self.outbox_backlog is not None:
            yield GaugeMetricFamily(
                "flowbuilder_outbox_backlog",
                "Outbox messages not yet delivered to the queue (counted up to 1,000).",
                value=self.outbox_backlog,
            )
        if self.database is not None:
            yield GaugeMetricFamily(
                "flowbuilder_database_up",
                "1 when the database answered the readiness check, else 0.",
                value=1 if self.database else 0,
            )


_READINESS = _Readiness()
REGISTRY.register(_READINESS)
QUEUE_ERRORS = Counter(
    "flowbuilder_queue_errors",
    "Failed calls to the execution queue, by operation (send, receive, extend, ack).",
    ["operation"],
    registry=REGISTRY,
)
JWKS_FETCHES = Counter(
    "flowbuilder_jwks_fetches",
    "Fetches of the token signing keys (JWKS), by outcome (ok, error).",
    ["outcome"],
    registry=REGISTRY,
)
WORKER_SLOTS = Gauge(
    "flowbuilder_worker_slots",
    "The worker's run slots, busy or free.",
    ["state"],
    registry=REGISTRY,
)

for _operation in ("send", "receive", "extend", "ack"):
    QUEUE_ERRORS.labels(_operation)  # every series exists from the start, at 0
for _outcome in ("ok", "error"):
    JWKS_FETCHES.labels(_outcome)


def exposition(accept: str | None = None) -> tuple[bytes, str]:
    """The current metrics and their content type, in the format the scraper's `Accept` header
    asks for (OpenMetrics, or Prometheus text); Prometheus text 0.0.4 without one."""
    encode, content_type = choose_encoder(accept or "")
    return encode(REGISTRY), content_type


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """One answered HTTP request. A method outside HTTP's own is counted as `other`, so that a
    client cannot make series up."""
    labels = (method if method in _METHODS else "other", route, str(status))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_DURATION.labels(*labels).observe(seconds)


def observe_readiness(database: bool, outbox_backlog: int | None) -> None:
    """What the readiness check just found, for the next exposition."""
    _READINESS.database, _READINESS.outbox_backlog = database, outbox_backlog


def observe_jwks_fetch(ok: bool) -> None:
    JWKS_FETCHES.labels("ok" if ok else "error").inc()


def observe_slots(busy: int, concurrency: int) -> None:
    WORKER_SLOTS.labels("busy").set(busy)
    WORKER_SLOTS.labels("free").set(concurrency - busy)


class PrometheusRunObserver(RunObserver):
    """Counts runs started and finished, and times each node."""

    def run_started(self, execution: Execution) -> None:
        EXECUTIONS_STARTED.labels(execution.trigger).inc()

    def run_finished(self, execution: Execution, outcome: RunOutcome) -> None:
        EXECUTIONS_FINISHED.labels(outcome.status.value, execution.trigger).inc()

    def step_finished(self, node_type: str, step: StepResult) -> None:
        if step.started_at is None or step.finished_at is None:
            return
        seconds = max((step.finished_at - step.started_at).total_seconds(), 0.0)
        STEP_DURATION.labels(node_type, step.status.value).observe(seconds)


class MeteredQueue(ExecutionQueue):
    """`queue`, with every failed call counted by operation (the failure still raises)."""

    def __init__(self, queue: ExecutionQueue) -> None:
        self._queue = queue

    def __repr__(self) -> str:
        return f"MeteredQueue({self._queue!r})"

    async def send(self, message: ExecutionRequested) -> None:
        with QUEUE_ERRORS.labels("send").count_exceptions():
            await self._queue.send(message)

    async def send_many(self, messages: Sequence[ExecutionRequested]) -> set[ExecutionId]:
        with QUEUE_ERRORS.labels("send").count_exceptions():
            sent = await self._queue.send_many(messages)
        if len(sent) < len(messages):  # the queue refused some of the batch
            QUEUE_ERRORS.labels("send").inc(len(messages) - len(sent))
        return sent

    async def receive(self, max_messages: int, wait_seconds: float) -> Sequence[Delivery]:
        with QUEUE_ERRORS.labels("receive").count_exceptions():
            return await self._queue.receive(max_messages, wait_seconds)

    async def extend(self, delivery: Delivery, seconds: int) -> None:
        with QUEUE_ERRORS.labels("extend").count_exceptions():
            await self._queue.extend(delivery, seconds)

    async def ack(self, delivery: Delivery) -> None:
        with QUEUE_ERRORS.labels("ack").count_exceptions():
            await self._queue.ack(delivery)

    async def extend_many(self, deliveries: Sequence[Delivery], seconds: int) -> None:
        with QUEUE_ERRORS.labels("extend").count_exceptions():
            await self._queue.extend_many(deliveries, seconds)

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        with QUEUE_ERRORS.labels("ack").count_exceptions():
            await self._queue.ack_many(deliveries)


class MetricsListener:
    """The worker's own metrics endpoint: `/metrics` (any path, in fact) on `host:port`, served
    by prometheus-client's small HTTP server on a thread of its own."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Listen; False (and an error logged, naming METRICS_PORT) when the address is taken:
        the worker's runs matter more than its metrics."""
        try:
            self._server, self._thread = start_http_server(
                self._port, addr=self._host, registry=REGISTRY
            )
        except OSError as exc:
            _log.error(
                "METRICS_PORT: cannot serve metrics on %s:%d (%s); running without them",
                self._host,
                self._port,
                exc.strerror or type(exc).__name__,
            )
            return False
        _log.info("metrics at http://%s:%d/metrics", self._host, self._port)
        return True

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
