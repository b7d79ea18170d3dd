"""A stuck database must not stall the web tier (issue 11, item 5), proved against the real thing: gunicorn started
with Procfile's `web` command and the production settings docker-compose.yml uses, on the PostgreSQL test database
and Redis, while another session holds a pool's row lock for longer than the web process's timeout.

Every approval that needs the row answers 503 `database_busy` with Retry-After while the lock is still held (none
waits for it), /healthz answers meanwhile, nothing changes, the counters still equal the ledger, and once the lock
goes the same approvals go through. No timing is asserted: "while the lock is still held" is ordering, because the
lock is released only after every answer is in.

Run: DATABASE_URL=postgres://... REDIS_URL=redis://127.0.0.1:6379/<n> pytest tests/deploy/test_stuck_database.py -s
(-s prints how long each request took).
"""

import json
import os
import shlex
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from grants.api.authentication import create_token
from grants.models import IdempotencyRecord, LedgerEntry
from grants.roles import Role
from tests import factories as f
from tests.api.test_error_shape import conninfo, pool_locked
from tests.grants.invariants import assert_invariants, state
from tests.jobs.test_real_worker import database_url, wait_for

# serialized_rollback: like tests/grants/test_concurrency.py, so that the flush after this test leaves the database
# as the next serialized test expects it.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ROOT = Path(__file__).resolve().parents[2]
PORT = 18301
APPROVALS = 3  # one per gunicorn worker: every worker is stuck at once, as in the issue
# How long the test waits for any answer; the pool stays locked for at least this long, far past the limits.
WAIT = 90


def procfile_web() -> list[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return shlex.split(line.partition(":")[2])
    raise AssertionError("Procfile has no web process")


@pytest.fixture
def gunicorn(tmp_path) -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "gunicorn.log"

    def start(**limits: str) -> str:
        env = {
            **os.environ,
            "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
            # docker-compose.yml's web container: production settings behind the TLS proxy.
            "DEBUG": "0",
            "SECRET_KEY": "9c!pX2v$Lq8rT#wZ4mN7bY1kD6hF3jS0aG5eU-oI_yR+cV&zQ@lK",
            "ALLOWED_HOSTS": "127.0.0.1",
            "HTTPS_ONLY": "1",
            "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
            "DATABASE_URL": database_url() + "?connect_timeout=5",
            "REDIS_URL": os.environ["REDIS_URL"],
            "CACHE_URL": os.environ["REDIS_URL"],
            "MEDIA_ROOT": str(tmp_path / "media"),
            "CELERY_DATA_DIR": str(tmp_path / "celery"),
            "WEB_BIND": f"127.0.0.1:{PORT}",
            "WEB_CONCURRENCY": str(APPROVALS),
            # gunicorn's own timeout must not be what frees a stuck worker: the database's limits must.
            "WEB_TIMEOUT": "600",
            "LOG_FORMAT": "text",
            **limits,
        }
        with open(log, "ab") as out:
            started.append(
                subprocess.Popen(procfile_web(), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
            )  # fmt: skip
        base = f"http://127.0.0.1:{PORT}"
        wait_for(lambda: call(base, "GET", "/healthz")[0] == 200, 60, "gunicorn to answer /healthz")
        return base

    try:
        yield start
    finally:
        for proc in started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        print(log.read_text(errors="replace")[-3000:])


def call(
    base: str, method: str, path: str, *, token: str = "", key: str = ""
) -> tuple[int, Any, dict[str, str]]:
    headers = {"X-Forwarded-Proto": "https", "Accept": "application/json", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if key:
        headers["Idempotency-Key"] = key
    data = b"{}" if method == "POST" else None
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as answer:  # noqa: S310
            return answer.status, parsed(answer.read()), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, parsed(error.read()), dict(error.headers)
    except OSError as error:  # no answer at all (timed out, connection dropped)
        return 0, repr(error), {}


def parsed(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body[:300]


def waiting_on_locks(watch: psycopg.Connection) -> int:
    row = watch.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize(
    "limits",
    [
        {"WEB_DB_LOCK_TIMEOUT": "2", "WEB_DB_STATEMENT_TIMEOUT": "30"},
        # The statement limit alone also ends a lock wait: a statement waiting for a lock is still running.
        {"WEB_DB_LOCK_TIMEOUT": "0", "WEB_DB_STATEMENT_TIMEOUT": "2"},
    ],
    ids=["lock_timeout", "statement_timeout"],
)
def test_approvals_behind_a_locked_pool_answer_503_and_healthz_answers_meanwhile(gunicorn, shanghai, limits):
    alice = f.user("alice", roles=(Role.PROGRAMME_OFFICER,), cities=(shanghai,))
    rita = f.user("rita", roles=(Role.REVIEWER,), cities=(shanghai,))
    pool = f.pool(f.programme(shanghai))
    applications = []
    for n in range(APPROVALS):
        applicant = f.user(f"applicant{n}")
        institution = f.institution(shanghai, applicant)
        applications.append(f.reviewed(f.application(pool, institution, applicant), applicant, alice, rita))
    _, token = create_token(user=alice, actor=alice, name="stuck-database test")
    base = gunicorn(**limits)
    before = state()

    answers: dict[str, tuple[int, Any, dict[str, str], float]] = {}

    def request(name: str, method: str, path: str, **kw: str) -> None:
        started = time.monotonic()
        status, body, headers = call(base, method, path, **kw)
        answers[name] = (status, body, headers, time.monotonic() - started)

    with pool_locked(pool.pk), psycopg.connect(conninfo(), autocommit=True) as watch:
        threads = [
            threading.Thread(
                target=request,
                args=(f"approve {a.pk}", "POST", f"/api/v1/applications/{a.pk}/approve/"),
                kwargs={"token": token, "key": f"stuck-{a.pk}"},
            )
            for a in applications
        ]
        for thread in threads:
            thread.start()
        # Every worker is now waiting on the pool's row, the situation in which /healthz used to wait too.
        wait_for(lambda: waiting_on_locks(watch) >= 1, 30, "an approval to wait on the pool")
        request("healthz", "GET", "/healthz")
        for thread in threads:
            thread.join(timeout=WAIT)
        still_locked = all(not thread.is_alive() for thread in threads)
    assert still_locked, "an approval was still waiting when the test gave up"

    for name, (status, _body, _headers, elapsed) in sorted(answers.items()):
        print(f"{name}: {status} in {elapsed:.2f}s ({limits})")
    assert answers.pop("healthz")[:2] == (200, {"status": "ok"})
    assert len(answers) == APPROVALS
    for name, (status, body, headers, _elapsed) in answers.items():
        assert status == 503, (name, status, body)
        assert set(body) == {"code", "message", "fields", "details"} and body["code"] == "database_busy", body
        assert int(headers["Retry-After"]) == body["details"]["retry_after_seconds"] > 0
    assert state() == before
    assert not IdempotencyRecord.objects.exists()
    assert_invariants()

    # The lock gone, the same retries go through, once each.
    for a in applications:
        status, body, _headers = call(base, "POST", f"/api/v1/applications/{a.pk}/approve/", token=token,
                                      key=f"stuck-{a.pk}")  # fmt: skip
        assert status == 201, body
    assert LedgerEntry.objects.filter(pool=pool, kind="commit").count() == APPROVALS
    assert_invariants()
