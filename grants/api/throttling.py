"""API rate limits whose cost does not grow with the request rate, and that never fail a request when the cache is
down (config/settings.py names them in REST_FRAMEWORK; the rates and scopes are DRF's `anon` and `user`).

DRF's own throttles keep, per client, a pickled list of the times of its requests in the window: at 6,000 a minute
every request reads and writes a list of up to 6,000 floats. Here a client has one counter per fixed window
(Redis INCR and EXPIRE in one round trip): the same cost at any rate. The price of fixed windows: a client may send
up to twice its rate across the boundary of two windows.

When the cache fails (Redis stopped, unreachable), the request goes on: the counter is kept in this process
instead (the same rate per process, so at most the rate times the number of processes in all) and the cache is
tried again later; the outage is logged once when it starts and once when it ends (grants/outage.py).
"""

import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework import throttling

from grants.outage import Outage

# The per-process counters kept during an outage are dropped once expired; past this many they are swept.
LOCAL_SWEEP_SIZE = 10_000


class _Counters:
    """Per-process fixed-window counters, for while the shared cache is down."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, tuple[int, float]] = {}

    def incr(self, key: str, ttl: int) -> int:
        now = time.monotonic()
        with self.lock:
            if len(self.counts) > LOCAL_SWEEP_SIZE:
                self.counts = {k: v for k, v in self.counts.items() if v[1] > now}
            count, expires = self.counts.get(key, (0, now + ttl))
            if expires <= now:
                count, expires = 0, now + ttl
            self.counts[key] = (count + 1, expires)
            return count + 1


local_counters = _Counters()
cache_health = Outage("cache", "API rate limits are counted per process")


def _incr_in_cache(key: str, ttl: int) -> int:
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        # One round trip. Django's RedisCache stores integers unpickled, so INCR works on the value it would read;
        # its own incr() costs an EXISTS first and cannot set the expiry.
        name = cache.make_and_validate_key(key)
        pipe = cache._cache.get_client(name, write=True).pipeline(transaction=False)  # type: ignore[attr-defined]
        pipe.incr(name)
        pipe.expire(name, ttl)
        count, _ = pipe.execute()
        return int(count)
    # The local-memory cache of development and tests (one process).
    cache.add(key, 0, timeout=ttl)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add() and incr()
        cache.set(key, 1, timeout=ttl)
        return 1


def count_request(key: str, ttl: int) -> int:
    """Count one request under `key` (a key per window, so it expires with its window); return the count so far.
    Never raises: with the cache down the count is this process's own."""
    if cache_health.usable():
        try:
            count = _incr_in_cache(key, ttl)
        except Exception as exc:
            cache_health.failed(exc)
        else:
            cache_health.answered()
            return count
    return local_counters.incr(key, ttl)


class FixedWindowMixin:
    """allow_request() of a DRF SimpleRateThrottle with a counter per client and fixed window."""

    rate: str | None
    num_requests: int
    duration: int
    wait_seconds: float = 0.0
    # Defined by the DRF throttle this is mixed into (annotated only, so it does not hide that one).
    get_cache_key: Callable[[Any, Any], str | None]

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = time.time()
        window = int(now // self.duration)
        self.wait_seconds = (window + 1) * self.duration - now
        return count_request(f"{key}:w{window}", self.duration + 1) <= self.num_requests

    def wait(self) -> float:
        """Seconds until the window ends, when the client may send again (the API's Retry-After)."""
        return self.wait_seconds


class AnonRateThrottle(FixedWindowMixin, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(FixedWindowMixin, throttling.UserRateThrottle):
    pass
