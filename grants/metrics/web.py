"""/metrics for Prometheus, and what the web processes count (docs/operations.md, "Metrics").

MetricsMiddleware times every request and counts its response, its refusal (the API's error shape names the code
and, for a budget refusal, the level) and a replayed Idempotency-Key. It also answers /metrics itself, before host
validation and the HTTPS redirect, as the probes do: Prometheus scrapes the container's own address over the
private network. The endpoint exists only when METRICS_TOKEN is set (404 otherwise) and answers only a request
carrying it as a bearer token.

A scrape adds to the processes' counters what the database and the broker hold: every pool's cap, committed and
disbursed from the maintained counters (one query, 1,000 rows at the largest city), open budget alerts, the
outbox's backlog and the age of its oldest message (an index serves both), and the length of each Celery queue.
A database or broker that does not answer turns into `grants_database_up 0` or `grants_broker_up 0`, never into a
failed scrape.
"""

import hmac
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from grants import metrics
from grants.metrics import receivers  # noqa: F401  (connects the transition and log-in counters)
from grants.models import BudgetAlert, FundingPool, OutboxMessage

logger = logging.getLogger(__name__)

PATH = "/metrics"
BROKER_TIMEOUT_SECONDS = 0.5
# kombu's Redis transport keeps a queue's messages of priority p > 0 in the list "<queue>\x06\x16<p>".
REDIS_PRIORITY_STEPS = (0, 3, 6, 9)


class MetricsMiddleware:
    """Second in MIDDLEWARE, right after the probes: it answers /metrics before host validation and the HTTPS
    redirect, and its timing covers every other middleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == PATH:
            return metrics_view(request)
        started = time.perf_counter()
        response = self.get_response(request)
        try:
            observe(request, response, time.perf_counter() - started)
        except Exception:
            logger.warning("could not record the metrics of a request", exc_info=True)
        return response


def observe(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    match = request.resolver_match
    # The view's name, never the path: ids in paths would make a new series per object.
    view = (match.view_name or match._func_path) if match else "unmatched"
    method = (
        request.method if request.method in {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} else "other"
    )
    metrics.REQUEST_SECONDS.labels(view=view, method=method).observe(seconds)
    metrics.RESPONSES.labels(view=view, method=method, status=str(response.status_code)).inc()
    if response.get("Idempotent-Replayed") == "true":
        metrics.REPLAYS.labels(view=view).inc()
    data = getattr(response, "data", None)  # a DRF response: the API's error shape (grants/api/errors.py)
    if 400 <= response.status_code < 500 and isinstance(data, dict) and isinstance(data.get("code"), str):
        details = data.get("details")
        level = details.get("level") if isinstance(details, dict) else None
        metrics.count_refusal("api", code=data["code"], level=level if isinstance(level, str) else "")


def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        return HttpResponse(status=404)
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return HttpResponse(
            "A bearer token (METRICS_TOKEN) is required.\n",
            status=401,
            content_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    return HttpResponse(
        generate_latest(scrape_registry()),
        content_type=CONTENT_TYPE_LATEST,
        headers={"Cache-Control": "no-store"},
    )


def scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    folder = metrics.multiprocess_dir()
    if folder is not None:
        MultiProcessCollector(registry, path=str(folder))
    else:
        registry.register(_Forward(metrics.PROCESS))
    registry.register(DatabaseCollector())
    registry.register(BrokerCollector())
    return registry


class _Forward(Collector):
    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()


class DatabaseCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "grants_database_up", "1 when the scrape could read the database, 0 otherwise."
        )
        try:
            families = list(self._figures())
        except DatabaseError:
            logger.warning("metrics: the database did not answer", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _figures(self) -> Iterator[Metric]:
        labels = ["city", "pool"]
        cap = GaugeMetricFamily("grants_pool_cap_yuan", "The pool's cap.", labels=labels)
        committed = GaugeMetricFamily(
            "grants_pool_committed_yuan",
            "Committed against the pool (its maintained counter).",
            labels=labels,
        )
        disbursed = GaugeMetricFamily(
            "grants_pool_disbursed_yuan", "Paid out of the pool (its maintained counter).", labels=labels
        )
        pools = FundingPool.objects.order_by().values_list(
            "programme__city__code", "programme__code", "code", "cap", "committed", "disbursed"
        )
        for city, programme, code, pool_cap, pool_committed, pool_disbursed in pools:
            name = [city, f"{city}-{programme}-{code}"]
            cap.add_metric(name, float(pool_cap))
            committed.add_metric(name, float(pool_committed))
            disbursed.add_metric(name, float(pool_disbursed))
        yield from (cap, committed, disbursed)

        alerts = GaugeMetricFamily(
            "grants_budget_alerts_open",
            "Budget alerts not cleared, per kind (drift: counters differ from the ledger) and severity.",
            labels=["kind", "severity"],
        )
        # Served by the partial unique index on live alerts (cleared_at IS NULL).
        open_alerts = (
            BudgetAlert.objects.filter(cleared_at__isnull=True)
            .order_by()
            .values_list("kind", "severity")
            .annotate(n=Count("id"))
        )
        for kind, severity, n in open_alerts:
            alerts.add_metric([kind, severity], n)
        yield alerts

        # Served by outbox_pending_idx (sent_at IS NULL).
        pending = (
            OutboxMessage.objects.filter(sent_at__isnull=True)
            .order_by()
            .aggregate(n=Count("id"), oldest=Min("created_at"))
        )
        yield GaugeMetricFamily(
            "grants_outbox_backlog", "Money-moved notices not yet sent by the worker.", value=pending["n"]
        )
        oldest = pending["oldest"]
        age = max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0
        yield GaugeMetricFamily(
            "grants_outbox_oldest_age_seconds", "Age of the oldest unsent notice (0 when none).", value=age
        )


class BrokerCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "grants_broker_up", "1 when the scrape could read the Celery broker, 0 otherwise."
        )
        depth = GaugeMetricFamily(
            "grants_celery_queue_length", "Jobs waiting in each Celery queue.", labels=["queue"]
        )
        try:
            lengths = queue_lengths()
        except Exception:
            logger.warning("metrics: the broker did not answer", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for queue, length in sorted(lengths.items()):
            depth.add_metric([queue], length)
        yield up
        yield depth


def queues() -> list[str]:
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    return sorted({"celery", *routed})


def queue_lengths() -> dict[str, int]:
    """LLEN of each queue's lists on Redis (one round trip, short timeouts); with the development file broker,
    the messages waiting in its folder."""
    if settings.REDIS_URL:
        client: Any = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
            socket_timeout=BROKER_TIMEOUT_SECONDS,
        )
        try:
            pipe = client.pipeline(transaction=False)
            for queue in queues():
                for priority in REDIS_PRIORITY_STEPS:
                    pipe.llen(f"{queue}\x06\x16{priority}" if priority else queue)
            counts = iter(pipe.execute())
            return {queue: sum(next(counts) for _ in REDIS_PRIORITY_STEPS) for queue in queues()}
        finally:
            client.close()
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
    return {queue: sum(1 for _ in Path(str(folder)).glob(f"*.{queue}.msg")) for queue in queues()}
