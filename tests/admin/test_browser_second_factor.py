"""The second factor in headless Chromium, as production requires it: a Shanghai programme officer logs in to the
admin, is taken to the enrolment page, adds the secret to an "app" (django-otp's own TOTP function), confirms
with its code, keeps the recovery codes, reaches the admin; logs out, logs in again in Chinese and passes the
verification page with the next code."""

import base64

import pytest
from django.core.cache import cache
from django_otp.oath import totp

from grants.models import AuditEvent
from tests.browser import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def app_code(secret: str, ahead: int = 0) -> str:
    """What an authenticator app shows for the secret typed in from the page."""
    key = base64.b32decode(secret.replace(" ", ""))
    return f"{totp(key, drift=ahead):06d}"


def test_an_officer_enrols_an_authenticator_then_passes_the_second_factor_at_the_next_log_in(
    page, alice, settings
):
    settings.SECOND_FACTOR_REQUIRED = True
    cache.clear()
    login(page, "alice")
    assert page.url.split("?")[0].endswith("/second-factor/enrol/")
    assert page.locator(".qr-code svg").count() == 1
    secret = page.inner_text("#totp-secret")
    screenshot(page, "second-factor-enrol")

    page.fill("input[name=code]", app_code(secret))
    page.click("form.narrow button[type=submit]")
    page.wait_for_selector("#recovery-codes")
    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10 and all(len(c) == 19 for c in codes)
    screenshot(page, "second-factor-recovery-codes")
    page.click("text=Continue")
    page.wait_for_load_state()
    assert page.url.endswith("/admin/")
    assert "Budget administration" in page.content()

    page.click("#logout-form button")
    page.wait_for_load_state()
    login(page, "alice", url="/zh-hans/admin/login/?next=/zh-hans/admin/")
    assert "/zh-hans/second-factor/" in page.url
    page.fill("input[name=code]", "000000" if app_code(secret, 1) != "000000" else "111111")
    page.click("form.narrow button[type=submit]")
    page.wait_for_selector(".error-summary")
    screenshot(page, "second-factor-verify-zh-wrong-code")
    page.fill("input[name=code]", app_code(secret, ahead=1))  # the enrolment used this step's code
    page.click("form.narrow button[type=submit]")
    page.wait_for_load_state()
    assert page.url.endswith("/zh-hans/admin/")
    screenshot(page, "second-factor-admin-after-verification-zh")
    assert AuditEvent.objects.filter(action="second_factor.enrol", actor=alice).exists()
