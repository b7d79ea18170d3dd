"""/metrics for Prometheus (docs/operations.md, "Metrics"): a bearer token or nothing; the money figures from the
pools' counters; approvals, refusals by level and replays counted; a database or broker that does not answer is a
metric, never a failed scrape; several gunicorn processes add up.

Counters are process-wide and live on between tests, so every test reads them before and after what it does.
"""

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from celery import signals
from django.db import OperationalError, connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from grants import metrics, services, tasks
from grants.errors import BudgetExceeded
from grants.metrics import worker
from grants.models import FundingPool, OutboxMessage
from tests import factories as f
from tests.grants.invariants import refused, state

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "metrics-token-for-the-tests-0123456789abcdef"
PORTS = iter(range(18610, 18690))  # this suite's private port range


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sample's value, 0 when absent (a counter never incremented is not exported yet)."""
        found = [
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(found) <= 1, (name, labels, found)
        return found[0] if found else 0.0


@pytest.fixture
def scrape(client, settings):
    settings.METRICS_TOKEN = TOKEN

    def get() -> Scrape:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain; version=")
        return Scrape(response.content.decode())

    return get


@pytest.fixture
def small_pool(shanghai):
    """1.5 M cap: one 1 M award fits, a second does not."""
    return f.pool(f.programme(shanghai), cap="1500000")


@pytest.fixture
def ready_to_approve(small_pool, shanghai, carol, alice, rita):
    def make():
        inst = f.institution(shanghai, carol)
        app = f.application(small_pool, inst, carol, requested="1000000", cost="4000000")
        return f.reviewed(app, carol, alice, rita)

    return make


def pool_label(pool: FundingPool) -> dict[str, str]:
    programme = pool.programme
    return {"city": programme.city.code, "pool": f"{programme.city.code}-{programme.code}-{pool.code}"}


# --- Who may scrape ------------------------------------------------------------------------------------------


def test_metrics_is_not_found_while_no_token_is_configured(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_metrics_refuses_a_missing_or_wrong_token_and_any_write(client, settings):
    settings.METRICS_TOKEN = TOKEN
    for header in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": f"Basic {TOKEN}"}):
        response = client.get("/metrics", **header)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"grants_" not in response.content
    posted = client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert posted.status_code == 405


@pytest.mark.django_db
def test_metrics_answers_the_containers_own_address_over_plain_http(scrape, client, settings):
    """Prometheus scrapes the container's address on the private network, like the probes."""
    settings.ALLOWED_HOSTS = ["grants.example.gov.cn"]
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/metrics", HTTP_HOST="10.0.3.7:8000", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert client.get("/api/v1/pools/", HTTP_HOST="10.0.3.7:8000").status_code == 400  # everything else: no


# --- The money ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_pool_gauges_move_by_exactly_the_approved_amount(
    scrape, small_pool, ready_to_approve, alice, django_capture_on_commit_callbacks
):
    label = pool_label(small_pool)
    app = ready_to_approve()
    before = scrape()
    assert before.value("grants_pool_cap_yuan", **label) == 1_500_000
    with django_capture_on_commit_callbacks(execute=True):
        award = services.approve_application(application=app, actor=alice)
    after = scrape()
    moved = after.value("grants_pool_committed_yuan", **label) - before.value(
        "grants_pool_committed_yuan", **label
    )
    assert Decimal(str(moved)) == award.amount == Decimal("1000000.00")
    assert after.value("grants_pool_disbursed_yuan", **label) == 0
    approvals = "grants_transitions_total"
    assert (
        after.value(approvals, action="application.approve")
        == before.value(approvals, action="application.approve") + 1
    )


@pytest.mark.django_db
def test_a_refused_approval_moves_no_gauge_and_counts_no_approval(
    scrape, ready_to_approve, alice, small_pool
):
    services.approve_application(application=ready_to_approve(), actor=alice)
    second = ready_to_approve()
    before = scrape()
    with refused(BudgetExceeded, level="pool_cap"):
        services.approve_application(application=second, actor=alice)
    after = scrape()
    assert after.value("grants_pool_committed_yuan", **pool_label(small_pool)) == 1_000_000
    assert after.value("grants_transitions_total", action="application.approve") == before.value(
        "grants_transitions_total", action="application.approve"
    )


@pytest.mark.django_db
def test_approval_over_http_counts_latency_replay_and_refusal_by_level(
    scrape, ready_to_approve, alice, small_pool, django_capture_on_commit_callbacks
):
    api = APIClient()
    api.force_authenticate(alice)
    first, second = ready_to_approve(), ready_to_approve()
    view = {"view": "applications-approve", "method": "POST"}
    refusal = {"kind": "api", "code": "budget_exceeded", "level": "pool_cap"}
    before = scrape()

    url = f"/api/v1/applications/{first.pk}/approve/"
    with django_capture_on_commit_callbacks(execute=True):
        answers = [api.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="m-1") for _ in range(2)]
    assert [a.status_code for a in answers] == [201, 201]
    unchanged = state()
    over = api.post(f"/api/v1/applications/{second.pk}/approve/", {}, format="json")
    assert over.status_code == 409
    assert over.json()["details"]["level"] == "pool_cap"
    assert state() == unchanged
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("grants_http_request_duration_seconds_count", **view) == 3
    assert delta("grants_http_responses_total", status="201", **view) == 2
    assert delta("grants_http_responses_total", status="409", **view) == 1
    assert delta("grants_idempotent_replays_total", view="applications-approve") == 1
    assert delta("grants_refusals_total", **refusal) == 1
    assert delta("grants_transitions_total", action="application.approve") == 1
    assert delta("grants_pool_committed_yuan", **pool_label(small_pool)) == 1_000_000


