"""Password guessing (grants/login_policy.py): one policy for every way in, per account and per client address,
with growing delays rather than a lock-out; the client's address from the trusted proxies (grants/client_ip.py).

The clock the policy reads is a test clock here: waiting is moving it, never sleeping."""

import base64
import logging
import shutil
import socket
import subprocess
import threading
import time

import pytest
from django.contrib.auth import authenticate
from django.test import Client, RequestFactory
from rest_framework import throttling
from rest_framework.test import APIClient

from grants import login_policy
from grants.api.views import TokenViewSet
from grants.client_ip import client_address
from grants.models import ApiToken, AuditEvent
from tests.api.conftest import error_shape
from tests.grants.invariants import state

pytestmark = pytest.mark.django_db
RIGHT = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.moment = 1_000_000.0

    def __call__(self) -> float:
        return self.moment

    def wait(self, seconds: float) -> None:
        self.moment += seconds


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(login_policy, "now", fake)
    # Each test starts with the shared cache reachable and nothing counted in the fallback.
    monkeypatch.setattr(login_policy, "store", login_policy._Store())
    return fake


def basic(username: str, password: str, address: str = "203.0.113.9", **headers: str) -> APIClient:
    # APIClient passes extra keyword arguments on as request headers; its stubs do not say so.
    client = APIClient(REMOTE_ADDR=address, **headers)  # type: ignore[arg-type]
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    return client


def ask_token(client: APIClient):
    return client.post("/api/v1/tokens/", {"name": "erp"}, format="json")


def attempt(account: str = "carol", address: str = "203.0.113.9") -> login_policy.Attempt:
    return login_policy.begin(scope=login_policy.LOGIN, account=account, address=address)


# --- The policy itself ----------------------------------------------------------------------------------------


def test_after_the_free_attempts_each_further_one_waits_twice_as_long_up_to_the_cap(clock, settings):
    settings.LOGIN_MAX_DELAY_SECONDS = 60
    for _ in range(settings.LOGIN_FAILURES_BEFORE_DELAY):
        assert attempt().refusal is None
    waits = []
    for _ in range(9):
        refused = attempt().refusal
        assert refused is not None
        waits.append(refused.retry_after)
        clock.wait(refused.retry_after)
        assert attempt().refusal is None  # waiting as told is enough
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_refused_attempts_are_not_counted_so_hammering_does_not_stretch_the_wait(clock, settings):
    for _ in range(settings.LOGIN_FAILURES_BEFORE_DELAY + 1):
        clock.wait(10)
        attempt()
    first = attempt().refusal
    assert first is not None
    for _ in range(50):
        assert attempt().refusal == first
    clock.wait(first.retry_after)
    assert attempt().refusal is None


def test_a_made_up_username_is_counted_like_a_real_one(carol, settings):
    for username in ("carol", "ghost"):
        for _ in range(settings.LOGIN_FAILURES_BEFORE_DELAY):
            attempt(username)
        assert attempt(username).refusal == login_policy.Refusal(retry_after=1)


