"""A first-time applicant, in headless Chromium: sign up, register, draft, upload, submit; in English and Chinese.

Screenshots go to artifacts/screenshots/portal-*.png.
"""

from typing import Any

import pytest

from grants.models import Application, Attachment, Institution
from tests import factories as f
from tests.browser import screenshot
from tests.portal.conftest import PDF

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "violet tangerine 42 kites"


@pytest.fixture
def open_call(db):
    shanghai = f.city("SH")
    programme = f.programme(shanghai, policy_title="Shanghai AI measures 2025")
    return f.pool(programme, max_per_award=None)


def sign_up_and_register(page: Any, prefix: str, username: str, code: str, shot: str) -> None:
    page.goto(f"{prefix}/signup/")
    page.fill("#id_username", username)
    page.fill("#id_email", f"{username}@example.cn")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    screenshot(page, f"{shot}-1-signup")
    page.click("main button[type=submit]")
    page.wait_for_url(f"**{prefix}/institutions/new/")
    page.fill("#id_name_en", f"{username.title()} Robotics Ltd")
    page.fill("#id_name_zh", "浦江机器人有限公司")
    page.fill("#id_credit_code", code)
    page.select_option("#id_type", "startup")
    page.select_option("#id_city", label="SH Shanghai" if not prefix else "SH 上海")
    page.fill("#id_founded_on", "2023-05-04")
    screenshot(page, f"{shot}-2-institution")
    page.click("main button[type=submit]")
    page.wait_for_url("**/institutions/*/")


def draft_application(page: Any, prefix: str, pool_pk: int, *, requested: str, shot: str) -> None:
    page.goto(f"{prefix}/calls/")
    page.click(f"a[href='{prefix}/calls/{pool_pk}/']")
    screenshot(page, f"{shot}-3-call")
    page.click(f"a[href='{prefix}/calls/{pool_pk}/apply/']")
    page.fill("#id_title", "GPU cluster rental for a vision model")
    page.fill("#id_summary", "64 GPUs for twelve months.")
    page.fill("#id_eligible_cost", "10000000")
    page.fill("#id_requested_amount", requested)
    page.fill("#id_duration_years", "2")
    page.fill("#id_proposed_start", "2025-09-01")
    screenshot(page, f"{shot}-4-draft")
    page.click("main form button[type=submit]")
    page.wait_for_url("**/applications/*/")


def upload_pdf(page: Any) -> None:
    page.set_input_files(
        "#id_file", files=[{"name": "quote.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    page.click("form[action$='/attachments/'] button[type=submit]")
    page.wait_for_load_state()


def submit(page: Any) -> None:
    page.click("form[action$='/submit/'] button[type=submit]")
    page.wait_for_load_state()


def test_first_time_applicant_submits_in_english(page, open_call):
    code = f.credit_code(770001)
    sign_up_and_register(page, "", "pujiang", code, "portal-en")
    assert Institution.objects.get(credit_code=code).name_en == "Pujiang Robotics Ltd"
    draft_application(page, "", open_call.pk, requested="3000000", shot="portal-en")
    upload_pdf(page)
    assert page.locator("ul.files a").inner_text() == "quote.pdf"
    screenshot(page, "portal-en-5-uploaded")
    submit(page)
    assert page.locator("#application-reference").inner_text() == "SH-2025-CMP-00001"
    assert page.locator("#application-status").inner_text() == "submitted"
    assert "Its reference is SH-2025-CMP-00001" in page.locator(".messages").inner_text()
    screenshot(page, "portal-en-6-submitted")
    application = Application.objects.get()
    assert application.status == "submitted" and Attachment.objects.get().application == application


def test_first_time_applicant_submits_in_chinese(page, open_call):
    sign_up_and_register(page, "/zh-hans", "xuhui", f.credit_code(770002), "portal-zh")
    assert page.locator("h1").inner_text() == "浦江机器人有限公司"  # the Chinese name on a Chinese page
    draft_application(page, "/zh-hans", open_call.pk, requested="2500000", shot="portal-zh")
    assert "草稿已保存" in page.locator(".messages").inner_text()
    upload_pdf(page)
    screenshot(page, "portal-zh-5-uploaded")
    submit(page)
    assert page.locator("#application-reference").inner_text() == "SH-2025-CMP-00001"
    assert page.locator("#application-status").inner_text() == "已提交"
    assert "申请编号为 SH-2025-CMP-00001" in page.locator(".messages").inner_text()
    assert page.locator("html").get_attribute("lang") == "zh-Hans"
    screenshot(page, "portal-zh-6-submitted")


def test_an_over_the_rate_request_shows_the_rate_error(page, open_call):
    sign_up_and_register(page, "", "minhang", f.credit_code(770003), "portal-rate")
    draft_application(page, "", open_call.pk, requested="3000000.01", shot="portal-rate")
    submit(page)
    summary = page.locator(".error-summary")
    assert summary.is_visible()
    assert "of the eligible cost may be requested: CNY 3,000,000.00" in summary.inner_text()
    row = page.locator("#row-requested_amount")
    assert "of the eligible cost may be requested: CNY 3,000,000.00" in row.inner_text()
    # The summary takes the focus, and its link leads to the row at fault.
    assert page.evaluate("document.activeElement.classList.contains('error-summary')")
    page.click(".error-summary a[href='#row-requested_amount']")
    assert page.url.endswith("#row-requested_amount")
    screenshot(page, "portal-rate-5-refused")
    assert Application.objects.get().status == "draft"