@pytest.mark.django_db
def test_a_failed_log_in_is_counted(scrape, alice):
    before = scrape()
    wrong = "Basic " + base64.b64encode(b"alice:wrong password").decode()
    answer = APIClient().post("/api/v1/tokens/", {"name": "x"}, format="json", HTTP_AUTHORIZATION=wrong)
    assert answer.status_code == 401
    after = scrape()
    login = {"kind": "login", "code": "invalid_credentials", "level": ""}
    assert after.value("grants_refusals_total", **login) == before.value("grants_refusals_total", **login) + 1


def test_count_refusal_is_the_hook_for_other_refusals():
    labels = {"kind": "login", "code": "delayed", "level": ""}
    before = metrics.REFUSALS.labels(**labels)._value.get()
    metrics.count_refusal("login", code="delayed")
    assert metrics.REFUSALS.labels(**labels)._value.get() == before + 1


# --- The backlog: outbox and queues -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_outbox_backlog_and_the_age_of_its_oldest_message(scrape, sh_pool):
    assert scrape().value("grants_outbox_backlog") == 0
    assert scrape().value("grants_outbox_oldest_age_seconds") == 0
    now = timezone.now()
    OutboxMessage.objects.create(pool=sh_pool, entry_ids=[1], created_at=now - timedelta(minutes=10))
    OutboxMessage.objects.create(pool=sh_pool, entry_ids=[2], created_at=now - timedelta(minutes=1))
    OutboxMessage.objects.create(
        pool=sh_pool, entry_ids=[3], created_at=now - timedelta(hours=2), sent_at=now
    )
    figures = scrape()
    assert figures.value("grants_outbox_backlog") == 2
    assert 600 <= figures.value("grants_outbox_oldest_age_seconds") < 7200


@pytest.mark.django_db
def test_queue_depth_with_the_file_broker(scrape, settings, tmp_path):
    settings.REDIS_URL = ""
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path)}
    settings.CELERY_TASK_ROUTES = {"grants.export": {"queue": "exports"}}
    for name in ("1_a.celery.msg", "2_b.celery.msg", "3_c.exports.msg"):
        (tmp_path / name).write_text("{}")
    figures = scrape()
    assert figures.value("grants_broker_up") == 1
    assert figures.value("grants_celery_queue_length", queue="celery") == 2
    assert figures.value("grants_celery_queue_length", queue="exports") == 1


@pytest.mark.redis
@pytest.mark.django_db
def test_queue_depth_is_the_length_of_each_redis_queue(scrape, settings):
    import redis

    settings.REDIS_URL = os.environ["REDIS_URL"]
    settings.CELERY_TASK_ROUTES = {"grants.export": {"queue": "exports"}}
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = ["celery", "celery\x06\x169", "exports"]
    client.delete(*keys)
    try:
        client.lpush("celery", "a", "b")
        client.lpush("celery\x06\x169", "c")  # kombu's list for priority 9
        figures = scrape()
    finally:
        client.delete(*keys)
    assert figures.value("grants_broker_up") == 1
    assert figures.value("grants_celery_queue_length", queue="celery") == 3
    assert figures.value("grants_celery_queue_length", queue="exports") == 0


@pytest.mark.django_db
def test_a_broker_that_does_not_answer_is_a_metric_not_a_failed_scrape(scrape, settings, sh_pool):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    figures = scrape()
    assert figures.value("grants_broker_up") == 0
    assert figures.value("grants_database_up") == 1
    assert figures.value("grants_pool_cap_yuan", **pool_label(sh_pool)) > 0


