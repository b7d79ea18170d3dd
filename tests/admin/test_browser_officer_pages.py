"""The officers' pages in headless Chromium (issue 16, item 8; issue 15, item 3): the pool page's subsidy rules as
fields and its application window, the dashboard's overdue panel, a new pool's usage point, and programme names
shown whole. Screenshots: artifacts/screenshots/admin-pool-rules.png, admin-dashboard-overdue.png."""

from datetime import timedelta

import pytest
from django.utils import timezone

from grants.models import FundingPool, Tranche
from tests import factories as f
from tests.browser import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

LONG_NAME = "Shanghai Municipal Programme for Artificial Intelligence Computing Power and Models"


def test_the_pool_page_edits_rules_as_fields_and_shows_the_window(page, alice, sh_pool, sh_programme):
    FundingPool.objects.filter(pk=sh_pool.pk).update(
        rate_by_type={"startup": "0.6"}, eligible_types=["startup", "sme"], alert_thresholds=[50, 80, 95]
    )
    login(page, "alice")
    page.goto(f"/admin/grants/fundingpool/{sh_pool.pk}/change/")
    assert page.locator("table.rates input").count() == 6
    assert page.input_value("#id_rate_by_type_0") == "0.6"
    assert page.locator("input[name=eligible_types]:checked").count() == 2
    assert page.input_value("#id_alert_thresholds") == "50, 80, 95"
    opens = timezone.localtime(sh_programme.opens_at).strftime("%Y-%m-%d %H:%M")
    assert opens in page.locator(".field-window").inner_text()
    page.fill("#id_rate_by_type_1", "0.4")  # small or medium enterprise
    page.fill("#id_alert_thresholds", "50, 90")
    page.locator("#id_rate_by_type_0").scroll_into_view_if_needed()
    screenshot(page, "admin-pool-rules")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist")
    pool = FundingPool.objects.get(pk=sh_pool.pk)
    assert pool.rate_by_type == {"startup": "0.6", "sme": "0.4"} and pool.alert_thresholds == [50, 90]


def test_the_dashboard_shows_overdue_tranches_and_whole_programme_names(
    page, alice, sh_pool, carols_startup, carol, rita
):
    sh_pool.programme.name_en = LONG_NAME
    sh_pool.programme.save(update_fields=["name_en"])
    award = f.award(
        sh_pool,
        carols_startup,
        carol,
        alice,
        rita,
        requested="2000000",
        years=2,
        start=timezone.localdate(),
        milestone_gated=False,
    )
    first = award.tranches.order_by("sequence").first()
    assert first is not None
    Tranche.objects.filter(pk=first.pk).update(scheduled_date=timezone.localdate() - timedelta(days=10))
    f.pool(sh_pool.programme, code="NEW", cap="1000000", name_en="A pool not tracked yet")

    login(page, "alice")
    page.goto("/admin/dashboard/")
    page.wait_for_selector("#overdue")
    overdue = page.locator("#overdue").inner_text()
    assert f"{award.reference} #1" in overdue
    assert page.locator("#overdue tbody tr").first.locator("td").nth(3).inner_text() == "10"  # days late
    label = page.locator("#by-programme svg text").first
    assert " ".join(label.locator("tspan").all_text_contents()) == f"SH-2025 {LONG_NAME}"
    # The label ends inside the chart: nothing of the name is hidden behind the bar or the card's edge.
    svg_box = page.locator("#by-programme svg.chart").bounding_box()
    label_box = label.bounding_box()
    bar_box = page.locator("#by-programme svg rect").first.bounding_box()
    assert svg_box and label_box and bar_box
    assert label_box["x"] + label_box["width"] <= bar_box["x"] + 1
    screenshot(page, "admin-dashboard-overdue")

    new_pool = FundingPool.objects.get(code="NEW")
    page.goto(f"/admin/dashboard/?pool={new_pool.pk}")
    page.wait_for_selector("#history svg circle.point")
    assert page.locator("#history-current").is_visible()
    page.locator("#history").scroll_into_view_if_needed()
    screenshot(page, "admin-dashboard-new-pool-history")
