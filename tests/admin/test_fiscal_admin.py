"""The close of a fiscal year in the admin (issue #15.4): an officer previews it, finance confirms it; the tranche's
reschedule operation."""

from datetime import date
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from grants import services
from grants.models import FiscalYearAllotment, Programme
from tests import factories as f
from tests.grants.invariants import assert_invariants

D = Decimal


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def closable(shanghai, alice, carol, rita):
    """2024 of a Shanghai programme has ended: a pool with 5M allotted in 2024 and 2025, an unpaid 1M tranche."""
    programme = f.programme(shanghai, first_fiscal_year=2024, last_fiscal_year=2026, carry_over_years=1)
    pool = f.pool(programme, code="CMP", cap="20000000")
    for year in (2024, 2025):
        services.set_allotment(pool=pool, actor=alice, fiscal_year=year, amount=D("5000000"))
    award = f.award(
        pool, f.institution(shanghai, carol), carol, alice, rita, requested="1000000", start=date(2024, 5, 1)
    )
    return {"programme": programme, "pool": pool, "award": award}


def client(user):
    c = Client()
    c.force_login(user)
    return c


def url(programme, year=2024):
    return reverse("admin:fiscal-year-close", args=[programme.pk, year])


def test_an_officer_previews_and_finance_confirms(closable, alice, dave):
    programme = closable["programme"]
    preview = client(alice).get(url(programme))
    assert preview.status_code == 200
    page = preview.content.decode()
    assert "Preview: nothing has changed yet." in page and "5,000,000.00" in page
    assert "rescheduled to 2025-05-01" in page
    assert 'id="close-form"' not in page and 'id="close-finance-only"' in page
    assert client(alice).post(url(programme)).status_code == 403

    finance = client(dave)
    assert 'id="close-form"' in finance.get(url(programme)).content.decode()
    done = finance.post(url(programme), follow=True)
    assert "is closed" in done.content.decode()
    assert Programme.objects.get(pk=programme.pk).closed_through == 2024
    a2025 = FiscalYearAllotment.objects.get(pool=closable["pool"], fiscal_year=2025)
    assert (a2025.carried_in, a2025.committed) == (D("5000000"), D("1000000"))
    assert 'id="close-form"' not in finance.get(url(programme)).content.decode()
    assert_invariants()


def test_the_programme_page_links_each_year(closable, alice):
    page = client(alice).get(reverse("admin:grants_programme_change", args=[closable["programme"].pk]))
    assert url(closable["programme"], 2025) in page.content.decode()


def test_other_cities_and_applicants_get_nothing(closable, bob, carol):
    assert client(bob).get(url(closable["programme"])).status_code in (403, 404)
    assert client(carol).get(url(closable["programme"])).status_code == 302  # to the log-in page


def test_finance_reschedules_a_tranche_in_the_admin(closable, dave):
    tranche = closable["award"].tranches.get()
    op = reverse("admin:grants_tranche_op", args=[tranche.pk, "reschedule"])
    finance = client(dave)
    assert 'name="scheduled_date"' in finance.get(op).content.decode()
    done = finance.post(op, {"scheduled_date": "2025-02-01", "reason": "Site not ready."})
    assert done.status_code == 302
    tranche.refresh_from_db()
    assert (tranche.scheduled_date, tranche.fiscal_year) == (date(2025, 2, 1), 2025)
    assert_invariants()
