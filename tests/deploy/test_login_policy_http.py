"""Password guessing over HTTP, against gunicorn with the production settings behind a TLS proxy: two web processes
sharing the cache in Redis, X-Forwarded-For appended by the one trusted proxy (TRUSTED_PROXY_COUNT=1), every
request arriving from the proxy's address."""

import base64
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# This helper's own port range (18200-18299): gunicorn and the private Redis.
WEB_PORT, REDIS_PORT = 18231, 18232
HOST = "grants.example.gov.cn"
RIGHT = "correct horse battery"

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def wait_for_port(port: int, process: subprocess.Popen[Any]) -> None:
    for _ in range(300):
        assert process.poll() is None, "the server exited"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("login-policy")
    redis = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(REDIS_PORT),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
        },
        "DEBUG": "0",
        "SECRET_KEY": "9c!pX2v$Lq8rT#wZ4mN7bY1kD6hF3jS0aG5eU-oI_yR+cV&zQ@lK",
        "ALLOWED_HOSTS": HOST,
        "HTTPS_ONLY": "1",
        "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
        "TRUSTED_PROXY_COUNT": "1",
        "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "CACHE_URL": f"redis://127.0.0.1:{REDIS_PORT}/1",
        "CELERY_DATA_DIR": str(folder / "celery"),
        "API_THROTTLE_ANON": "3/minute",
        "WEB_BIND": f"127.0.0.1:{WEB_PORT}",
        "WEB_CONCURRENCY": "2",
    }
    web = None
    try:
        wait_for_port(REDIS_PORT, redis)
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "--no-input"], cwd=ROOT, env=env, check=True, capture_output=True)
        create = f"from django.contrib.auth.models import User; User.objects.create_user('carol', password='{RIGHT}')"
        subprocess.run([*manage, "shell", "-c", create], cwd=ROOT, env=env, check=True, capture_output=True)
        web = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "config.wsgi",
                "--config",
                "python:config.gunicorn_conf",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(WEB_PORT, web)
        yield f"http://127.0.0.1:{WEB_PORT}"
    finally:
        for process in (web, redis):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)


def call(
    url: str, *, client: str, method: str = "GET", user: tuple[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A request as the TLS proxy forwards it: it appends the address it got the request from."""
    headers = {"Host": HOST, "X-Forwarded-Proto": "https", "X-Forwarded-For": client}
    data = None
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(user).encode()).decode()
    if method == "POST":
        headers["Content-Type"] = "application/json"
        data = b'{"name": "erp"}'
    assert url.startswith("http://127.0.0.1:")
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310  (checked above)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def ask_token(server: str, password: str, client: str = "203.0.113.9") -> tuple[int, dict[str, str], bytes]:
    return call(f"{server}/api/v1/tokens/", client=client, method="POST", user=("carol", password))


def test_eighty_wrong_passwords_are_refused_with_growing_delays_and_the_real_user_gets_in(server):
    started = time.monotonic()
    answers = [ask_token(server, f"guess {n}")[:2] for n in range(80)]
    elapsed = time.monotonic() - started
    assert [status for status, _ in answers[:5]] == [401] * 5
    # Past the free five, one guess per wait of 1, 2, 4 ... seconds: however long the eighty took, few got through.
    evaluated = sum(1 for status, _ in answers if status == 401)
    assert evaluated <= 5 + math.ceil(math.log2(elapsed + 1)) + 1
    assert all(
        status == 429 and int(headers["Retry-After"]) >= 1 for status, headers in answers if status != 401
    )
    # Waiting as told is always enough, and each wait is twice the one before.
    while (refusal := ask_token(server, "guess again"))[0] != 429:  # unless a wait just ended
        pass
    time.sleep(int(refusal[1]["Retry-After"]))
    assert ask_token(server, "one more guess")[0] == 401
    told, lags = [], []
    for _ in range(2):
        failed_at = time.monotonic()
        status, headers, _ = ask_token(server, "guess again")
        assert status == 429
        # Retry-After counts from the last failure: a slow round trip in between shortens it by whole seconds.
        lags.append(math.ceil(time.monotonic() - failed_at))
        told.append(int(headers["Retry-After"]))
        time.sleep(told[-1])
        assert ask_token(server, "one more guess")[0] == 401
    assert 2 * told[0] - lags[1] <= told[1] <= 2 * (told[0] + lags[0])
    # A made-up address in front of the proxy's is the client's own word: still the same client.
    assert ask_token(server, RIGHT, client="9.9.9.9, 203.0.113.9")[0] == 429
    # The real user, from their own address, is not held back by somebody else's guessing.
    status, _, body = ask_token(server, RIGHT, client="198.51.100.1")
    assert status == 201, body
    assert b'"key":"gm_' in body.replace(b" ", b"")


def test_rotating_x_forwarded_for_does_not_escape_the_anonymous_rate_limit(server):
    # The limit counts per fixed minute (grants/api/throttling.py): start well inside one, so that all five
    # requests fall in the same window.
    if (left := 60 - time.time() % 60) < 20:
        time.sleep(left + 0.5)
    statuses = [call(f"{server}/api/schema/", client=f"6.6.6.{n}, 192.0.2.77")[0] for n in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert call(f"{server}/api/schema/", client="192.0.2.78")[0] == 200
