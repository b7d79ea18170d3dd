"""A holder claims on a voucher in the portal, in Chinese, in headless Chromium: the first try has its invoice dated
before the voucher's validity, and the refusal is shown next to the invoice date, in Chinese, with nothing stored;
corrected, the claim is submitted.

Screenshots go to artifacts/screenshots/voucher-claim-*.png.
"""

from datetime import timedelta
from decimal import Decimal

import pytest

from grants.models import VoucherClaim
from grants.roles import Role
from tests import factories as f
from tests import voucher_factories as vf
from tests.browser import PASSWORD, screenshot
from tests.portal.conftest import PDF

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PREFIX = "/zh-hans"


@pytest.fixture
def world(db):
    shanghai = f.city("SH")
    officer = f.user("alice", roles=(Role.PROGRAMME_OFFICER,), cities=(shanghai,))
    carol = f.user("carol")
    holder = f.institution(
        shanghai, carol, type="startup", name_en="Carol AI Lab", name_zh="卡罗尔智能实验室"
    )
    pool = f.pool(f.programme(shanghai), name_en="Computing power vouchers", name_zh="算力券")
    vf.scheme(pool)
    voucher = vf.voucher(pool, holder, face="1000000", officer=officer)
    seller = f.institution(
        shanghai, type="large", name_en="Pujiang Compute Services", name_zh="浦江智算服务有限公司"
    )
    return voucher, vf.provider(shanghai, institution=seller)


def sign_in(page, username: str) -> None:
    page.goto(f"{PREFIX}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main [type=submit]")
    page.wait_for_load_state()


def attach_files(page) -> None:
    for field, name in (("#id_invoice_file", "fapiao.pdf"), ("#id_payment_proof", "huidan.pdf")):
        page.set_input_files(field, files=[{"name": name, "mimeType": "application/pdf", "buffer": PDF}])


def test_a_claim_in_chinese_with_one_failed_check_shown_next_to_its_field(page, world):
    voucher, provider = world
    data = vf.claim_input(voucher, provider)
    sign_in(page, "carol")
    page.goto(f"{PREFIX}/vouchers/")
    page.click(f"a[href='{PREFIX}/vouchers/{voucher.pk}/']")
    assert "面值" in page.locator("main").inner_text()
    page.select_option("#id_provider", str(provider.pk))
    page.click("#choose-provider")
    page.wait_for_url(f"**{PREFIX}/vouchers/{voucher.pk}/claim/?provider={provider.pk}")

    page.select_option("#id_offering", str(data.offering_id))
    page.fill("#id_contract_number", data.contract_number)
    page.fill("#id_contract_value", str(data.contract_value))
    page.fill("#id_invoice_code", data.invoice_code)
    page.fill("#id_invoice_number", data.invoice_number)
    page.fill("#id_invoice_date", (voucher.valid_from - timedelta(days=1)).isoformat())  # before the validity
    page.fill("#id_invoice_amount", str(data.invoice_amount))
    page.fill("#id_invoice_tax", str(data.invoice_tax))
    page.fill("#id_amount_paid", str(data.amount_paid))
    page.fill("#id_amount", str(data.amount))
    page.fill("#id_usage_statement", "训练视觉模型使用 A800 加速卡 1,200 小时。")
    page.fill("#id_usage_quantity", "1200")
    attach_files(page)
    screenshot(page, "voucher-claim-1-form")
    page.click("#claim-submit")
    page.wait_for_load_state()

    # One failed check, next to its field, in Chinese; the summary links to it; nothing stored.
    field = page.locator(".field--error")
    assert field.count() == 1
    assert field.locator("#id_invoice_date").count() == 1
    message = field.locator(".error-message").inner_text()
    assert "算力券有效期" in message and "within" not in message
    summary = page.locator(".error-summary")
    assert summary.is_visible() and "填写有误" in summary.inner_text()
    assert summary.locator("a[href='#id_invoice_date']").count() == 1
    assert page.title().startswith("错误：")  # noqa: RUF001 (Chinese punctuation)
    assert page.locator("html").get_attribute("lang") == "zh-Hans"
    screenshot(page, "voucher-claim-2-refused")
    assert VoucherClaim.objects.count() == 0
    voucher.refresh_from_db()
    assert voucher.held == Decimal("0")

    # Corrected: the date within the validity, the files attached again.
    page.fill("#id_invoice_date", data.invoice_date.isoformat())
    attach_files(page)
    page.click("#claim-submit")
    page.wait_for_url(f"**{PREFIX}/claims/*/")
    claim = VoucherClaim.objects.get()
    assert page.locator("#claim-reference").inner_text() == claim.reference
    assert "已提交" in page.locator(".messages").inner_text()
    screenshot(page, "voucher-claim-3-submitted")
    assert claim.submitted_as == "holder" and claim.invoice_date == data.invoice_date
    voucher.refresh_from_db()
    assert voucher.held == claim.amount
