"""Redis stopped under the production shape: gunicorn, a Celery worker and beat started with the commands of the
Procfile and the configuration docker-compose.yml gives them (the cache and the broker on one Redis, PostgreSQL,
DEBUG off, HTTPS behind a proxy header). The Redis is this test's own, on a private port, so it may stop it.

While it is down no request fails: API reads, approvals (money moving), portal log-ins; /readyz says what is down.
Once it is back, started empty so that anything queued before is gone too, every posting's money-moved webhook
arrives, once, and tracking catches up, with the default schedules (the drain every 10 s, the sweep every 60 s).

Run: DATABASE_URL=postgres://... REDIS_URL=redis://... pytest tests/deploy/test_redis_outage.py -s (-s prints the
figures).
"""

import os
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from grants.api.authentication import create_token
from grants.models import OutboxMessage, UsageSnapshot, WebhookEndpoint
from grants.roles import Role
from tests import factories as f
from tests.jobs.conftest import (  # the HTTPS webhook receiver and its certificate, fixtures
    Receiver,
    https_receiver,  # noqa: F401
    receiver_certificate,  # noqa: F401
)
from tests.jobs.test_real_worker import database_url, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
REDIS_PORT = 18100
WEB_PORT = 18101
BASE = f"http://127.0.0.1:{WEB_PORT}"
APPROVALS = 8
PASSWORD = "outage-test-password-7"


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {
        name.strip(): command.strip()
        for name, _, command in (
            line.partition(":") for line in lines if line.strip() and not line.startswith("#")
        )
    }


