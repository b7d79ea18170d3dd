"""The applicant accepts the award agreement in the portal and submits a report, in headless Chromium.

Screenshots go to artifacts/screenshots/agreement-*.png.
"""

from datetime import date

import pytest

from grants.models import AuditEvent, AwardAgreement, ReportingDuty
from tests import factories as f
from tests.browser import PASSWORD, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, prefix: str = "") -> None:
    page.goto(f"{prefix}/login/")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", PASSWORD)
    page.click("main [type=submit]")
    page.wait_for_load_state()


@pytest.fixture
def award(db):
    shanghai = f.city("SH")
    officer = f.user("alice", roles=("programme_officer",), cities=(shanghai,))
    reviewer = f.user("rita", roles=("reviewer",), cities=(shanghai,))
    carol = f.user("carol")
    pool = f.pool(f.programme(shanghai, policy_title="Shanghai AI measures 2025"))
    f.report_requirements(pool)
    startup = f.institution(
        shanghai, carol, type="startup", name_en="Carol AI Lab", name_zh="卡罗尔智能实验室"
    )
    return f.award(pool, startup, carol, officer, reviewer, years=2, start=date(2025, 3, 1), accepted=False)


def test_the_applicant_accepts_the_agreement_then_reports(page, award):
    sign_in(page)
    page.goto(f"/applications/{award.application_id}/")
    assert page.locator("#agreement-status").inner_text() == "Awaiting your acceptance"
    screenshot(page, "agreement-1-awaiting")

    page.click("#agreement-review")
    page.wait_for_url(f"**/applications/{award.application_id}/agreement/")
    with page.expect_download() as download:
        page.click("#agreement-download")
    assert download.value.suggested_filename == f"award-agreement-{award.reference}.pdf"
    page.click("#agreement-accept")  # the box is not ticked: refused, nothing recorded
    assert page.locator(".error-summary").is_visible()
    assert AwardAgreement.objects.get(award=award).status == "issued"
    page.check("#id_confirm")
    screenshot(page, "agreement-2-accept")
    page.click("#agreement-accept")
    page.wait_for_url(f"**/applications/{award.application_id}/")
    assert page.locator("#agreement-status").inner_text() == "Accepted"
    screenshot(page, "agreement-3-accepted")
    agreement = AwardAgreement.objects.get(award=award)
    assert agreement.status == "accepted" and agreement.accepted_from == "127.0.0.1"
    assert AuditEvent.objects.filter(action="agreement.accept", remote_addr="127.0.0.1").exists()

    duty = award.reporting_duties.filter(kind="progress").order_by("due_date").first()
    page.click(f"#duty-{duty.pk} a")
    page.fill("#id_progress", "Base model trained on the leased cluster.")
    page.fill("#id_gpu_hours", "1,200")
    screenshot(page, "agreement-4-report")
    page.click("#report-submit")
    page.wait_for_url(f"**/applications/{award.application_id}/")
    assert ReportingDuty.objects.get(pk=duty.pk).status == ReportingDuty.Status.SUBMITTED


def test_the_agreement_page_in_chinese(page, award):
    sign_in(page, "/zh-hans")
    page.goto(f"/zh-hans/applications/{award.application_id}/agreement/")
    assert "资助协议" in page.locator("h1").inner_text()
    assert page.locator("#agreement-accept").inner_text() == "接受协议"
    screenshot(page, "agreement-zh")
