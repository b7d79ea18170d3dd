"""Financial records cannot be deleted by anyone, and are read-only; the dashboard and the Chinese admin render."""

from datetime import timedelta

import pytest
from django.contrib.admin import site
from django.contrib.auth.models import User
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from grants.models import (
    Application,
    AuditEvent,
    Award,
    FiscalYearAllotment,
    FundingPool,
    LedgerEntry,
    MilestoneReport,
    Programme,
    Recovery,
    Tranche,
    UsageSnapshot,
)
from tests import factories as f

FINANCIAL = [
    LedgerEntry,
    Award,
    Tranche,
    Recovery,
    MilestoneReport,
    AuditEvent,
    UsageSnapshot,
    Application,
    Programme,
    FundingPool,
    FiscalYearAllotment,
]


@pytest.fixture
def root(db):
    return User.objects.create_superuser("root", "root@example.cn", "correct horse battery")


@pytest.fixture
def award(sh_pool, carols_startup, carol, alice, rita):
    return f.award(sh_pool, carols_startup, carol, alice, rita, requested="2000000", years=2)


@pytest.mark.django_db
@pytest.mark.parametrize("model", FINANCIAL, ids=lambda m: m.__name__)
def test_nobody_may_delete_a_financial_record_not_even_a_superuser(root, model):
    request = RequestFactory().get("/")
    request.user = root
    assert site._registry[model].has_delete_permission(request) is False


@pytest.mark.django_db
def test_the_delete_page_of_an_award_and_a_ledger_entry_is_forbidden(client, root, award):
    client.force_login(root)
    entry = LedgerEntry.objects.order_by("id")[0]
    for name, obj in (("award", award), ("ledgerentry", entry), ("tranche", award.tranches.first())):
        response = client.post(reverse(f"admin:grants_{name}_delete", args=[obj.pk]), {"post": "yes"})
        assert response.status_code == 403
    assert Award.objects.filter(pk=award.pk).exists() and LedgerEntry.objects.filter(pk=entry.pk).exists()


@pytest.mark.django_db
def test_bulk_delete_is_not_offered_for_awards(client, root, award):
    client.force_login(root)
    page = client.get(reverse("admin:grants_award_changelist"))
    assert "delete_selected" not in page.content.decode()
    client.post(
        reverse("admin:grants_award_changelist"),
        {"action": "delete_selected", "_selected_action": [award.pk], "post": "yes"},
    )
    assert Award.objects.filter(pk=award.pk).exists()


@pytest.mark.django_db
def test_award_amounts_and_the_ledger_are_read_only(client, alice, award):
    client.force_login(alice)
    page = client.get(reverse("admin:grants_award_change", args=[award.pk]))
    assert 'name="amount"' not in page.content.decode()
    entry = LedgerEntry.objects.order_by("id")[0]
    url = reverse("admin:grants_ledgerentry_change", args=[entry.pk])
    assert 'name="amount"' not in client.get(url).content.decode()
    assert client.post(url, {"amount": "1"}).status_code == 403
    assert LedgerEntry.objects.get(pk=entry.pk).amount == entry.amount


@pytest.mark.django_db
def test_search_by_reference_institution_name_and_credit_code(client, alice, sh_application, carols_startup):
    client.force_login(alice)
    url = reverse("admin:grants_application_changelist")
    for term in (sh_application.reference, "Carol AI", carols_startup.credit_code):
        assert sh_application.reference in client.get(url, {"q": term}).content.decode()
    assert sh_application.reference not in client.get(url, {"q": "no such thing"}).content.decode()


@pytest.mark.django_db
def test_csv_export_follows_the_filters(client, alice, sh_application, sh_pool, shanghai):
    applicant = f.user("xena")
    draft = f.application(sh_pool, f.institution(shanghai, applicant), applicant)
    client.force_login(alice)
    response = client.get(reverse("admin:grants_application_export"), {"status__exact": "under_review"})
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    lines = body.strip().splitlines()
    assert lines[0].startswith("Reference,")
    assert len(lines) == 2 and sh_application.reference in lines[1]
    everything = client.get(reverse("admin:grants_application_export"))
    # The draft never submitted is its institution's own (issue 16, item 8): not in the officer's export either.
    assert len(b"".join(everything.streaming_content).decode("utf-8-sig").strip().splitlines()) == 2
    assert draft.status == "draft"


@pytest.mark.django_db
def test_the_dashboard_shows_only_the_officers_cities_with_charts(client, alice, award, sh_pool, hz_pool):
    now = timezone.now()
    for hours, committed in ((48, 0), (24, 1000000), (0, 2000000)):
        UsageSnapshot.objects.create(
            pool=sh_pool,
            taken_at=now - timedelta(hours=hours),
            cap=sh_pool.cap,
            committed=committed,
            disbursed=0,
            available=sh_pool.cap - committed,
            ledger_committed=committed,
            ledger_disbursed=0,
        )
    client.force_login(alice)
    response = client.get(reverse("admin:dashboard"))
    body = response.content.decode()
    assert response.status_code == 200
    assert (
        body.count('<svg class="chart"') == 6
    )  # city, programme, pool, pipeline, fiscal years, usage history
    assert "SH-2025-CMP" in body and "HZ-" not in body
    assert "<polyline" in body  # the usage history drawn from the snapshots


@pytest.mark.django_db
def test_the_dashboard_is_for_city_staff(client, rita):
    client.force_login(rita)
    assert client.get(reverse("admin:dashboard")).status_code == 403


@pytest.mark.django_db
def test_the_chinese_admin_formats_amounts_in_wan_and_yi(client, alice, award, sh_pool):
    client.force_login(alice)
    body = client.get("/zh-hans/admin/grants/fundingpool/").content.decode()
    assert "6 亿元" in body  # the cap
    assert "200 万元" in body  # committed
    body = client.get("/zh-hans/admin/dashboard/").content.decode()
    assert 'lang="zh-hans"' in body
    english = client.get("/admin/grants/fundingpool/").content.decode()
    assert "CNY 600,000,000.00" in english