class Redis:
    """A redis-server of this test's own, without persistence: it comes back empty, as after losing its disk."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    def ping(self) -> bool:
        out = subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "ping"], capture_output=True, timeout=5)
        return out.stdout.strip() == b"PONG"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.ping, 15, f"redis-server on {REDIS_PORT}")

    def stop(self) -> None:
        subprocess.run(
            ["redis-cli", "-p", str(REDIS_PORT), "shutdown", "nosave"], capture_output=True, timeout=10
        )
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        wait_for(lambda: not self.ping(), 10, "Redis to stop")


@dataclass
class Service:
    redis: Redis
    logs: Path

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


@pytest.fixture
def service(transactional_db, tmp_path, receiver_certificate) -> Iterator[Service]:  # noqa: F811
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    redis = Redis(tmp_path)
    redis.start()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in {"CELERY_TASK_ALWAYS_EAGER", "DJANGO_SETTINGS_MODULE"}
        },
        "PATH": f"{ROOT / '.venv/bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "HTTPS_ONLY": "1",
        "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
        "DATABASE_URL": database_url() + "?connect_timeout=5",
        # docker-compose.yml: the broker and the cache on one Redis, databases 0 and 1.
        "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
        "CACHE_URL": f"redis://127.0.0.1:{REDIS_PORT}/1",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "CELERY_DATA_DIR": str(tmp_path / "celery"),
        "WEB_BIND": f"127.0.0.1:{WEB_PORT}",
        "WEB_CONCURRENCY": "2",
        "CELERY_WORKER_CONCURRENCY": "2",
        "LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        # The webhook receiver of the test listens on loopback, which webhooks refuse unless allowed, and speaks
        # HTTPS (production sends webhooks over https only) with a certificate the processes are made to trust.
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "SSL_CERT_FILE": str(receiver_certificate[0]),
    }
    (tmp_path / "celery").mkdir()
    subprocess.run(
        [str(ROOT / ".venv/bin/python"), "manage.py", "collectstatic", "--no-input", "-v", "0"],
        cwd=ROOT, env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    commands = procfile()
    procs: list[subprocess.Popen[bytes]] = []
    for name in ("web", "worker", "beat"):
        with open(tmp_path / f"{name}.log", "wb") as out:
            procs.append(
                subprocess.Popen(
                    commands[name].split(),
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        wait_for(lambda: _status("/readyz") == 200, 90, "/readyz")
        wait_for(lambda: "ready." in (tmp_path / "worker.log").read_text(errors="replace"), 60, "the worker")
        yield Service(redis, tmp_path)
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if redis.ping():
            redis.stop()


def _status(path: str) -> int:
    try:
        return requests.get(BASE + path, timeout=5).status_code
    except requests.RequestException:
        return 0


class Api:
    def __init__(self, key: str) -> None:
        self.headers = {"Authorization": f"Bearer {key}", "X-Forwarded-Proto": "https"}
        self.statuses: list[int] = []

    def call(self, method: str, path: str, **kw: Any) -> requests.Response | None:
        try:
            headers = {**self.headers, **kw.pop("headers", {})}
            response = requests.request(method, BASE + path, headers=headers, timeout=30, **kw)
        except requests.RequestException:
            self.statuses.append(0)
            return None
        self.statuses.append(response.status_code)
        return response

    @property
    def failed(self) -> int:
        return sum(1 for s in self.statuses if s == 0 or s >= 500)


@pytest.fixture
def world(transactional_db, https_receiver: Receiver) -> dict[str, Any]:  # noqa: F811
    receiver = https_receiver
    sh = f.city("SH")
    alice = f.user("alice", roles=(Role.PROGRAMME_OFFICER,), cities=(sh,))
    rita = f.user("rita", roles=(Role.REVIEWER,), cities=(sh,))
    carol = f.user("carol")
    carol.set_password(PASSWORD)
    carol.save(update_fields=["password"])
    pool = f.pool(f.programme(sh), code="SML", cap="100000000")
    apps = []
    for i in range(APPROVALS + 1):
        inst = f.institution(sh, carol, type="startup")  # one open application per institution and pool
        app = f.application(pool, inst, carol, requested=str(100000 * (i + 1)), cost=str(400000 * (i + 1)))
        apps.append(f.reviewed(app, carol, alice, rita))
    WebhookEndpoint.objects.create(city=sh, url=receiver.url, secret=receiver.secret, events=["money.moved"])
    _token, key = create_token(user=alice, actor=alice, name="outage test")
    return {"pool": pool, "apps": apps, "api": Api(key), "receiver": receiver}


def approve(api: Api, app_id: int) -> requests.Response | None:
    return api.call(
        "POST",
        f"/api/v1/applications/{app_id}/approve/",
        json={"milestone_gated": False},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )


def money_events(hooks: Receiver) -> list[str]:
    return [r["event_id"] for r in hooks.verified if r["event"] == "money.moved"]


def test_redis_stopped_fails_no_request_and_loses_no_notice(service, world):
    api, pool, hooks = world["api"], world["pool"], world["receiver"]
    first, *during = world["apps"]
    response = approve(api, first.pk)
    assert response is not None and response.status_code == 201
    wait_for(lambda: len(money_events(hooks)) == 1, 30, "the first money-moved webhook")

    service.redis.stop()
    api.statuses.clear()
    started = time.monotonic()
    ready = requests.get(BASE + "/readyz", timeout=30)
    for app in during:
        api.call("GET", "/api/v1/pools/")
        response = approve(api, app.pk)
        assert response is not None and response.status_code == 201, response and response.text
        api.call("GET", f"/api/v1/pools/{pool.pk}/")
        api.call("GET", f"/api/v1/applications/{app.pk}/")
        api.call("GET", "/api/v1/awards/")
    outage = time.monotonic() - started
    requests_sent = len(api.statuses)
    print(
        f"\nRedis stopped: {api.failed} of {requests_sent} requests failed "
        f"({len(during)} approvals) in {outage:.1f}s"
    )
    assert api.failed == 0, api.statuses
    assert ready.status_code == 503
    assert ready.json()["checks"]["cache"].startswith("failed") and ready.json()["checks"][
        "broker"
    ].startswith("failed")
    assert requests.get(BASE + "/healthz", timeout=5).status_code == 200
    assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == len(during)
    committed = Decimal(sum(100000 * (i + 1) for i in range(APPROVALS + 1)))

    service.redis.start()  # empty: whatever was queued before the outage is gone
    returned = time.monotonic()
    wait_for(lambda: len(money_events(hooks)) == APPROVALS + 1, 120, "every money-moved webhook")
    delivered_after = time.monotonic() - returned
    wait_for(
        lambda: UsageSnapshot.objects.filter(pool=pool, ledger_committed=committed).exists(), 120, "tracking"
    )
    tracked_after = time.monotonic() - returned
    print(
        f"Redis returned: {len(money_events(hooks)) - 1} of {len(during)} notices delivered after "
        f"{delivered_after:.1f}s; tracking caught up after {tracked_after:.1f}s"
    )
    events = money_events(hooks)
    assert len(set(events)) == len(events) == APPROVALS + 1  # each posting once
    assert not OutboxMessage.objects.filter(sent_at__isnull=True).exists()
    assert _status("/readyz") == 200
    assert "Unrecoverable error" not in service.log("worker")
    # Nothing went wrong in the web processes but /readyz saying, rightly, that Redis was down.
    web_errors = [
        line
        for line in service.log("web").splitlines()
        if '"level": "ERROR"' in line and "Service Unavailable: /readyz" not in line
    ]
    assert not web_errors, web_errors[:3]


def test_portal_logins_go_on_while_redis_is_down(service, world):
    service.redis.stop()
    outcomes = []
    for password in ("wrong-password-1", PASSWORD):
        page = requests.get(BASE + "/login/", headers={"X-Forwarded-Proto": "https"}, timeout=30)
        assert page.status_code == 200, page.status_code
        token = page.text.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
        answer = requests.post(
            BASE + "/login/",
            data={"csrfmiddlewaretoken": token, "username": "carol", "password": password},
            cookies={"csrftoken": page.cookies.get("csrftoken") or ""},
            headers={"X-Forwarded-Proto": "https", "Referer": f"https://127.0.0.1:{WEB_PORT}/login/"},
            allow_redirects=False,
            timeout=30,
        )
        outcomes.append(answer.status_code)
    print(f"\nportal log-ins with Redis down: wrong password {outcomes[0]}, right password {outcomes[1]}")
    assert outcomes == [200, 302]  # the form again with its error; then signed in
