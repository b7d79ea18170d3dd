"""A second-factor code is accepted once, even when sent many times at the same moment (PostgreSQL: django-otp
verifies a TOTP code under a row lock on the device; a recovery code is claimed by deleting its row)."""

from functools import partial
from typing import Any

import pytest
from django.core.cache import cache
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from grants import login_policy, second_factor
from tests.grants.test_concurrency import in_parallel

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
SENDERS = 8


@pytest.fixture(autouse=True)
def _generous_policy(settings, monkeypatch):
    # Every sender comes from its own address, so the login policy lets them all try at once.
    settings.LOGIN_FAILURES_BEFORE_DELAY = settings.LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY = 100
    cache.clear()
    monkeypatch.setattr(login_policy, "store", login_policy._Store())


def send(user: Any, code: str, sender: int) -> object:
    """One sender, from an address of its own."""
    return second_factor.check_code(user=user, code=code, address=f"198.51.100.{sender}")


def outcomes(results: list[tuple[str, object]]) -> list[str]:
    return sorted("accepted" if kind == "ok" else type(value).__name__ for kind, value in results)


def test_the_same_code_sent_at_once_is_accepted_once(alice):
    second_factor.start_enrolment(user=alice)
    device = second_factor.totp_device(alice, confirmed=False)
    assert device is not None
    device, codes = second_factor.confirm_enrolment(
        user=alice, code=f"{totp(device.bin_key):06d}", address="x"
    )
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)
    code = f"{totp(device.bin_key):06d}"
    results = in_parallel([partial(send, alice, code, i) for i in range(SENDERS)])
    assert outcomes(results) == ["WrongCode"] * (SENDERS - 1) + ["accepted"]

    results = in_parallel([partial(send, alice, codes[0], i) for i in range(SENDERS)])
    assert outcomes(results) == ["WrongCode"] * (SENDERS - 1) + ["accepted"]
    assert second_factor.recovery_codes_left(alice) == 9