def test_a_burst_of_simultaneous_attempts_lets_exactly_one_through(clock, settings):
    """The check and the count are one atomic incr(): no burst slips past the counter before the first failure."""
    settings.LOGIN_FAILURES_BEFORE_DELAY = 3
    results: list[login_policy.Attempt] = []
    start = threading.Barrier(40)

    def guess() -> None:
        start.wait()
        results.append(attempt())

    threads = [threading.Thread(target=guess) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # The free attempts and the one that had to wait for nobody, then all held back for a second.
    assert sum(1 for r in results if r.refusal is None) == 3
    assert {r.refusal.retry_after for r in results if r.refusal is not None} == {1}
    clock.wait(1)
    assert attempt().refusal is None
    assert attempt().refusal == login_policy.Refusal(retry_after=2)


def test_a_success_forgets_the_address_failures_at_the_account(carol, settings):
    for _ in range(settings.LOGIN_FAILURES_BEFORE_DELAY - 1):
        attempt()
    login_policy.succeeded(attempt())
    for _ in range(settings.LOGIN_FAILURES_BEFORE_DELAY):
        assert attempt().refusal is None


def test_spraying_many_accounts_from_one_address_is_held_back(settings):
    settings.LOGIN_ADDRESS_FAILURES_BEFORE_DELAY = 10
    for n in range(10):
        assert attempt(f"user{n}").refusal is None
    assert attempt("user99").refusal == login_policy.Refusal(retry_after=1)
    assert attempt("user99", address="198.51.100.1").refusal is None


def test_guessing_from_many_addresses_is_held_back_except_where_the_account_logs_in(settings):
    """A lock-out per account would let anyone shut the real user out; the per-account counter spares the
    addresses the account logged in from."""
    settings.LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY = 10
    login_policy.succeeded(attempt(address="198.51.100.1"))  # carol at her office
    for n in range(10):
        attempt(address=f"192.0.2.{n}")
    assert attempt(address="192.0.2.200").refusal == login_policy.Refusal(retry_after=1)
    assert attempt(address="198.51.100.1").refusal is None


def test_without_a_request_nothing_is_counted(carol, settings):
    """The shell and management commands authenticate without a request: no client to hold back."""
    for _ in range(settings.LOGIN_FAILURES_BEFORE_DELAY + 3):
        assert authenticate(username="carol", password="wrong") is None
    assert authenticate(username="carol", password=RIGHT) == carol


# --- HTTP Basic on the token endpoint -------------------------------------------------------------------------


def test_eighty_wrong_passwords_through_basic_auth_are_refused_with_growing_delays(carol, clock, settings):
    before = state(), ApiToken.objects.count()
    answers = [ask_token(basic("carol", f"guess {n}")) for n in range(80)]
    statuses = [a.status_code for a in answers]
    free = settings.LOGIN_FAILURES_BEFORE_DELAY
    assert statuses == [401] * free + [429] * (80 - free)
    refusal = answers[-1]
    assert refusal["Retry-After"] == "1"
    body = refusal.json()
    assert error_shape(body) and body["code"] == "too_many_attempts"
    assert body["details"] == {"retry_after_seconds": 1}
    assert "try again in 1 second" in body["message"]
    waits: list[int] = []
    for _ in range(4):
        clock.wait(int(waits[-1] if waits else 1))
        assert ask_token(basic("carol", "one more guess")).status_code == 401
        waits.append(int(ask_token(basic("carol", "and another")).headers["Retry-After"]))
    assert waits == [2, 4, 8, 16]
    assert (state(), ApiToken.objects.count()) == before


def test_the_right_password_gets_no_token_while_the_address_must_wait(carol):
    for _ in range(5):
        ask_token(basic("carol", "wrong"))
    response = ask_token(basic("carol", RIGHT))
    assert response.status_code == 429
    assert not ApiToken.objects.exists()


def test_a_guesser_held_back_on_the_portal_gets_no_token_through_basic_auth(carol):
    """One policy for every way in: the counters are the same."""
    portal = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(5):
        portal.post("/login/", {"username": "carol", "password": "wrong"})
    assert ask_token(basic("carol", RIGHT)).status_code == 429
    assert not ApiToken.objects.exists()


def test_the_real_user_from_another_address_is_not_held_back(carol):
    for n in range(80):
        ask_token(basic("carol", f"guess {n}", address="203.0.113.9"))
    response = ask_token(basic("carol", RIGHT, address="198.51.100.1"))
    assert response.status_code == 201
    assert ApiToken.objects.filter(user=carol).count() == 1


def test_the_admin_log_in_is_under_the_same_policy(alice):
    client = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(5):
        assert client.post("/admin/login/", {"username": "alice", "password": "wrong"}).status_code == 200
    response = client.post("/admin/login/", {"username": "alice", "password": RIGHT})
    assert response.status_code == 429
    assert response["Retry-After"] == "1"
    assert "Too many failed attempts. For your security, try again in 1 second." in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert ask_token(basic("alice", RIGHT)).status_code == 429


def test_the_admin_says_it_in_chinese_too(alice):
    client = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(5):
        client.post("/zh-hans/admin/login/", {"username": "alice", "password": "wrong"})
    response = client.post("/zh-hans/admin/login/", {"username": "alice", "password": RIGHT})
    assert response.status_code == 429
    assert "失败次数过多。为保护您的账户，请在 1 秒后再试。" in response.content.decode()  # noqa: RUF001


# --- The client's address -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "forwarded", "expected"),
    [
        (0, "1.2.3.4", "10.0.0.2"),  # no proxy trusted: the header is the client's own word
        (1, "", "10.0.0.2"),
        (1, "198.51.100.7", "198.51.100.7"),
        (1, "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # whatever the client wrote comes first
        (2, "6.6.6.6, 198.51.100.7, 10.0.0.1", "198.51.100.7"),
        (2, "198.51.100.7", "198.51.100.7"),  # fewer hops than proxies: the leftmost, like DRF
        (1, "not-an-address", "10.0.0.2"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_the_client_address_comes_from_the_trusted_proxies(settings, count, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = count
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", **extra)
    assert client_address(request) == expected


def test_behind_the_proxy_clients_are_told_apart_by_the_forwarded_address(carol, settings):
    """Every request reaches gunicorn from the proxy's address: counting by it would lock everyone out."""
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(80):
        ask_token(basic("carol", f"guess {n}", address="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9"))
    rotated = ask_token(
        basic("carol", "guess", address="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9")
    )
    assert rotated.status_code == 429  # a made-up address in front changes nothing
    real = ask_token(basic("carol", RIGHT, address="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.1"))
    assert real.status_code == 201


def test_the_audit_log_records_the_client_behind_the_proxy(carol, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    response = ask_token(
        basic("carol", RIGHT, address="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.1")
    )
    assert response.status_code == 201
    assert AuditEvent.objects.get(action="api_token.create").remote_addr == "198.51.100.1"


def test_rotating_x_forwarded_for_does_not_escape_the_anonymous_rate_limit(settings, monkeypatch):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    monkeypatch.setattr(
        throttling.SimpleRateThrottle, "THROTTLE_RATES", {"anon": "3/minute", "user": "9/minute"}
    )
    statuses = [
        APIClient(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=f"6.6.6.{n}, 203.0.113.9")
        .get("/api/docs/")
        .status_code
        for n in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]
    other = APIClient(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.1").get("/api/docs/")
    assert other.status_code == 200


# --- When the cache is down -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def redis_cache(settings):
    """The cache on a Redis of this test's own, to stop and start again (never the machine's shared one)."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    port = free_port()
    command = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return process
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    servers = [start()]

    class Server:
        def stop(self) -> None:
            servers[-1].terminate()
            servers[-1].wait(timeout=10)

        def start(self) -> None:
            servers.append(start())

    before = settings.CACHES
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    yield Server()
    settings.CACHES = before  # before the servers go: other fixtures clear the cache after the test
    for process in servers:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def test_log_ins_go_on_when_the_cache_is_down_and_the_outage_is_logged_once(
    carol, redis_cache, caplog, monkeypatch
):
    # The API's rate limits have outage handling of their own (grants/api/throttling.py), tested with them.
    monkeypatch.setattr(TokenViewSet, "throttle_classes", [])
    assert ask_token(basic("carol", "wrong")).status_code == 401
    redis_cache.stop()
    caplog.set_level(logging.WARNING, logger="grants.login_policy")
    answers = [ask_token(basic("carol", "wrong")).status_code for _ in range(6)]
    # Counted afresh in this process's memory meanwhile: still held back, never a 500.
    assert answers == [401] * 5 + [429]
    assert ask_token(basic("carol", RIGHT, address="198.51.100.1")).status_code == 201
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
    redis_cache.start()
    login_policy.store.outage.retry_at = 0  # the retry time has come
    assert ask_token(basic("carol", "wrong", address="198.51.100.2")).status_code == 401
    assert any("reachable again" in r.getMessage() for r in caplog.records)
