"""What a Celery worker counts: every job's outcome, from Celery's own signals (imported through CELERY_IMPORTS).

The counts go to the worker's PROMETHEUS_MULTIPROC_DIR like the web processes' (the prefork children count, the
main process only starts). Where the worker shares a host and that folder with gunicorn (Procfile on one machine,
`make e2e`), the web's /metrics includes them. In separate containers, METRICS_WORKER_BIND=0.0.0.0:9808 makes the
worker's main process serve its own /metrics on that internal port, which Prometheus scrapes beside the web's.
"""

import logging
from typing import Any

from celery import signals
from django.conf import settings
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from grants import metrics
from grants.metrics import receivers  # noqa: F401  (transitions audited by jobs count too)

logger = logging.getLogger(__name__)


def _task_name(sender: Any) -> str:
    return str(getattr(sender, "name", None) or "unknown")


@signals.task_success.connect(dispatch_uid="grants.metrics.task_success")
def count_success(sender: Any = None, **kwargs: Any) -> None:
    metrics.TASKS.labels(task=_task_name(sender), outcome="success").inc()


@signals.task_failure.connect(dispatch_uid="grants.metrics.task_failure")
def count_failure(sender: Any = None, **kwargs: Any) -> None:
    metrics.TASKS.labels(task=_task_name(sender), outcome="failure").inc()


@signals.task_retry.connect(dispatch_uid="grants.metrics.task_retry")
def count_retry(sender: Any = None, **kwargs: Any) -> None:
    metrics.TASKS.labels(task=_task_name(sender), outcome="retry").inc()


@signals.worker_ready.connect(dispatch_uid="grants.metrics.worker_ready")
def serve_worker_metrics(sender: Any = None, **kwargs: Any) -> None:
    metrics.prepare_multiprocess_dir()
    if settings.METRICS_WORKER_BIND:
        start_endpoint(settings.METRICS_WORKER_BIND)


def start_endpoint(bind: str) -> Any:
    """Serve the worker's counters on host:port (prometheus-client's own HTTP server, in a daemon thread).
    Returns the server, so that a test can shut it down."""
    folder = metrics.multiprocess_dir()
    registry = CollectorRegistry(auto_describe=False)
    if folder is not None:
        MultiProcessCollector(registry, path=str(folder))
    else:
        registry = metrics.PROCESS
    host, _, port = bind.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host or "0.0.0.0", registry=registry)  # noqa: S104
    logger.info("worker metrics on %s", bind, extra={"bind": bind})
    return server
