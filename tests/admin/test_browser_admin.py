"""The admin in headless Chromium: a Shanghai programme officer approves an application through the approval page
and sees the pool's utilisation bar move; the dashboard draws its charts; the Chinese admin renders."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from grants.models import Award, UsageSnapshot
from tests import factories as f
from tests.browser import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def bar_width(page) -> float:
    return float(page.locator(".figures + .ubar .ubar-fill").first.evaluate("e => parseFloat(e.style.width)"))


@pytest.fixture
def big_application(sh_pool, carols_startup, carol, alice, rita):
    app = f.application(sh_pool, carols_startup, carol, requested="150000000", cost="600000000", years=3)
    return f.reviewed(app, carol, alice, rita)


def test_a_shanghai_officer_approves_and_sees_the_pool_utilisation_move(
    page, alice, big_application, sh_pool, hz_application
):
    sh_application = big_application
    login(page, "alice")
    page.goto("/admin/grants/application/")
    listing = page.content()
    assert sh_application.reference in listing
    assert hz_application.reference not in listing
    screenshot(page, "admin-applications-shanghai-officer")

    page.goto(f"/admin/grants/fundingpool/{sh_pool.pk}/change/")
    before = bar_width(page)
    assert before == 0.0

    page.goto(f"/admin/grants/application/{sh_application.pk}/change/")
    page.click("a.op-approve")
    page.wait_for_selector("#schedule")
    rows = page.locator("#schedule tbody tr")
    assert rows.count() == 4  # three tranches and the total
    assert "50,000,000.00" in page.locator("#schedule").inner_text()
    page.fill("input[name=amount]", "120000000")  # the officer changes the amount: the schedule follows
    page.click("input[name=_preview]")
    page.wait_for_selector("#schedule")
    assert "40,000,000.00" in page.locator("#schedule").inner_text()
    screenshot(page, "admin-approve-schedule")
    page.click("input[name=_confirm]")
    page.wait_for_selector(".messagelist")
    assert "Approved" in page.locator(".messagelist").inner_text()

    award = Award.objects.get(application=sh_application)
    assert award.amount == Decimal("120000000.00")
    # The officer lands on the new award (issue 16, item 8); the pool's page shows the commitment.
    assert page.url.endswith(f"/admin/grants/award/{award.pk}/change/")
    screenshot(page, "admin-award-after-approval")
    page.goto(f"/admin/grants/fundingpool/{sh_pool.pk}/change/")
    screenshot(page, "admin-pool-after-approval")
    after = bar_width(page)
    assert after == pytest.approx(20.0)  # 120M of the 600M cap


def test_the_dashboard_draws_its_charts(page, alice, sh_pool, sh_application):
    now = timezone.now()
    for hours, committed in ((72, 0), (48, 50000000), (24, 120000000), (0, 300000000)):
        UsageSnapshot.objects.create(
            pool=sh_pool,
            taken_at=now - timedelta(hours=hours),
            cap=sh_pool.cap,
            committed=committed,
            disbursed=committed // 3,
            available=sh_pool.cap - committed,
            ledger_committed=committed,
            ledger_disbursed=committed // 3,
        )
    login(page, "alice")
    page.goto("/admin/dashboard/")
    page.wait_for_selector("svg.chart")
    assert page.locator("svg.chart").count() >= 4
    assert page.locator("#history svg polyline").count() == 3
    box = page.locator("#by-pool svg.chart").bounding_box()
    assert box is not None and box["width"] > 300
    screenshot(page, "admin-dashboard")


def test_the_chinese_admin_renders(page, alice, sh_pool, sh_application):
    login(page, "alice")
    page.goto("/admin/grants/fundingpool/")
    page.select_option("#admin-language", "zh-hans")
    page.wait_for_url("**/zh-hans/admin/**")
    body = page.locator("body").inner_text()
    assert "6 亿元" in body
    assert "资金池" in body
    screenshot(page, "admin-pools-zh-hans")
    page.goto("/zh-hans/admin/dashboard/")
    page.wait_for_selector("svg.chart")
    screenshot(page, "admin-dashboard-zh-hans")
