"""Password guessing: one policy for every way in (the portal and admin log-ins, HTTP Basic on the API, password
reset requests), counted per account from one address, per address over all accounts, and per account over all
addresses, with growing delays instead of a lock-out.

Within the free attempts of a counter nothing waits; after them each further attempt waits 1, 2, 4 ... seconds
after the previous one, up to LOGIN_MAX_DELAY_SECONDS. A counter is forgotten LOGIN_FAILURE_MEMORY_SECONDS after
its latest attempt; a successful log-in clears its account-and-address counter. So a guesser from one address gets
a few dozen tries a day, and a botnet spreading its guesses over many addresses is held back by the per-account
counter.

A fixed lock-out per account would let anyone shut a victim out from anywhere. The per-address and per-account
counters therefore do not apply to an address the account has logged in from recently (its "known" addresses): the
real user at their usual place is never held back by somebody else's guessing. Only their own address's counter
for their own account applies there, and only a guesser at that very address can raise it.

Attempts are counted when they start, in the shared cache (Redis in production), so that a burst of simultaneous
requests cannot slip past a counter before the first of them fails: only one attempt at a time passes a counter
once it is past its free attempts. A refused attempt is not counted, so waiting as told is always enough. Usernames
and addresses are hashed, and a made-up username is counted exactly like a real one, so nothing here says whether
an account exists. When the cache is unreachable the policy goes on in this process's memory and tries the cache
again a few seconds later (grants/outage.py): logging in never fails because Redis is down.
"""

import contextlib
import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.utils.translation import ngettext
from redis.exceptions import RedisError

from grants.client_ip import client_address
from grants.outage import Outage

LOGIN = "login"
PASSWORD_RESET = "password_reset"  # noqa: S105  (a counter's name, not a password)
# An address the account logged in from within this time is one of its known addresses.
KNOWN_ADDRESS_SECONDS = 30 * 24 * 3600
# Where the refusal of an attempt is left on the request for the form or the API to tell the person.
REFUSAL_ATTRIBUTE = "login_policy_refusal"


def now() -> float:
    return time.time()


@dataclass(frozen=True)
class Refusal:
    retry_after: int  # whole seconds until the next attempt may start

    def message(self) -> str:
        return ngettext(
            "Too many failed attempts. For your security, try again in %(seconds)d second.",
            "Too many failed attempts. For your security, try again in %(seconds)d seconds.",
            self.retry_after,
        ) % {"seconds": self.retry_after}


@dataclass
class Attempt:
    scope: str
    account: str
    address: str
    refusal: Refusal | None = None
    counted: list[tuple[str, int]] = field(default_factory=list)  # (counter, this attempt's number on it)


