"""Vouchers in the portal: the holder's pages, claims by the holder and by the provider, the provider's claims and
statement, the public verification of a code. Scopes: another institution's voucher and another provider's claim
are 404s; a refused claim shows every failed check next to its field and stores nothing."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from grants.models import LedgerEntry, ProviderContract, Voucher, VoucherClaim
from grants.services import vouchers as service
from tests import voucher_factories as vf
from tests.portal.conftest import PNG

pytestmark = pytest.mark.django_db


@pytest.fixture
def voucher(sh_pool, carols_startup, alice):
    vf.scheme(sh_pool)
    return vf.voucher(sh_pool, carols_startup, face="1000000", officer=alice)


@pytest.fixture
def provider(shanghai):
    return vf.provider(shanghai)


@pytest.fixture
def pete(provider):
    """A provider user: in the provider group and a member of the accredited provider's institution."""
    return vf.provider_user(provider.institution, "pete")


@pytest.fixture
def pete_client(pete) -> Client:
    client = Client()
    client.force_login(pete)
    return client


def post_data(voucher, provider, **overrides):
    """The claim form's fields for a valid claim (the lead's builder's values), the two files attached."""
    data = vf.claim_input(voucher, provider)
    fields = {
        "offering": data.offering_id,
        "contract_number": data.contract_number,
        "contract_value": data.contract_value,
        "invoice_code": data.invoice_code,
        "invoice_number": data.invoice_number,
        "invoice_date": data.invoice_date.isoformat(),
        "invoice_amount": data.invoice_amount,
        "invoice_tax": data.invoice_tax,
        "amount_paid": data.amount_paid,
        "amount": data.amount,
        "usage_statement": data.usage_statement,
        "usage_quantity": data.usage_quantity if data.usage_quantity is not None else "",
        "provider": provider.pk,
        **vf.files(),
    }
    fields.update(overrides)
    return fields


def field_block(html: str, name: str) -> str:
    """The HTML of one field of the form (its label, hint, errors and input), as portal/_field.html draws it."""
    start = html.index(f'<label for="id_{name}"')
    start = html.rindex('<div class="field', 0, start)
    end = html.index(f'id="id_{name}"', start)
    return html[start : html.index(">", end)]


# --- The holder's pages -------------------------------------------------------------------------------------------


def test_the_holder_lists_their_vouchers_with_balance_and_validity(carol_client, voucher):
    html = carol_client.get("/vouchers/").content.decode()
    assert voucher.code in html
    assert "CNY 1,000,000.00" in html
    assert voucher.valid_until.isoformat() in html
    # The navigation offers the list to a holder.
    assert 'href="/vouchers/"' in carol_client.get("/").content.decode()


def test_the_voucher_page_shows_its_claims_and_the_providers_to_claim_with(
    carol_client, carol, voucher, provider
):
    claim = vf.claim(voucher, provider, actor=carol)
    html = carol_client.get(f"/vouchers/{voucher.pk}/").content.decode()
    assert claim.reference in html
    assert provider.institution.name_en in html  # in the list of accredited providers to choose from
    assert f'action="/vouchers/{voucher.pk}/claim/"' in html


def test_another_institutions_voucher_is_a_404(mallory_client, mallorys_firm, voucher, carol, provider):
    claim = vf.claim(voucher, provider, actor=carol)
    for path in (
        f"/vouchers/{voucher.pk}/",
        f"/vouchers/{voucher.pk}/print/",
        f"/vouchers/{voucher.pk}/claim/",
        f"/vouchers/{voucher.pk}/claim/?provider={provider.pk}",
        f"/claims/{claim.pk}/",
        f"/claims/{claim.pk}/invoice/",
        f"/claims/{claim.pk}/payment-proof/",
    ):
        assert mallory_client.get(path).status_code == 404, path
    assert voucher.code not in mallory_client.get("/vouchers/").content.decode()
    response = mallory_client.post(f"/vouchers/{voucher.pk}/claim/", post_data(voucher, provider))
    assert response.status_code == 404
    assert VoucherClaim.objects.count() == 1


