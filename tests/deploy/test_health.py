"""/healthz answers while the process lives; /readyz answers 200 only when the database, the migrations, the
broker and the cache are all in order, and 503 naming the failed check otherwise."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import OperationalError
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client

from config import health

ROOT = Path(__file__).resolve().parents[2]
# Nothing listens on port 1: the connection is refused at once, like a broker that is down.
DEAD_BROKER = "redis://127.0.0.1:1/0"
DEAD_CACHE = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/1",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}


def test_healthz_answers_without_touching_the_database(client):
    response = client.get("/healthz")  # no django_db mark: a query would raise
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_readyz_is_ok_when_everything_is_reachable(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"] == "ok"
    assert body["checks"]["broker"].startswith("ok")
    assert body["checks"]["cache"] == "ok (local memory)"  # development's per-process cache, said as such


def test_healthz_answers_without_the_cache(client, settings):
    settings.CACHES = DEAD_CACHE
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_readyz_is_unavailable_when_the_cache_is_down(client, settings):
    settings.CACHES = DEAD_CACHE
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["cache"] == "failed: ConnectionError"
    assert checks["database"] == checks["migrations"] == "ok"


@pytest.mark.redis
@pytest.mark.django_db
def test_readyz_reaches_the_redis_cache(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
        }
    }
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["cache"] == "ok"


@pytest.mark.django_db
def test_readyz_says_when_the_broker_is_the_file_broker(client, settings):
    settings.CELERY_BROKER_URL = "filesystem://"
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["broker"] == "ok (filesystem broker)"


@pytest.mark.redis
@pytest.mark.django_db
def test_readyz_reaches_the_redis_broker(client, settings):
    settings.CELERY_BROKER_URL = os.environ["REDIS_URL"]
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["broker"] == "ok"


class BrokenConnection:
    def cursor(self):
        raise OperationalError("connection to server at 10.0.0.5 failed: password authentication failed")


@pytest.mark.django_db
def test_readyz_is_unavailable_when_the_database_is_down(client, monkeypatch):
    monkeypatch.setattr(health, "connection", BrokenConnection())
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "failed: OperationalError"
    assert body["checks"]["migrations"] == "skipped: database unavailable"
    # The answer names the check, never the error text: it could carry hosts or credentials.
    assert "password" not in response.content.decode()
    assert "10.0.0.5" not in response.content.decode()


@pytest.mark.django_db
def test_readyz_is_unavailable_while_a_migration_is_not_applied(client):
    latest = MigrationRecorder.Migration.objects.filter(app="grants").order_by("-id").first()
    assert latest is not None
    MigrationRecorder.Migration.objects.filter(pk=latest.pk).delete()  # rolled back with the test
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "failed: RuntimeError"


@pytest.mark.django_db
def test_readyz_is_unavailable_at_once_when_the_broker_is_down(client, settings):
    settings.CELERY_BROKER_URL = DEAD_BROKER
    started = time.monotonic()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("failed: ")
    assert response.json()["checks"]["database"] == "ok"
    assert time.monotonic() - started < health.BROKER_TIMEOUT_SECONDS + 3


@pytest.mark.django_db
def test_probes_pass_host_validation_and_the_https_redirect(settings):
    """The runtime probes the container by its own address over plain HTTP; everyone else is held to the rules."""
    settings.ALLOWED_HOSTS = ["grants.example.gov.cn"]
    settings.SECURE_SSL_REDIRECT = True
    client = Client(HTTP_HOST="172.18.0.5:8000")
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/admin/login/").status_code == 400
    public = Client(HTTP_HOST="grants.example.gov.cn")
    redirect = public.get("/admin/login/")
    assert redirect.status_code == 301
    assert redirect["Location"].startswith("https://grants.example.gov.cn/")


def test_a_post_to_a_probe_is_not_answered_by_the_probe(client):
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_pages_carry_the_content_security_policy(client):
    response = client.get("/admin/login/")
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "object-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]


def test_the_command_line_probe_fails_when_the_broker_is_down():
    """`python -m config.health` is the health check of the beat container."""
    env = {**os.environ, "SECRET_KEY": "x", "REDIS_URL": DEAD_BROKER}
    result = subprocess.run(
        [sys.executable, "-m", "config.health"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "broker: failed" in result.stdout
