"""Two people for big decisions in the Chinese admin, in headless Chromium (issue 14): a Shanghai officer's approval
above the pool's threshold becomes a proposal awaiting a second officer, who confirms it; the award shows both."""

from decimal import Decimal

import pytest

from grants.models import Award, Proposal
from grants.roles import Role
from tests import factories as f
from tests.browser import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def big_application(sh_pool, carols_startup, carol, alice, rita):
    sh_pool.approval_threshold = Decimal("50000000")  # 5,000 万元
    sh_pool.save(update_fields=["approval_threshold"])
    app = f.application(sh_pool, carols_startup, carol, requested="120000000", cost="400000000", years=3)
    return f.reviewed(app, carol, alice, rita)


def test_propose_in_chinese_then_a_second_officer_confirms(page, alice, big_application, sh_pool, shanghai):
    f.user("amir", roles=(Role.PROGRAMME_OFFICER,), cities=(shanghai,))
    login(page, "alice")
    page.goto(f"/zh-hans/admin/grants/application/{big_application.pk}/change/")
    page.click("a.op-approve")
    page.wait_for_selector("#schedule")
    assert "5000 万元" in page.locator("#second-officer").inner_text()
    assert page.locator("input[name=_confirm]").get_attribute("value") == "提交第二名官员复核"
    screenshot(page, "admin-propose-approval-zh-hans")
    page.click("input[name=_confirm]")
    page.wait_for_selector(".messagelist")
    assert "已提交第二名官员复核" in page.locator(".messagelist").inner_text()
    proposal = Proposal.objects.get(application=big_application)
    assert page.url.endswith(f"/zh-hans/admin/grants/proposal/{proposal.pk}/change/")
    body = page.locator("#content").inner_text()
    assert "待复核" in body and "1.2 亿元" in body
    assert page.locator("a.op-confirm").count() == 0  # the proposer may not confirm
    screenshot(page, "admin-proposal-pending-zh-hans")

    page.context.clear_cookies()
    login(page, "amir", url="/zh-hans/admin/login/")
    page.goto(f"/zh-hans/admin/grants/proposal/{proposal.pk}/change/")
    assert page.locator("a.op-send_back").count() == 1
    screenshot(page, "admin-proposal-second-officer-zh-hans")
    page.click("a.op-confirm")
    page.wait_for_selector("#operation-form")
    page.fill("textarea[name=note]", "已核对分期安排")
    page.click("input[name=_run]")
    page.wait_for_selector(".messagelist")
    proposal.refresh_from_db()
    assert proposal.status == Proposal.Status.CONFIRMED
    assert "已复核确认" in page.locator("#content").inner_text()
    screenshot(page, "admin-proposal-confirmed-zh-hans")

    award = Award.objects.get(application=big_application)
    assert (award.approved_by.username, getattr(award.confirmed_by, "username", None)) == ("alice", "amir")
    page.goto(f"/zh-hans/admin/grants/award/{award.pk}/change/")
    body = page.locator("#content").inner_text()
    assert "复核人" in body and "amir" in body
    screenshot(page, "admin-award-confirmed-zh-hans")