def test_the_printable_voucher_has_a_qr_code_of_the_verification_url(carol_client, voucher):
    html = carol_client.get(f"/vouchers/{voucher.pk}/print/").content.decode()
    assert "<svg" in html
    assert f"http://testserver/vouchers/verify/?code={voucher.code}" in html


# --- Claims -------------------------------------------------------------------------------------------------------


def test_the_holder_first_chooses_the_provider_then_sees_its_offerings(carol_client, voucher, provider):
    html = carol_client.get(f"/vouchers/{voucher.pk}/claim/").content.decode()
    assert 'name="provider"' in html and 'name="invoice_number"' not in html
    html = carol_client.get(f"/vouchers/{voucher.pk}/claim/?provider={provider.pk}").content.decode()
    offering = provider.offerings.get()
    assert f'<option value="{offering.pk}"' in html
    assert 'name="invoice_file"' in html and 'enctype="multipart/form-data"' in html


def test_a_claim_by_the_holder_is_stored_and_held_on_the_voucher(carol_client, carol, voucher, provider):
    data = post_data(voucher, provider)
    response = carol_client.post(f"/vouchers/{voucher.pk}/claim/", data)
    claim = VoucherClaim.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/claims/{claim.pk}/"
    assert claim.submitted_by == carol and claim.submitted_as == "holder"
    assert claim.amount == Decimal(str(data["amount"]))
    voucher.refresh_from_db()
    assert voucher.held == claim.amount
    html = carol_client.get(response["Location"]).content.decode()
    assert claim.reference in html and "awaiting verification" in html


def test_the_same_form_sent_twice_makes_one_claim(carol_client, voucher, provider):
    data = post_data(voucher, provider, submission="6f1c7c3e-64a4-4f38-9a55-0d6f0a3a9b21")
    first = carol_client.post(f"/vouchers/{voucher.pk}/claim/", data)
    again = carol_client.post(f"/vouchers/{voucher.pk}/claim/", {**data, **vf.files()})
    assert first.status_code == again.status_code == 302
    assert first["Location"] == again["Location"]
    assert VoucherClaim.objects.count() == 1


def test_a_refused_claim_shows_every_failed_check_next_to_its_field_and_stores_nothing(
    carol_client, voucher, provider
):
    before = (LedgerEntry.objects.count(), ProviderContract.objects.count())
    data = post_data(
        voucher,
        provider,
        invoice_date=(voucher.valid_from - timedelta(days=1)).isoformat(),
        amount="2000000",  # beyond the balance and beyond the rate times the amount paid
    )
    response = carol_client.post(f"/vouchers/{voucher.pk}/claim/", data)
    assert response.status_code == 400
    html = response.content.decode()
    assert '<div class="error-summary"' in html and "<title>Error:" in html
    date_block = field_block(html, "invoice_date")
    assert "field--error" in date_block and "within the voucher&#x27;s validity" in date_block
    amount_block = field_block(html, "amount")
    assert "field--error" in amount_block and "left; the claim asks" in amount_block
    assert "of the amount paid may be claimed" in amount_block
    assert "field--error" not in field_block(html, "contract_number")
    # The summary links each message to its field.
    assert 'href="#id_invoice_date"' in html and 'href="#id_amount"' in html
    assert VoucherClaim.objects.count() == 0
    assert (LedgerEntry.objects.count(), ProviderContract.objects.count()) == before
    voucher.refresh_from_db()
    assert voucher.held == 0


def test_a_file_that_is_not_what_its_name_says_is_refused_next_to_it(carol_client, voucher, provider):
    data = post_data(voucher, provider, payment_proof=SimpleUploadedFile("receipt.pdf", PNG))
    response = carol_client.post(f"/vouchers/{voucher.pk}/claim/", data)
    assert response.status_code == 400
    block = field_block(response.content.decode(), "payment_proof")
    assert "field--error" in block and "does not match its name" in block
    assert VoucherClaim.objects.count() == 0


