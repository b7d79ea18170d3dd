"""Probes for the container runtime and the load balancer.

/healthz: the process answers (liveness); it touches neither the database nor the cache. /readyz: it can serve
requests: the database answers, every migration is applied, the Celery broker accepts a connection and the cache
answers (readiness). Requests go on without the broker and the cache, but someone should look. Both answer JSON;
/readyz answers 503 naming the failed check, never the error text, which could carry host names or credentials.

`python -m config.health` runs the readiness checks once and exits 0 or 1: the health check of the containers
that serve no HTTP (beat), proving they reach what they need.
"""

import logging
import os
import sys
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path
from django.views.decorators.http import require_safe
from kombu import Connection

logger = logging.getLogger("config.health")  # also when run as `python -m config.health`

BROKER_TIMEOUT_SECONDS = 2
CACHE_PROBE_KEY = "grants:readyz"


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def check_migrations() -> str:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise RuntimeError(f"{len(plan)} migrations not applied")
    return "ok"


def check_broker() -> str:
    from config.celery import app

    url = settings.CELERY_BROKER_URL
    # One attempt with short socket timeouts: a probe that waits for the broker's own retry loop is no probe.
    options = {
        **app.conf.broker_transport_options,
        "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
        "socket_timeout": BROKER_TIMEOUT_SECONDS,
    }
    with Connection(url, connect_timeout=BROKER_TIMEOUT_SECONDS, transport_options=options) as broker:
        broker.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
        transport = broker.transport_cls
    # The file broker of the development setup has no server to reach; say so rather than claim one answered.
    return "ok (filesystem broker)" if transport == "filesystem" else "ok"


def check_cache() -> str:
    """A write and a read through the default cache (shared by every web process when CACHE_URL is set), with its
    own short socket timeouts (config/settings.py)."""
    cache = caches["default"]
    cache.set(CACHE_PROBE_KEY, "1", timeout=10)
    if cache.get(CACHE_PROBE_KEY) != "1":
        raise RuntimeError("the cache did not return what was written")
    # The local-memory cache of development is per process: say so rather than claim a shared cache answered.
    return "ok" if isinstance(cache, RedisCache) else "ok (local memory)"


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "migrations": check_migrations,
    "broker": check_broker,
    "cache": check_cache,
}


def run_checks() -> tuple[bool, dict[str, str]]:
    results: dict[str, str] = {}
    ready = True
    for name, check in CHECKS.items():
        if name == "migrations" and results.get("database") != "ok":
            results[name] = "skipped: database unavailable"
            continue
        started = time.monotonic()
        try:
            results[name] = check()
        except Exception as exc:
            ready = False
            results[name] = f"failed: {type(exc).__name__}"
            logger.warning(
                "readiness check %s failed",
                name,
                exc_info=True,
                extra={"check": name, "elapsed_ms": round((time.monotonic() - started) * 1000)},
            )
    return ready, results


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    ready, results = run_checks()
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": results},
        status=200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )


PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {"/healthz": healthz, "/readyz": readyz}


class ProbeMiddleware:
    """Answers the probes before host validation and the HTTPS redirect.

    Probes come from the container runtime or the load balancer over plain HTTP, addressed to the container's
    own address; ALLOWED_HOSTS and SECURE_SSL_REDIRECT are right to refuse such requests from anyone else.
    First in MIDDLEWARE; the same views stay routable through urlpatterns.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)


urlpatterns: list[URLPattern] = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
]


def main() -> int:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    ready, results = run_checks()
    for name, result in results.items():
        print(f"{name}: {result}")
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())