@pytest.mark.django_db
def test_a_database_that_does_not_answer_is_a_metric_not_a_failed_scrape(scrape, sh_pool):
    def down(execute, sql, params, many, context):
        raise OperationalError("server closed the connection unexpectedly")

    with connection.execute_wrapper(down):
        figures = scrape()
    assert figures.value("grants_database_up") == 0
    assert "grants_pool_cap_yuan" not in figures.text
    assert figures.value("grants_broker_up") == 1


# --- Jobs ---------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_job_outcomes_are_counted(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    success = metrics.TASKS.labels(task="grants.sweep_tracking", outcome="success")
    before = success._value.get()
    tasks.sweep_tracking.apply().get()
    assert success._value.get() == before + 1
    for signal_, outcome in ((signals.task_failure, "failure"), (signals.task_retry, "retry")):
        counter = metrics.TASKS.labels(task="grants.sweep_tracking", outcome=outcome)
        before = counter._value.get()
        signal_.send(sender=tasks.sweep_tracking, request=None, exception=RuntimeError("x"))
        assert counter._value.get() == before + 1


def test_a_worker_serves_its_own_counters_on_its_internal_port():
    metrics.TASKS.labels(task="grants.drain_outbox", outcome="success").inc()
    port = next(PORTS)
    server = worker.start_endpoint(f"127.0.0.1:{port}")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            body = answer.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert Scrape(body).value("grants_celery_tasks_total", task="grants.drain_outbox", outcome="success") >= 1


# --- Several processes ------------------------------------------------------------------------------------------


def dead_pid() -> int:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(finished.stdout)


def test_start_deletes_the_files_of_dead_processes_and_keeps_the_living(tmp_path, monkeypatch):
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path / "prom"))
    folder = tmp_path / "prom"
    folder.mkdir()
    gone = dead_pid()
    names = [
        f"counter_{os.getpid()}.db",
        f"histogram_{os.getpid()}.db",
        f"counter_{gone}.db",
        f"gauge_all_{gone}.db",
    ]
    for name in names:
        (folder / name).write_bytes(b"")
    metrics.prepare_multiprocess_dir()
    assert sorted(p.name for p in folder.iterdir()) == sorted(names[:2])


def database_url() -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    return (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


@pytest.fixture
def gunicorn(transactional_db, tmp_path) -> Iterator[tuple[str, Path]]:
    """The Procfile's web command with production settings and three worker processes."""
    port = next(PORTS)
    folder = tmp_path / "prom"
    folder.mkdir()
    (folder / f"counter_{dead_pid()}.db").write_bytes(b"\0" * 8)  # left by a run that is over
    command = next(
        line.split(":", 1)[1].split()
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line.startswith("web:")
    )
    env = {
        **os.environ,
        "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}",
        "DEBUG": "0",
        "SECRET_KEY": "k" * 60,
        "ALLOWED_HOSTS": "127.0.0.1",
        "HTTPS_ONLY": "1",
        "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
        "DATABASE_URL": database_url(),
        "DB_CONN_MAX_AGE": "0",
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "3",
        "METRICS_TOKEN": TOKEN,
        metrics.MULTIPROC_ENV: str(folder),
        "LOG_FORMAT": "text",
    }
    log = (tmp_path / "web.log").open("wb")
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).close()  # noqa: S310
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "web.log").read_text()
                time.sleep(0.3)
        yield base, folder
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        log.close()


def get(url: str, **headers: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"X-Forwarded-Proto": "https", **headers})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.postgres
def test_the_counts_of_every_gunicorn_process_add_up(gunicorn):
    base, folder = gunicorn
    assert [p.name for p in folder.iterdir()] == [], "the dead run's file is gone, no process has counted yet"
    requests = 40
    statuses = [get(base + "/api/v1/pools/")[0] for _ in range(requests)]
    assert statuses == [401] * requests
    status, body = get(base + "/metrics", Authorization=f"Bearer {TOKEN}")
    assert status == 200
    figures = Scrape(body)
    labels = {"view": "pool-list", "method": "GET"}
    assert figures.value("grants_http_responses_total", status="401", **labels) == requests
    assert figures.value("grants_http_request_duration_seconds_count", **labels) == requests
    assert figures.value("grants_refusals_total", kind="api", code="not_authenticated", level="") == requests
    assert figures.value("grants_database_up") == 1
    assert get(base + "/metrics")[0] == 401