def test_a_missing_field_is_refused_by_the_form(carol_client, voucher, provider):
    data = post_data(voucher, provider)
    del data["invoice_number"]
    response = carol_client.post(f"/vouchers/{voucher.pk}/claim/", data)
    assert response.status_code == 400
    assert "field--error" in field_block(response.content.decode(), "invoice_number")
    assert VoucherClaim.objects.count() == 0


def test_a_refusal_reads_in_chinese(carol_client, voucher, provider):
    early = voucher.valid_from - timedelta(days=1)
    data = post_data(voucher, provider, invoice_date=early.isoformat())
    response = carol_client.post(f"/zh-hans/vouchers/{voucher.pk}/claim/", data)
    assert response.status_code == 400
    html = response.content.decode()
    block = field_block(html, "invoice_date")
    assert "算力券有效期" in block and "within the voucher" not in html
    assert "<title>错误：" in html  # noqa: RUF001 (Chinese punctuation)


# --- Provider users -----------------------------------------------------------------------------------------------


def test_the_provider_claims_by_voucher_code(pete_client, pete, voucher, provider):
    html = pete_client.get(f"/provider/claims/new/?code={voucher.code.lower()}").content.decode()
    assert voucher.institution.name_en in html and 'name="invoice_number"' in html
    data = post_data(voucher, provider, code=voucher.code)
    del data["provider"]
    response = pete_client.post("/provider/claims/new/", data)
    claim = VoucherClaim.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/claims/{claim.pk}/"
    assert claim.submitted_by == pete and claim.submitted_as == "provider"


def test_an_unknown_code_is_refused_next_to_the_code(pete_client, provider):
    response = pete_client.get("/provider/claims/new/?code=SH-CMP-2025-0000000000X")
    assert response.status_code == 400
    assert "No voucher has this code" in field_block(response.content.decode(), "code")


def test_a_provider_sees_only_the_claims_naming_it(shanghai, carol, voucher, provider, pete_client):
    other = vf.provider(shanghai)
    vf.provider_user(other.institution, "olga")
    mine = vf.claim(voucher, provider, actor=carol)
    theirs = vf.claim(voucher, other, actor=carol)
    html = pete_client.get("/provider/claims/").content.decode()
    assert mine.reference in html and theirs.reference not in html
    assert pete_client.get(f"/claims/{mine.pk}/").status_code == 200
    assert pete_client.get(f"/claims/{theirs.pk}/").status_code == 404
    assert pete_client.get(f"/claims/{theirs.pk}/invoice/").status_code == 404
    # A provider does not see the customer's voucher pages.
    assert pete_client.get(f"/vouchers/{voucher.pk}/").status_code == 404


def test_the_statement_totals_the_providers_claims_by_status(carol, dave, voucher, provider, pete_client):
    paid = vf.claim(voucher, provider, actor=carol)
    service.approve_claim(claim=paid, actor=dave, amount=paid.amount - Decimal("100"))
    rejected = vf.claim(voucher, provider, actor=carol)
    service.reject_claim(claim=rejected, actor=dave, reason="The payment proof is for another invoice.")
    waiting = vf.claim(voucher, provider, actor=carol)
    html = pete_client.get("/provider/statement/").content.decode()
    row = html[html.index('id="statement-paid"') :]
    row = row[: row.index("</tr>")]
    assert ">1<" in row and f"{paid.amount - Decimal('100'):,.2f}" in row
    total = html[html.index('id="statement-total"') :]
    total = total[: total.index("</tr>")]
    claimed = paid.amount + rejected.amount + waiting.amount
    assert ">3<" in total and f"{claimed:,.2f}" in total


