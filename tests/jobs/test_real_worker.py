"""The jobs against real services (§5, §10 faults): a Celery worker and beat run as subprocesses against Redis and
the PostgreSQL test database this test writes to. Each test is bounded in time and stops what it started.

Run: DATABASE_URL=postgres://... REDIS_URL=redis://127.0.0.1:6379/<n> pytest tests/jobs/test_real_worker.py -s
(-s shows the measured figures).
"""

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings

from config.celery import app as celery_app
from grants import tasks
from grants.models import BudgetAlert, FundingPool, UsageSnapshot, WebhookDelivery, WebhookEndpoint
from tests import factories as f

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
OWN_REDIS_PORT = 6390
# The production app with slow paths patched in by the test suite only (tests/jobs/slow_worker.py).
SLOW_APP = "tests.jobs.slow_worker"


def database_url() -> str:
    """The test database (test_<name>), as the worker subprocess must see it."""
    db = django_settings.DATABASES["default"]
    auth = quote(db.get("USER") or "postgres")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def wait_for(condition: Callable[[], Any], timeout: float, what: str, step: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def purge(redis_url: str) -> None:
    """Drop messages and claims left in this Redis database by earlier runs."""
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = [
        b"celery",
        b"unacked",
        b"unacked_index",
        b"grants:outbox-queued",
        *client.scan_iter("grants:track-queued:*"),
    ]
    client.delete(*keys)


class Worker:
    """`celery -A config worker --beat` in its own process group, logging to a file. `start(app=SLOW_APP, ...)`
    runs the fault tests' slow app instead."""

    def __init__(self, tmp: Path, redis_url: str, **env: str) -> None:
        self.tmp, self.redis_url, self.extra = tmp, redis_url, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / f"worker-{uuid.uuid4().hex[:6]}.log"

    def start(self, app: str = "config", **env: str) -> "Worker":
        self.log = self.tmp / f"worker-{uuid.uuid4().hex[:6]}.log"
        environ = {
            **os.environ,
            "SECRET_KEY": "x",
            "DATABASE_URL": database_url(),
            "DB_CONN_MAX_AGE": "0",
            "REDIS_URL": self.redis_url,
            "CELERY_DATA_DIR": str(self.tmp / "celery"),
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "JOBS_TRACKING_COALESCE_SECONDS": "1",
            "JOBS_SWEEP_WEBHOOKS_SECONDS": "2",
            # The test's webhook receiver listens on loopback, which webhook targets may not be by default.
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "text",
            **self.extra,
            **env,
        }
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(ROOT / ".venv/bin/celery"), "-A", app, "worker", "--beat", "--loglevel", "INFO",
                 "--concurrency", "2", "--schedule", str(self.tmp / f"beat-{uuid.uuid4().hex[:6]}"),
                 "--hostname", f"jobs-test-{uuid.uuid4().hex[:6]}@%h"],
                cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_for(lambda: "ready." in self.text(), 60, "the worker to start")
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


