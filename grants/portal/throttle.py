"""Log-in throttling against password guessing: failures are counted per (username, address) in the cache.

The key is a hash, so usernames do not sit in the cache in clear. Whether the account exists makes no difference:
a made-up username is locked out exactly like a real one, so the lock-out reveals nothing.
"""

import hashlib

from django.conf import settings
from django.core.cache import cache


def _key(username: str, address: str) -> str:
    digest = hashlib.sha256(f"{username.strip().lower()}\x00{address}".encode()).hexdigest()
    return f"portal:login-failures:{digest}"


def _window() -> int:
    return int(settings.PORTAL_LOGIN_LOCKOUT_MINUTES) * 60


def is_locked(username: str, address: str) -> bool:
    return int(cache.get(_key(username, address), 0)) >= int(settings.PORTAL_LOGIN_FAILURE_LIMIT)


def record_failure(username: str, address: str) -> int:
    key = _key(username, address)
    # add() is a no-op when the key exists; incr() is atomic in Redis and in the local-memory cache.
    cache.add(key, 0, timeout=_window())
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add() and incr()
        cache.set(key, 1, timeout=_window())
        count = 1
    # The count (and so the lock-out) lasts the lock-out time from the latest failure, not the first.
    cache.touch(key, timeout=_window())
    return count


def clear(username: str, address: str) -> None:
    cache.delete(_key(username, address))
