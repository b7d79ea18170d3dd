"""Scaling out without new code: report reads on a read replica, jobs of one kind on their own queue."""

import json
import os
import subprocess
import sys
from pathlib import Path

from django.contrib.auth.models import User
from django.http import HttpResponse, StreamingHttpResponse
from django.test import RequestFactory

from cities.models import City
from config.db_router import REPLICA, ReportsReplicaMiddleware, ReportsReplicaRouter
from grants.models import ApiToken, IdempotencyRecord, Tranche, UsageSnapshot

ROOT = Path(__file__).resolve().parents[2]
router = ReportsReplicaRouter()


def reads_during(path: str, method: str = "get") -> dict[str, str | None]:
    """Where each model would be read from while the middleware answers `path`."""
    seen: dict[str, str | None] = {}

    def view(request):
        for model in (Tranche, UsageSnapshot, City, ApiToken, IdempotencyRecord, User):
            seen[model.__name__] = router.db_for_read(model)
        return HttpResponse("ok")

    ReportsReplicaMiddleware(view)(getattr(RequestFactory(), method)(path))
    return seen


def test_report_requests_read_the_domain_from_the_replica():
    seen = reads_during("/api/v1/reports/disbursements/")
    assert seen["Tranche"] == seen["UsageSnapshot"] == seen["City"] == REPLICA


def test_credentials_and_idempotency_are_always_read_from_the_primary():
    seen = reads_during("/api/v1/reports/budget/")
    assert seen["ApiToken"] is None
    assert seen["IdempotencyRecord"] is None
    assert seen["User"] is None


def test_other_requests_and_writes_use_the_primary():
    assert set(reads_during("/api/v1/tranches/").values()) == {None}
    assert set(reads_during("/api/v1/reports/disbursements/", method="post").values()) == {None}
    assert router.db_for_read(Tranche) is None  # outside any request
    assert router.db_for_write(Tranche) is None


def test_a_streamed_report_reads_the_replica_while_it_is_sent():
    def rows():
        for _ in range(3):
            yield f"{router.db_for_read(Tranche)}\n"

    response = ReportsReplicaMiddleware(lambda request: StreamingHttpResponse(rows()))(
        RequestFactory().get("/api/v1/reports/disbursements/", {"format": "csv"})
    )
    assert isinstance(response, StreamingHttpResponse)
    assert router.db_for_read(Tranche) is None  # the middleware has returned
    assert b"".join(response).decode().split() == [REPLICA] * 3
    assert router.db_for_read(Tranche) is None


def test_migrations_never_run_on_the_replica():
    assert router.allow_migrate(REPLICA, "grants") is False
    assert router.allow_migrate("default", "grants") is True


def settings_in_a_fresh_process(**env: str) -> subprocess.CompletedProcess[str]:
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps({"
        "'aliases': sorted(s.DATABASES), 'routers': s.DATABASE_ROUTERS, 'routes': s.CELERY_TASK_ROUTES,"
        "'middleware': s.MIDDLEWARE[:3], 'mirror': s.DATABASES.get('replica', {}).get('TEST', {}).get('MIRROR')}))"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "SECRET_KEY": "x", "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_replica_and_the_queues_come_from_the_environment():
    result = settings_in_a_fresh_process(
        REPORTS_DATABASE_URL="postgres://reports@replica.internal:5432/grants",
        CELERY_TASK_ROUTES="grants.export=exports, grants.deliver_webhook=webhooks",
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["aliases"] == ["default", "replica"]
    assert seen["routers"] == ["config.db_router.ReportsReplicaRouter"]
    assert seen["middleware"][:2] == [
        "config.health.ProbeMiddleware",
        "config.db_router.ReportsReplicaMiddleware",
    ]
    assert seen["mirror"] == "default"
    assert seen["routes"] == {
        "grants.export": {"queue": "exports"},
        "grants.deliver_webhook": {"queue": "webhooks"},
    }


def test_without_them_there_is_one_database_and_one_queue():
    env = dict.fromkeys(("REPORTS_DATABASE_URL", "CELERY_TASK_ROUTES"), "")
    seen = json.loads(settings_in_a_fresh_process(**env).stdout)
    assert seen["aliases"] == ["default"]
    assert seen["routers"] == []
    assert seen["routes"] == {}


def test_a_malformed_route_is_refused_at_start():
    result = settings_in_a_fresh_process(CELERY_TASK_ROUTES="grants.export")
    assert result.returncode != 0
    assert "is not <task name>=<queue>" in result.stderr