@pytest.fixture
def worker(transactional_db, tmp_path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def make(redis_url: str | None = None, **env: str) -> Worker:
        url = redis_url or os.environ["REDIS_URL"]
        purge(url)
        w = Worker(tmp_path, url, **env)
        started.append(w)
        return w

    try:
        yield make
    finally:
        for w in started:
            w.stop()


@pytest.fixture
def personas(transactional_db):
    from django.contrib.auth.models import Group

    from grants.roles import Role

    # A transactional test empties every table afterwards, the role groups of the data migration included.
    for role in Role:
        Group.objects.get_or_create(name=role.value)
    sh = f.city("SH")
    alice = f.user("alice", roles=(Role.PROGRAMME_OFFICER,), cities=(sh,))
    rita = f.user("rita", roles=(Role.REVIEWER,), cities=(sh,))
    carol = f.user("carol")
    inst = f.institution(sh, carol, type="startup")
    pool = f.pool(f.programme(sh), code="SML", cap="10000000")
    return {"city": sh, "alice": alice, "rita": rita, "carol": carol, "inst": inst, "pool": pool}


def approve(p: dict, requested: str) -> None:
    f.award(p["pool"], p["inst"], p["carol"], p["alice"], p["rita"], requested=requested)


def test_an_approval_leads_to_a_snapshot_one_alert_and_one_signed_webhook(worker, personas, receiver):
    WebhookEndpoint.objects.create(
        city=personas["city"], url=receiver.url, secret=receiver.secret, events=["budget.alert"]
    )
    worker(JOBS_SWEEP_TRACKING_SECONDS="2").start()
    approve(personas, "5500000")  # 55% of the cap: past the 50% threshold

    wait_for(lambda: receiver.requests, 60, "the alert webhook")
    time.sleep(5)  # room for a duplicate to show up: a sweep or two runs meanwhile
    pool = personas["pool"]
    (alert,) = BudgetAlert.objects.filter(pool=pool)
    assert (alert.kind, alert.subject) == ("threshold", 50)
    (request,) = receiver.requests
    assert request["verified"] and request["event_id"] == f"alert-{alert.pk}"
    assert request["body"]["data"]["figures"]["committed"] == "5500000.00"
    assert WebhookDelivery.objects.get().status == "delivered"
    snap = UsageSnapshot.objects.filter(pool=pool).first()
    assert snap is not None and snap.ledger_committed == snap.committed == 5500000
    assert FundingPool.objects.get(pk=pool.pk).tracking_due_at is None


def test_a_worker_killed_mid_job_has_its_job_redelivered_with_one_effect(worker, personas):
    pool = personas["pool"]
    # No sweep during the test: only the redelivered message can finish the job.
    w = worker(JOBS_SWEEP_TRACKING_SECONDS="3600").start(SLOW_APP, SLOW_TRACKING_SECONDS="10")
    approve(personas, "8500000")
    task_id = wait_for(
        lambda: next(
            (line.split("[")[1].split("]")[0] for line in w.text().splitlines() if "track_pool[" in line),
            None,
        ),
        30,
        "the tracking job to start",
    )
    time.sleep(3)  # inside the job, before it writes
    w.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    assert not UsageSnapshot.objects.filter(pool=pool).exists()

    w.start()  # a new process, not slowed: it restores the unacknowledged message
    wait_for(lambda: UsageSnapshot.objects.filter(pool=pool).exists(), 90, "the redelivered job")
    delay = time.monotonic() - killed_at
    print(f"\nredelivery after SIGKILL: job done {delay:.1f}s after the kill (visibility timeout "
          f"{django_settings.JOBS_VISIBILITY_TIMEOUT}s)")  # fmt: skip
    assert f"track_pool[{task_id}] received" in w.text()  # the same message, not a new job
    time.sleep(3)
    assert UsageSnapshot.objects.filter(pool=pool).count() == 1
    assert sorted(BudgetAlert.objects.filter(pool=pool).values_list("subject", flat=True)) == [50, 80]
    assert delay < 60


@pytest.fixture
def own_redis(tmp_path) -> Iterator[Callable[[], None]]:
    """A redis-server of this test's own on port 6390, which the test may stop (never the shared one)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(
            subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(OWN_REDIS_PORT),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(tmp_path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_for(lambda: _ping(), 15, "redis-server on 6390")

    try:
        yield start
    finally:
        subprocess.run(
            ["redis-cli", "-p", str(OWN_REDIS_PORT), "shutdown", "nosave"], capture_output=True, timeout=10
        )
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def _ping() -> bool:
    out = subprocess.run(["redis-cli", "-p", str(OWN_REDIS_PORT), "ping"], capture_output=True, timeout=5)
    return out.stdout.strip() == b"PONG"


@pytest.fixture
def broker_on_own_redis(settings) -> Iterator[str]:
    """Point this process's queueing (and coalescing claims) at the test's own Redis."""
    url = f"redis://127.0.0.1:{OWN_REDIS_PORT}/0"
    old = celery_app.conf.broker_url
    settings.REDIS_URL = url

    def reset(to: str) -> None:
        # Celery caches its connection and producer pools (as it does after a fork): drop them to switch broker.
        celery_app.conf["broker_url"] = to
        celery_app._after_fork()  # type: ignore[attr-defined]

    reset(url)
    try:
        yield url
    finally:
        reset(old)


def test_approvals_succeed_while_redis_is_down_and_the_next_sweep_catches_up(
    worker, personas, own_redis, broker_on_own_redis
):
    pool = personas["pool"]
    own_redis()
    w = worker(broker_on_own_redis, JOBS_SWEEP_TRACKING_SECONDS="3").start()
    approve(personas, "1000000")
    wait_for(
        lambda: UsageSnapshot.objects.filter(pool=pool, committed=1000000).exists(), 30, "a first snapshot"
    )
    # Stop Redis while the worker holds a message (a coalesced job waiting out its countdown): the case where an
    # unpatched kombu 5.7 leaves the worker hung (config/celery.py).
    approve(personas, "1")
    time.sleep(0.3)

    subprocess.run(
        ["redis-cli", "-p", str(OWN_REDIS_PORT), "shutdown", "nosave"], capture_output=True, timeout=10
    )
    wait_for(lambda: not _ping(), 10, "Redis to stop")
    timings = []
    for requested in ("3000000", "2000000", "2500000"):
        started = time.monotonic()
        approve(personas, requested)  # raises if the broker outage leaked into the request
        timings.append(time.monotonic() - started)
    assert FundingPool.objects.get(pk=pool.pk).committed == 8500001
    assert FundingPool.objects.get(pk=pool.pk).tracking_due_at is not None
    print(f"\napprovals with Redis down took {', '.join(f'{t:.2f}s' for t in timings)}")

    own_redis()  # Redis returns, empty: the messages queued before the outage are gone too
    restored_at = time.monotonic()
    wait_for(
        lambda: UsageSnapshot.objects.filter(pool=pool, committed=8500001).exists(),
        90,
        "the sweep to catch up",
    )
    print(f"caught up {time.monotonic() - restored_at:.1f}s after Redis returned")
    assert "Unrecoverable error" not in w.text()
    assert sorted(BudgetAlert.objects.filter(pool=pool).values_list("subject", flat=True)) == [50, 80]
    assert FundingPool.objects.get(pk=pool.pk).tracking_due_at is None
    assert all(t < 10 for t in timings)


def test_the_same_job_delivered_twice_at_once_has_one_effect(worker, personas, monkeypatch):
    pool = personas["pool"]
    monkeypatch.setattr(tasks, "money_moved", lambda pool_id, entry_ids: None)  # queue nothing by itself
    approve(personas, "9600000")
    w = worker(JOBS_SWEEP_TRACKING_SECONDS="3600").start(SLOW_APP, SLOW_TRACKING_SECONDS="2")
    task_id = str(uuid.uuid4())
    for _ in range(2):
        tasks.track_pool.apply_async((pool.pk,), task_id=task_id)

    wait_for(lambda: w.text().count(f"track_pool[{task_id}] succeeded") == 2, 60, "both deliveries")
    assert "'ran': True" in w.text() and "'ran': False" in w.text()
    assert UsageSnapshot.objects.filter(pool=pool).count() == 1
    assert sorted(BudgetAlert.objects.filter(pool=pool).values_list("subject", flat=True)) == [50, 80, 95]
