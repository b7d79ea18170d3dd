"""API rate limits: a counter per client and window, the same cost at any rate, and requests that go on when the
cache is down (limited per process meanwhile)."""

import os
import time

import pytest
from django.core.cache import caches
from django.test import override_settings

from grants.api import throttling
from grants.outage import Outage

DEAD_CACHE = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/1",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}


@pytest.fixture(autouse=True)
def three_a_minute(monkeypatch):
    """alice may send three requests a minute; the memory of a cache outage starts empty."""
    monkeypatch.setitem(throttling.UserRateThrottle.THROTTLE_RATES, "user", "3/minute")
    monkeypatch.setattr(
        throttling, "cache_health", Outage("cache", "API rate limits are counted per process")
    )
    monkeypatch.setattr(throttling, "local_counters", throttling._Counters())
    # Far from the end of a window, so the four requests of a test fall in one.
    if time.time() % 60 > 55:
        time.sleep(60 - time.time() % 60 + 0.1)


def four_requests(client) -> list[int]:
    return [client.get("/api/v1/pools/").status_code for _ in range(4)]


def test_requests_beyond_the_rate_are_refused_until_the_window_ends(api, alice):
    assert four_requests(api(alice)) == [200, 200, 200, 429]
    refused = api(alice).get("/api/v1/pools/")
    assert 0 < int(refused["Retry-After"]) <= 60


def test_a_client_costs_one_counter_whatever_its_rate(api, alice):
    four_requests(api(alice))
    window = int(time.time() // 60)
    key = f"throttle_user_{alice.pk}:w{window}"
    assert caches["default"].get(key) == 4  # a number, not DRF's list of every request's time


def test_requests_go_on_when_the_cache_is_down_limited_per_process(api, alice, caplog):
    with override_settings(CACHES=DEAD_CACHE):  # undone before the test's cache is cleared at its end
        assert four_requests(api(alice)) == [200, 200, 200, 429]
    # Logged once for the outage, not once per request.
    assert caplog.text.count("cache unreachable") == 1


def test_the_shared_counter_is_used_again_once_the_cache_answers(api, alice, caplog, monkeypatch):
    with override_settings(CACHES=DEAD_CACHE):
        assert api(alice).get("/api/v1/pools/").status_code == 200
    monkeypatch.setattr(throttling.cache_health, "retry_at", 0.0)  # the retry time has come
    assert api(alice).get("/api/v1/pools/").status_code == 200
    assert "cache reachable again" in caplog.text
    window = int(time.time() // 60)
    assert caches["default"].get(f"throttle_user_{alice.pk}:w{window}") == 1


@pytest.mark.redis
def test_with_redis_the_counter_is_one_incr_with_an_expiry(api, alice):
    redis_cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["REDIS_URL"],
    }
    with override_settings(CACHES={"default": redis_cache}):
        cache = caches["default"]
        window = int(time.time() // 60)
        key = f"throttle_user_{alice.pk}:w{window}"
        cache.delete(key)
        try:
            assert four_requests(api(alice)) == [200, 200, 200, 429]
            assert cache.get(key) == 4
            client = cache._cache.get_client(write=False)  # type: ignore[attr-defined]
            assert 0 < client.ttl(cache.make_and_validate_key(key)) <= 61
        finally:
            cache.delete(key)