class _Store:
    """The shared cache, or this process's memory while the shared cache is down (grants/outage.py).

    Each process counting on its own while Redis is down still holds a guesser back, only less tightly (by the
    number of web processes); refusing every log-in instead would turn a cache outage into a full outage."""

    def __init__(self) -> None:
        self.local = LocMemCache("login-policy-fallback", {"OPTIONS": {"MAX_ENTRIES": 100_000}})
        self.outage = Outage("cache", "log-in attempts are counted in this process's memory")

    def call(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        if self.outage.usable():
            try:
                result = getattr(cache, operation)(*args, **kwargs)
            except (RedisError, OSError) as exc:
                self.outage.failed(exc)
            else:
                self.outage.answered()
                return result
        return getattr(self.local, operation)(*args, **kwargs)


store = _Store()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _normal(account: str) -> str:
    return account.strip().lower()


def delay_after(attempts: int, free: int) -> int:
    """Seconds the next attempt waits after the `attempts`-th: none within the free ones, then 1, 2, 4 ..."""
    if attempts < free:
        return 0
    return int(min(2 ** min(attempts - free, 32), settings.LOGIN_MAX_DELAY_SECONDS))


def _counters(scope: str, account: str, address: str) -> list[tuple[str, int]]:
    prefix = f"login-policy:{scope}"
    counters = [(f"{prefix}:pair:{_digest(account, address)}", int(settings.LOGIN_FAILURES_BEFORE_DELAY))]
    if not store.call("get", f"{prefix}:known:{_digest(account, address)}"):
        counters += [
            (f"{prefix}:address:{_digest(address)}", int(settings.LOGIN_ADDRESS_FAILURES_BEFORE_DELAY)),
            (f"{prefix}:account:{_digest(account)}", int(settings.LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY)),
        ]
    return counters


def _gate(key: str) -> tuple[float, int] | None:
    """When the next attempt on this counter may start, and the number of the attempt that set that time."""
    gate = store.call("get", f"{key}:gate")
    return (float(gate[0]), int(gate[1])) if gate else None


def _set_gate(key: str, unlock_at: float, setter: int) -> None:
    # The gate lives as long as the count it goes with: whether a later attempt may pass depends on its setter.
    store.call("set", f"{key}:gate", (unlock_at, setter), timeout=int(settings.LOGIN_FAILURE_MEMORY_SECONDS))


def _wait(gate: tuple[float, int] | None, moment: float) -> int:
    return max(0, math.ceil(gate[0] - moment)) if gate else 0


def _count(key: str) -> int:
    memory = int(settings.LOGIN_FAILURE_MEMORY_SECONDS)
    store.call("add", key, 0, timeout=memory)
    try:
        number = int(store.call("incr", key))
    except ValueError:  # expired (or the cache went away) between add() and incr()
        store.call("set", key, 1, timeout=memory)
        number = 1
    store.call("touch", key, timeout=memory)
    return number


def _uncount(counted: list[tuple[str, int]]) -> None:
    for key, _ in counted:
        with contextlib.suppress(ValueError):  # already forgotten
            store.call("decr", key)


def begin(*, scope: str, account: str, address: str) -> Attempt:
    """Count an attempt for `account` from `address`, or refuse it with the time to wait. Call `succeeded()` if
    the password turns out right; a wrong one needs nothing more, it is counted already."""
    account = _normal(account)
    attempt = Attempt(scope=scope, account=account, address=address)
    moment = now()
    counters = _counters(scope, account, address)
    wait = max(_wait(_gate(key), moment) for key, _ in counters)
    if wait:
        attempt.refusal = Refusal(retry_after=wait)
        return attempt
    refused: tuple[str, int, tuple[float, int] | None] | None = None
    for key, free in counters:
        number = _count(key)  # unique among simultaneous attempts: incr() is atomic
        attempt.counted.append((key, number))
        if number > free:
            # Only the attempt right after the one that set the gate may pass, once the gate is open: of a burst
            # of simultaneous attempts exactly one goes through, the others are given back and refused.
            gate = _gate(key)
            if gate is None or gate[1] != number - 1 or gate[0] > moment:
                refused = (key, free, gate)
                break
    if refused is not None:
        key, free, gate = refused
        _uncount(attempt.counted)
        attempt.counted = []
        if gate is None:  # evicted from the cache: start waiting again from the latest attempt counted
            number = int(store.call("get", key) or 0)
            _set_gate(key, moment + delay_after(number, free), number)
        attempt.refusal = Refusal(retry_after=max(1, _wait(_gate(key), moment)))
        return attempt
    for (key, number), (_, free) in zip(attempt.counted, counters, strict=True):
        delay = delay_after(number, free)
        if delay:
            _set_gate(key, moment + delay, number)
    return attempt


def succeeded(attempt: Attempt) -> None:
    """The password was right: forget this address's attempts at the account, give the attempt back to the other
    counters (opening a gate it set), and remember the address as one the account uses."""
    prefix = f"login-policy:{attempt.scope}"
    pair = f"{prefix}:pair:{_digest(attempt.account, attempt.address)}"
    store.call("delete_many", [pair, f"{pair}:gate"])
    others = [(key, number) for key, number in attempt.counted if key != pair]
    _uncount(others)
    for key, number in others:
        gate = _gate(key)
        if gate is not None and gate[1] == number:
            _set_gate(key, now(), number - 1)
    store.call(
        "set", f"{prefix}:known:{_digest(attempt.account, attempt.address)}", 1, timeout=KNOWN_ADDRESS_SECONDS
    )


def refusal_of(request: Any) -> Refusal | None:
    """The refusal an authentication attempt on this request met, if it met one."""
    refusal = getattr(request, REFUSAL_ATTRIBUTE, None)
    return refusal if isinstance(refusal, Refusal) else None


def refused_response(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """A page that refused an attempt under the policy answers 429 and says when to come back."""
    refusal = refusal_of(request)
    if refusal is not None:
        response.status_code = 429
        response["Retry-After"] = str(refusal.retry_after)
    return response


class ThrottledModelBackend(ModelBackend):
    """Django's ModelBackend behind the policy. Every way in that checks a password (the portal's and the admin's
    log-in forms, HTTP Basic on the API) calls authenticate() with the request, so all of them pass here and share
    the same counters: a guesser held back on one is held back on all."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if request is None:
            # No client to hold back: the shell, management commands, the test client's login().
            return super().authenticate(request, username=username, password=password, **kwargs)
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        attempt = begin(scope=LOGIN, account=str(username), address=client_address(request))
        if attempt.refusal is not None:
            setattr(request, REFUSAL_ATTRIBUTE, attempt.refusal)
            # authenticate() stops at PermissionDenied: the password is not even checked.
            raise PermissionDenied
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            succeeded(attempt)
        return user


class PolicyLoginFormMixin:
    """For a subclass of Django's AuthenticationForm: a refused attempt says when to try again instead of
    "wrong password". It reads the same whether or not the account exists."""

    request: HttpRequest | None
    error_messages: dict[str, Any]

    def get_invalid_login_error(self) -> ValidationError:
        refusal = refusal_of(self.request)
        if refusal is not None:
            return ValidationError(refusal.message(), code="too_many_attempts")
        return super().get_invalid_login_error()  # type: ignore[misc]
