"""Closing the demo's 2025 in headless Chromium (issue #15.4): Hangzhou's finance officer opens the close of its
programme's 2025, sees the preview (per pool: allotted, carried in, committed, paid, the unpaid tranches and what
happens to each, carried over, lapsed) and confirms it."""

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from grants.models import Programme
from tests.browser import PASSWORD, login, screenshot
from tests.grants.invariants import assert_invariants

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_the_demos_2025_is_previewed_and_closed_in_the_admin(page):
    call_command("load_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    finance = User.objects.get(username="hz_finance")
    finance.set_password(PASSWORD)
    finance.save()
    programme = Programme.objects.get(city__code="HZ", code="2025")
    login(page, "hz_finance")
    page.goto(f"/admin/grants/programme/{programme.pk}/change/")
    close_url = f"/admin/fiscal-years/{programme.pk}/2025/close/"
    page.click(f'a[href="{close_url}"]')  # the programme's page links each of its years
    page.wait_for_selector("#close-preview")
    preview = page.locator("#close-preview").inner_text()
    assert "250,000,000.00" in preview and "rescheduled to 2026-04-01" in preview
    assert "Preview: nothing has changed yet." in page.content()
    screenshot(page, "admin-fiscal-year-close-preview")
    page.click("#close-form input[type=submit]")
    page.wait_for_selector(".messagelist")
    assert "is closed" in page.locator(".messagelist").inner_text()
    screenshot(page, "admin-fiscal-year-closed")
    assert Programme.objects.get(pk=programme.pk).closed_through == 2025
    assert_invariants()
