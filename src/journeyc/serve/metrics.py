"""Prometheus metrics of one journeyc daemon, in a registry of its own.

Each :class:`Metrics` owns a :class:`~prometheus_client.CollectorRegistry`, so two
apps in one process (tests, or a daemon restarted in place) never share or clash
over counters. The API counts what it takes in; the daemon observes timer lateness
and engine runs through the same object (reported by its engine process, which
runs in a process of its own: see :mod:`journeyc.serve.daemon`); sends and the
outbox backlog are read from the store at scrape time, so they are right even after
a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from journeyc.serve.breaker import BREAKER_STATES
from journeyc.store.errors import DatabaseError
from journeyc.store.open import reading_at

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of :meth:`Metrics.render`'s output."""

INGEST_ENDPOINTS = ("track", "identify", "alias", "batch")
"""The ``endpoint`` label values of ``journeyc_events_received_total``."""

INGEST_OUTCOMES = (
    "accepted",
    "duplicate",
    "invalid",
    "unauthorized",
    "too_large",
    "unsupported_media_type",
    "unavailable",
)
"""The ``outcome`` label values: the first two count events, the rest requests."""

TIMER_LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Seconds; a timer that fires minutes late points at a stalled scheduler."""


RUN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
"""Seconds; most engine steps in the daemon handle one burst of requests."""

CPU_PARTS = ("ingest", "engine", "dispatch")
"""The ``part`` label values of ``journeyc_cpu_seconds_total``."""

IGNORED_FIELDS = ("context.timezone", "context.locale")
"""The ``field`` label values of ``journeyc_ingest_ignored_fields_total``."""


class Metrics:
    """The instruments of one app, and the registry ``/metrics`` renders.

    The daemon records with ``timer_lateness.observe(seconds)`` when it runs a due
    timer, ``engine_runs.inc()`` and ``engine_run_seconds.observe(seconds)`` after
    each engine step, and ``cpu_seconds.labels(part).inc(seconds)`` with the thread
    CPU time of each part's work. :meth:`observe_dispatch` takes the dispatcher's
    part of the engine process's status (each channel's breaker and sends).

    ``process_*`` are this process's (the API's); with ``engine_pid`` (the engine
    process's pid, or -1 while there is none) ``journeyc_engine_process_*`` are the
    engine process's, read from ``/proc`` at scrape time.
    """

    def __init__(self, store_path: Path | str, engine_pid: Callable[[], int] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events_received = Counter(
            "journeyc_events_received",
            "Ingest outcomes: accepted and duplicate count events; "
            "the other outcomes count rejected requests.",
            ("endpoint", "outcome"),
            registry=self.registry,
        )
        for endpoint in INGEST_ENDPOINTS:
            for outcome in INGEST_OUTCOMES:
                self.events_received.labels(endpoint, outcome)
        self.timer_lateness = Histogram(
            "journeyc_timer_lateness_seconds",
            "How long after its wake time a waiting instance was run.",
            buckets=TIMER_LATENESS_BUCKETS,
            registry=self.registry,
        )
        self.engine_runs = Counter(
            "journeyc_engine_runs",
            "Engine steps run by the daemon.",
            registry=self.registry,
        )
        self.engine_run_seconds = Histogram(
            "journeyc_engine_run_seconds",
            "Wall-clock time of each engine step, commits included.",
            buckets=RUN_BUCKETS,
            registry=self.registry,
        )
        self.cpu_seconds = Counter(
            "journeyc_cpu",
            "CPU time of the daemon's threads by part: ingest (validating and "
            "committing requests, in the API process), engine and dispatch (in the "
            "engine process); the rest of process_cpu_seconds_total is HTTP handling, "
            "and of journeyc_engine_process_cpu_seconds_total the scheduler.",
            ("part",),
            unit="seconds",
            registry=self.registry,
        )
        for part in CPU_PARTS:
            self.cpu_seconds.labels(part)
        self.ignored_fields = Counter(
            "journeyc_ingest_ignored_fields",
            "Fields of accepted calls that were ignored, by field: a context.timezone "
            "that names no IANA zone, a context.locale that is not text. The call is "
            "stored without them (a warning, never an error).",
            ("field",),
            registry=self.registry,
        )
        for field in IGNORED_FIELDS:
            self.ignored_fields.labels(field)
        self.deliveries = Counter(
            "journeyc_deliveries",
            "New reports taken by POST /v1/deliveries (repeats not counted), by kind "
            "(delivered, opened, clicked, bounced, complained, unsubscribed) and the "
            "channel of the send.",
            ("kind", "channel"),
            registry=self.registry,
        )
        self.breaker_state = Gauge(
            "journeyc_channel_breaker_state",
            "Each channel's circuit breaker: 0 closed (sending), 1 half-open (one probe "
            "send), 2 open (sends put off until its cool-down ends).",
            ("channel",),
            registry=self.registry,
        )
        self.sends_in_flight = Gauge(
            "journeyc_channel_sends_in_flight",
            "Sends of each channel its provider is working on (given-up ones excepted).",
            ("channel",),
            registry=self.registry,
        )
        self.sends_given_up = Gauge(
            "journeyc_channel_sends_given_up",
            "Sends of each channel given up after its deadline since the engine process started.",
            ("channel",),
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        if engine_pid is not None:
            ProcessCollector(namespace="journeyc_engine", pid=engine_pid, registry=self.registry)
        self.registry.register(OutboxCollector(store_path))

    def observe_dispatch(self, dispatch: Mapping[str, object]) -> None:
        """Set the channel gauges from the ``dispatch`` part of the engine process's
        status (its ``channels``: breaker state, sends running, sends given up)."""
        channels = dispatch.get("channels")
        if not isinstance(channels, Mapping):
            return
        for channel, state in channels.items():
            if not isinstance(state, Mapping):
                continue
            level = _BREAKER_LEVELS.get(str(state.get("breaker")), 0)
            self.breaker_state.labels(channel).set(level)
            self.sends_in_flight.labels(channel).set(_number(state.get("running")))
            self.sends_given_up.labels(channel).set(_number(state.get("given_up")))

    def render(self) -> bytes:
        """The registry in Prometheus' text format (see :data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)


class OutboxCollector(Collector):
    """``journeyc_sends_total`` and ``journeyc_outbox_backlog``, read from the outbox.

    Counted from the rows at scrape time, not kept in memory: the dispatcher may
    run in another process, and the numbers survive restarts. ``forget_user``
    deletes rows, so a series can drop after an erasure.
    """

    def __init__(self, store_path: Path | str) -> None:
        self._path = store_path

    def describe(self) -> Iterable[Metric]:
        """The families without samples, so registering does not touch the store."""
        return [_sends_family(), _backlog_family()]

    def collect(self) -> Iterator[Metric]:
        """Count outbox rows by channel and outcome, and the queued backlog."""
        sends, backlog = _sends_family(), _backlog_family()
        try:
            with reading_at(self._path) as reads:
                rows = reads.sends_per_channel()
        except DatabaseError:
            # A scrape must not fail because the store is briefly unreadable;
            # the missing series show the gap.
            return
        queued = 0
        for channel, status, count in rows:
            if status == "queued":
                queued += count
            else:
                sends.add_metric([channel, status], count)
        backlog.add_metric([], queued)
        yield sends
        yield backlog


_BREAKER_LEVELS: dict[str, int] = {str(state): n for state, n in BREAKER_STATES.items()}


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _sends_family() -> CounterMetricFamily:
    return CounterMetricFamily(
        "journeyc_sends",
        "Outbox rows by channel (none when suppressed before choosing one) and outcome.",
        labels=("channel", "outcome"),
    )


def _backlog_family() -> GaugeMetricFamily:
    return GaugeMetricFamily("journeyc_outbox_backlog", "Messages queued and not yet sent.")