def test_provider_pages_explain_themselves_to_other_users(carol_client, voucher):
    for path in ("/provider/claims/", "/provider/claims/new/", "/provider/statement/"):
        response = carol_client.get(path)
        assert response.status_code == 200
        assert "does not act for an accredited provider" in response.content.decode()
    # A holder who is not a provider cannot claim as one, even with the code.
    assert carol_client.post("/provider/claims/new/", {"code": voucher.code}).status_code == 200
    assert VoucherClaim.objects.count() == 0


def test_the_claimant_sees_the_approved_amount_and_the_rejection_reason(
    carol_client, carol, dave, voucher, provider
):
    lowered = vf.claim(voucher, provider, actor=carol)
    service.approve_claim(claim=lowered, actor=dave, amount=Decimal("1000.00"))
    html = carol_client.get(f"/claims/{lowered.pk}/").content.decode()
    assert "approved and paid" in html and "CNY 1,000.00" in html and "lower than claimed" in html
    refused = vf.claim(voucher, provider, actor=carol)
    service.reject_claim(claim=refused, actor=dave, reason="The invoice is for another buyer.")
    html = carol_client.get(f"/claims/{refused.pk}/").content.decode()
    assert "The invoice is for another buyer." in html and "Reason for the rejection" in html


def test_the_claim_files_download_to_its_parties(carol_client, carol, voucher, provider, pete_client):
    claim = vf.claim(voucher, provider, actor=carol)
    for client in (carol_client, pete_client):
        response = client.get(f"/claims/{claim.pk}/invoice/")
        assert response.status_code == 200
        assert "attachment" in response["Content-Disposition"]
        assert b"".join(response.streaming_content).startswith(b"%PDF")


# --- Public verification ------------------------------------------------------------------------------------------


def test_anyone_can_verify_a_code_without_seeing_the_balance(carol, voucher, provider):
    vf.claim(voucher, provider, actor=carol)
    voucher.refresh_from_db()
    html = Client().get(f"/vouchers/verify/?code={voucher.code.lower()}").content.decode()
    assert "This voucher is valid." in html
    assert voucher.institution.name_en in html and "CNY 1,000,000.00" in html
    assert "Balance" not in html and f"{voucher.balance:,.2f}" not in html


def test_verification_says_when_a_code_is_unknown_or_the_voucher_expired(voucher):
    html = Client().get("/vouchers/verify/?code=NOT-A-CODE").content.decode()
    assert "No voucher has this code." in html
    Voucher.objects.filter(pk=voucher.pk).update(status=Voucher.Status.EXPIRED)
    html = Client().get(f"/vouchers/verify/?code={voucher.code}").content.decode()
    assert "This voucher is not valid today." in html and "expired" in html
    html = Client().get(f"/zh-hans/vouchers/verify/?code={voucher.code}").content.decode()
    assert "该算力券今天无效。" in html


def test_the_pages_read_in_chinese(carol_client, voucher):
    html = carol_client.get(f"/zh-hans/vouchers/{voucher.pk}/").content.decode()
    assert "算力券" in html and "面值" in html and "申请核销" in html


# --- Queries ------------------------------------------------------------------------------------------------------


def queries_of(client, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


def test_the_lists_take_a_fixed_number_of_queries(carol_client, carol, voucher, provider, pete_client):
    vf.claim(voucher, provider, actor=carol)
    pages = {
        carol_client: ("/vouchers/", f"/vouchers/{voucher.pk}/"),
        pete_client: ("/provider/claims/", "/provider/statement/"),
    }
    before = {path: queries_of(client, path) for client, paths in pages.items() for path in paths}
    for _n in range(3):
        vf.claim(voucher, provider, actor=carol)
    after = {path: queries_of(client, path) for client, paths in pages.items() for path in paths}
    assert after == before


def test_the_navigation_offers_the_provider_pages_to_provider_users(pete_client, carol_client, voucher):
    home = pete_client.get("/").content.decode()
    assert 'href="/provider/claims/"' in home and 'href="/provider/statement/"' in home
    assert 'href="/provider/claims/"' not in carol_client.get("/").content.decode()
