"""Vouchers through the services (issue 13): every claim check refuses the whole claim and changes nothing, with the
check's code and the field it concerns; issuing asks the six budget levels an award asks, one voucher or a bulk
CSV of a thousand; finance pays (possibly less) or rejects, once; the expiry job lapses what is left, once.

Every refusal here is asserted with `refused` (tests/grants/invariants.py): the database, ledger, audit trail and
notices included, is exactly as it was; and the files a refused claim uploaded are not left in storage.
"""

import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from grants.errors import BudgetExceeded, InvalidInput, InvalidTransition, NotPermitted
from grants.models import (
    AuditEvent,
    FundingPool,
    Institution,
    InstitutionRelation,
    LedgerEntry,
    OfferingClass,
    Provider,
    ProviderContract,
    Voucher,
    VoucherClaim,
)
from grants.services import vouchers
from grants.services.budget import IdempotencyConflict
from grants.services.pools import set_allotment
from tests import factories as f
from tests import voucher_factories as vf
from tests.grants.invariants import assert_invariants, refused

pytestmark = pytest.mark.django_db

D = Decimal
K = LedgerEntry.Kind
S = Voucher.Status
C = VoucherClaim.Status
REL = InstitutionRelation.Kind
TODAY = timezone.localdate()
THIS_YEAR = date(TODAY.year, 1, 1)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    """Uploaded invoices go to a directory of this test's own, so that a refused claim's files can be counted."""
    settings.MEDIA_ROOT = str(tmp_path / "media")


def full_width(text: str) -> str:
    """The digits as a Chinese keyboard may type them (U+FF10 to U+FF19)."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in text)


def stored_files(settings: Any) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def sh():
    """A Shanghai computing-power pool run as vouchers (30% standard, 50% domestic), a holder with a member, an
    accredited provider with a standard and a domestic offering, and a voucher of 1,000,000 valid from 1 January
    of this year to 31 December."""
    pool = vf.voucher_pool("SH")
    city = pool.programme.city
    member = f.user("holder_member")
    holder = f.institution(city, member, name_en="Holder Robotics", name_zh="持券机器人")
    prov = vf.provider(
        city,
        offerings=(("A800 GPU-hours", "A800", "standard"), ("Ascend 910B hours", "910B", "domestic")),
    )
    voucher = vf.voucher(pool, holder, face="1000000", valid_from=THIS_YEAR)
    return {
        "pool": pool,
        "city": city,
        "member": member,
        "holder": holder,
        "provider": prov,
        "voucher": voucher,
        "finance": vf.finance_of(city),
        "officer": vf.officer_of(city),
    }


def submit(
    world: dict[str, Any],
    *,
    voucher: Voucher | None = None,
    provider: Provider | None = None,
    actor: Any = None,
    **overrides: Any,
) -> VoucherClaim:
    return vf.claim(
        voucher or world["voucher"],
        provider or world["provider"],
        actor=actor or world["member"],
        **overrides,
    )


def refused_claim(
    world: dict[str, Any],
    settings: Any,
    *,
    voucher: Voucher | None = None,
    provider: Provider | None = None,
    actor: Any = None,
    **overrides: Any,
) -> vouchers.ClaimRefused:
    """Submit a claim that must be refused; assert nothing changed (no row, no counter, no audit event, no file) and
    that the preview (`claim_problems`) names exactly what the submission named. Returns the refusal."""
    voucher = voucher or world["voucher"]
    provider = provider or world["provider"]
    actor = actor or world["member"]
    data = vf.claim_input(voucher, provider, **overrides)
    files_before = stored_files(settings)
    preview, preview_checks = vouchers.claim_problems(
        voucher=Voucher.objects.get(pk=voucher.pk), actor=actor, data=data
    )
    with refused(vouchers.ClaimRefused) as info:
        uploads = vf.files()
        vouchers.submit_claim(
            voucher=voucher,
            actor=actor,
            data=data,
            invoice_file=uploads["invoice_file"],
            payment_proof=uploads["payment_proof"],
        )
    assert stored_files(settings) == files_before, "a refused claim left its uploads behind"
    error = info.value
    assert error.status == 422 and error.code == "claim_refused"
    assert error.details["problems"] == error.fields
    assert set(error.details["checks"]) <= set(vouchers.CHECKS)
    assert (preview, preview_checks) == (error.fields, error.details["checks"])
    return error


def only(error: vouchers.ClaimRefused, check: str, field: str) -> list[str]:
    """The refusal names exactly this one check, on this one field; returns its messages."""
    assert error.details["checks"] == [check], error.details
    assert list(error.fields) == [field], error.fields
    return error.fields[field]


# --- 1. Every claim check ---------------------------------------------------------------------------------------


def test_a_valid_claim_holds_its_amount_and_invoices_its_contract(sh):
    claim = submit(
        sh,
        contract_number="HT-2026-001",
        invoice_amount=D("100000"),
        invoice_tax=D("6000"),
        amount_paid=D("106000"),
    )
    v = Voucher.objects.get(pk=sh["voucher"].pk)
    assert (claim.status, claim.amount, claim.rate, claim.submitted_as) == (
        C.SUBMITTED,
        D("30000"),
        D("0.30"),
        "holder",
    )
    assert (v.held, v.balance) == (D("30000"), D("970000"))
    contract = ProviderContract.objects.get()
    assert (contract.number, contract.value, contract.invoiced) == ("HT2026001", D("1000000"), D("106000"))
    assert_invariants()


def test_provider_not_accredited_for_the_category_is_refused(sh, settings):
    # Accredited in Shanghai, but for AI models only: its offering is not computing power.
    models_only = vf.provider(
        sh["city"], categories=("models",), offerings=(("Qwen fine-tuning", "", "standard"),)
    )
    error = refused_claim(sh, settings, provider=models_only)
    (message,) = only(error, "provider_accredited", "offering")
    assert models_only.institution.name in message and "not accredited" in message


# Dates of last year: in the past whatever day the suite runs (an invoice dated in the future is refused as invalid).
LAST = TODAY.year - 1


@pytest.mark.parametrize(
    ("accredited_from", "accredited_until", "invoice_date"),
    [
        (date(LAST, 6, 1), None, date(LAST, 5, 31)),  # before the accreditation began
        (date(2024, 1, 1), date(LAST, 3, 31), date(LAST, 4, 1)),  # after it ended
    ],
)
def test_provider_not_accredited_on_the_invoice_date_is_refused(
    sh, settings, accredited_from, accredited_until, invoice_date
):
    last_years = vf.voucher(sh["pool"], sh["holder"], face="100000", valid_from=date(LAST, 1, 1))
    prov = vf.provider(sh["city"], accredited_from=accredited_from, accredited_until=accredited_until)
    error = refused_claim(sh, settings, voucher=last_years, provider=prov, invoice_date=invoice_date)
    (message,) = only(error, "provider_accredited", "offering")
    assert str(invoice_date) in message
    # The day the accreditation covers passes.
    inside = accredited_until or accredited_from
    assert submit(sh, voucher=last_years, provider=prov, invoice_date=inside).status == C.SUBMITTED


def test_suspended_provider_is_refused(sh, settings):
    vouchers.change_provider(provider=sh["provider"], actor=sh["officer"], suspended=True)
    only(refused_claim(sh, settings), "provider_accredited", "offering")
    vouchers.change_provider(provider=sh["provider"], actor=sh["officer"], suspended=False)
    assert submit(sh).status == C.SUBMITTED


def test_provider_accredited_only_in_another_city_is_refused(sh, settings):
    hangzhou_only = vf.provider(f.city("HZ"))
    error = refused_claim(sh, settings, provider=hangzhou_only)
    (message,) = only(error, "provider_accredited", "offering")
    assert "Shanghai" in message


def test_an_invoice_is_claimed_once_whatever_its_spelling(sh, settings):
    submit(sh, invoice_code="", invoice_number="24312000000000012345")
    # The same 20-digit number in full-width digits with spaces and a hyphen, on another claim of the same voucher.
    error = refused_claim(
        sh, settings, invoice_code="", invoice_number=full_width("2431 2000 0000 0001-2345")
    )
    (message,) = only(error, "invoice_unique", "invoice_number")
    assert "already claimed" in message
    # A paper invoice: code + number. The same number under another invoice code is another invoice.
    submit(sh, invoice_code="031002300111", invoice_number="08812345")
    only(
        refused_claim(sh, settings, invoice_code=full_width(" 031002300111"), invoice_number="0881 2345"),
        "invoice_unique",
        "invoice_number",
    )
    assert submit(sh, invoice_code="031002300222", invoice_number="08812345").status == C.SUBMITTED


def test_an_invoice_claimed_in_another_city_is_refused(sh, settings):
    hz_pool = vf.voucher_pool("HZ", cap="250000000")
    hz = hz_pool.programme.city
    hz_member = f.user("hz_holder")
    hz_holder = f.institution(hz, hz_member)
    hz_provider = vf.provider(hz)
    hz_voucher = vf.voucher(hz_pool, hz_holder, face="500000", valid_from=THIS_YEAR)
    vf.claim(hz_voucher, hz_provider, actor=hz_member, invoice_number="24332000000000077777")
    error = refused_claim(sh, settings, invoice_number="2433 2000 0000 0007 7777")
    only(error, "invoice_unique", "invoice_number")
    # Even a rejected claim keeps its invoice: it is not subsidised later.
    vouchers.reject_claim(
        claim=VoucherClaim.objects.get(voucher=hz_voucher), actor=vf.finance_of(hz), reason="Wrong provider."
    )
    only(
        refused_claim(sh, settings, invoice_number="24332000000000077777"), "invoice_unique", "invoice_number"
    )


def test_a_contract_is_not_claimed_beyond_its_value_across_cities(sh, settings):
    # One provider institution accredited in Shanghai and in Hangzhou; one contract of 150,000 between it and the
    # holder's side, invoiced 100,000 in Shanghai.
    hz_pool = vf.voucher_pool("HZ", cap="250000000")
    hz = hz_pool.programme.city
    hz_member = f.user("hz_holder")
    hz_holder = f.institution(hz, hz_member)
    hz_provider = vf.provider(hz, institution=sh["provider"].institution)
    hz_voucher = vf.voucher(hz_pool, hz_holder, face="500000", valid_from=THIS_YEAR)
    submit(sh, contract_number="SHHZ-2026-07", contract_value=D("150000"))
    sh_contract = ProviderContract.objects.get()
    assert sh_contract.invoiced == D("100000")
    # The same contract, spelt differently, in Hangzhou: 100,000 more would reach 200,000.
    hz_world = {"voucher": hz_voucher, "provider": hz_provider, "member": hz_member}
    error = refused_claim(
        hz_world,
        settings,
        contract_number="shhz 2026 07",
        contract_value=D("150000"),
        invoice_amount=D("60000"),
        amount_paid=D("60000"),
        amount=D("18000"),
    )
    (message,) = only(error, "contract_within_value", "contract_number")
    assert "160,000" in message and "150,000" in message
    # What is left of it (50,000) passes, in Hangzhou, and exhausts it.
    vf.claim(
        hz_voucher,
        hz_provider,
        actor=hz_member,
        contract_number="SHHZ-2026-07",
        contract_value=D("150000"),
        invoice_amount=D("50000"),
        amount_paid=D("50000"),
        amount=D("15000"),
    )
    sh_contract.refresh_from_db()
    assert (ProviderContract.objects.count(), sh_contract.invoiced) == (1, D("150000"))
    assert_invariants()


def test_a_contract_value_other_than_the_one_on_record_is_refused(sh, settings):
    submit(sh, contract_number="HT-88", contract_value=D("500000"))
    error = refused_claim(sh, settings, contract_number="ht-88", contract_value=D("900000"))
    (message,) = only(error, "contract_within_value", "contract_value")
    assert "500,000" in message


def test_buyer_and_provider_the_same_institution_is_refused(sh, settings):
    # The holder is itself accredited as a provider and bills its own voucher.
    own = vf.provider(sh["city"], institution=sh["holder"])
    (message,) = only(refused_claim(sh, settings, provider=own), "not_related", "offering")
    assert "same institution" in message


def test_buyer_and_provider_sharing_a_legal_representative_is_refused(sh, settings):
    vf.relate(sh["holder"], sh["provider"].institution, kind=REL.LEGAL_REPRESENTATIVE)
    (message,) = only(refused_claim(sh, settings), "not_related", "offering")
    assert "legal representative" in message and "张伟" in message


@pytest.mark.parametrize("declared_on", ["holder", "provider"])
@pytest.mark.parametrize("by", ["credit_code", "name"])
def test_one_a_declared_shareholder_of_the_other_is_refused(sh, settings, declared_on, by):
    holder, provider_inst = sh["holder"], sh["provider"].institution
    owned, owner = (holder, provider_inst) if declared_on == "holder" else (provider_inst, holder)
    InstitutionRelation.objects.create(
        institution=owned,
        kind=REL.SHAREHOLDER,
        # By credit code (under another name), or by the owner's Chinese name written with spaces and no code.
        name="某投资人" if by == "credit_code" else f" {owner.name_zh} ",
        identifier=owner.credit_code if by == "credit_code" else "",
    )
    (message,) = only(refused_claim(sh, settings), "not_related", "offering")
    assert "shareholder" in message


def test_buyer_and_provider_with_a_common_shareholder_is_refused(sh, settings):
    for inst, name in (
        (sh["holder"], "申城创投有限公司"),
        (sh["provider"].institution, "申城 创投 有限公司"),
    ):
        InstitutionRelation.objects.create(institution=inst, kind=REL.SHAREHOLDER, name=name)
    (message,) = only(refused_claim(sh, settings), "not_related", "offering")
    assert "share a shareholder" in message


def test_unrelated_declarations_do_not_refuse(sh):
    InstitutionRelation.objects.create(institution=sh["holder"], kind=REL.LEGAL_REPRESENTATIVE, name="王芳")
    InstitutionRelation.objects.create(
        institution=sh["provider"].institution, kind=REL.LEGAL_REPRESENTATIVE, name="李强"
    )
    InstitutionRelation.objects.create(institution=sh["holder"], kind=REL.SHAREHOLDER, name="甲基金")
    InstitutionRelation.objects.create(
        institution=sh["provider"].institution, kind=REL.SHAREHOLDER, name="乙基金"
    )
    assert vouchers.related_parties(sh["holder"], sh["provider"].institution) == []
    assert submit(sh).status == C.SUBMITTED


def test_invoice_dated_outside_the_voucher_validity_is_refused(sh, settings):
    # A voucher of last year, valid to 31 December, that the expiry job has not yet reached: still active.
    last_year = date(TODAY.year - 1, 3, 1)
    old = vf.voucher(sh["pool"], sh["holder"], face="100000", valid_from=last_year)
    assert (old.status, old.valid_until) == (S.ACTIVE, date(TODAY.year - 1, 12, 31))
    error = refused_claim(sh, settings, voucher=old, invoice_date=date(TODAY.year, 1, 1))
    (message,) = only(error, "invoice_in_validity", "invoice_date")
    assert str(old.valid_until) in message
    error = refused_claim(sh, settings, voucher=old, invoice_date=date(TODAY.year - 1, 2, 28))
    only(error, "invoice_in_validity", "invoice_date")
    assert submit(sh, voucher=old, invoice_date=old.valid_until).status == C.SUBMITTED


def test_amount_above_the_balance_is_refused(sh, settings):
    small = vf.voucher(sh["pool"], sh["holder"], face="50000", valid_from=THIS_YEAR)
    submit(sh, voucher=small)  # 30,000 held, 20,000 left
    error = refused_claim(sh, settings, voucher=small, amount=D("20000.01"))
    (message,) = only(error, "within_balance", "amount")
    assert "20,000" in message
    assert submit(sh, voucher=small, amount=D("20000")).status == C.SUBMITTED
    assert Voucher.objects.get(pk=small.pk).balance == 0


def test_amount_above_rate_times_paid_is_refused_at_the_offering_class_rate(sh, settings):
    standard, domestic = sh["provider"].offerings.order_by("pk")
    assert (standard.offering_class, domestic.offering_class) == (
        OfferingClass.STANDARD,
        OfferingClass.DOMESTIC,
    )
    # 100,000 paid: 30% for a standard offering, 50% for a domestic one.
    (message,) = only(
        refused_claim(sh, settings, offering=standard, amount=D("30000.01")), "within_rate", "amount"
    )
    assert "30%" in message and "30,000" in message
    only(refused_claim(sh, settings, offering=standard, amount=D("50000")), "within_rate", "amount")
    (message,) = only(
        refused_claim(sh, settings, offering=domestic, amount=D("50000.01")), "within_rate", "amount"
    )
    assert "50%" in message
    at_standard = submit(sh, offering=standard, amount=D("30000"))
    at_domestic = submit(sh, offering=domestic, amount=D("50000"))
    assert (at_standard.rate, at_domestic.rate) == (D("0.30"), D("0.50"))


def test_a_class_the_scheme_does_not_rate_takes_the_standard_rate(sh, settings):
    vouchers.update_scheme(scheme=sh["voucher"].scheme, actor=sh["officer"], rates={"standard": "0.20"})
    domestic = sh["provider"].offerings.get(offering_class=OfferingClass.DOMESTIC)
    only(refused_claim(sh, settings, offering=domestic, amount=D("20000.01")), "within_rate", "amount")
    assert submit(sh, offering=domestic, amount=D("20000")).rate == D("0.20")


def test_paid_above_the_invoice_total_is_refused(sh, settings):
    error = refused_claim(
        sh, settings, invoice_amount=D("100000"), invoice_tax=D("6000"), amount_paid=D("106000.01")
    )
    (message,) = only(error, "paid_within_invoice", "amount_paid")
    assert "106,000" in message
    assert submit(
        sh, invoice_amount=D("100000"), invoice_tax=D("6000"), amount_paid=D("106000")
    ).amount_paid == D("106000")


def test_a_claim_on_an_expired_voucher_is_refused(sh, settings):
    assert vouchers.expire_vouchers(today=sh["voucher"].valid_until + timedelta(days=1)) == 1
    error = refused_claim(sh, settings, invoice_date=TODAY)
    # Its balance lapsed with it: the amount is above it too.
    assert error.details["checks"] == ["voucher_usable", "within_balance"]
    (message,) = error.fields["voucher"]
    assert "expired" in message


def test_unreadable_input_and_missing_files_are_refused_as_invalid(sh, settings):
    error = refused_claim(
        sh, settings, invoice_amount="a lot", invoice_tax=D("-1"), usage_statement="  ", contract_number=""
    )
    assert error.details["checks"] == ["invalid"]
    assert set(error.fields) == {"invoice_amount", "invoice_tax", "usage_statement", "contract_number"}
    assert error.fields["invoice_tax"] == ["Cannot be negative."]
    data = vf.claim_input(sh["voucher"], sh["provider"])
    with refused(vouchers.ClaimRefused) as info:
        vouchers.submit_claim(
            voucher=sh["voucher"],
            actor=sh["member"],
            data=data,
            invoice_file=None,
            payment_proof=vf.files()["payment_proof"],
        )
    assert info.value.details["checks"] == ["invalid"] and list(info.value.fields) == ["invoice_file"]


def test_an_invoice_number_without_digits_or_letters_is_refused_as_invalid(sh, settings):
    error = refused_claim(sh, settings, invoice_number="——")
    only(error, "invalid", "invoice_number")


def test_a_contract_number_without_digits_or_letters_is_refused_as_invalid(sh, settings):
    error = refused_claim(sh, settings, contract_number="--")
    only(error, "invalid", "contract_number")


def test_every_failed_check_is_listed_at_once(sh, settings):
    first = submit(
        sh, contract_number="HT-9", contract_value=D("200000"), invoice_number="24312000000000099999"
    )
    small = vf.voucher(sh["pool"], sh["holder"], face="10000", valid_from=date(LAST, 6, 1))
    vf.relate(sh["holder"], sh["provider"].institution)
    vouchers.change_provider(provider=sh["provider"], actor=sh["officer"], suspended=True)
    error = refused_claim(
        sh,
        settings,
        voucher=small,
        contract_number="HT-9",
        contract_value=D("250000"),  # not the 200,000 on record
        invoice_number="2431 2000 0000 0009 9999",  # already claimed
        invoice_date=date(LAST, 5, 1),  # before the voucher's validity
        invoice_amount=D("100000"),
        invoice_tax=D("0"),
        amount_paid=D("120000"),  # more than the invoice
        amount=D("40000"),  # above the 10,000 balance and above 30% of 120,000
    )
    assert error.details["checks"] == [
        "provider_accredited",
        "not_related",
        "invoice_unique",
        "contract_within_value",
        "invoice_in_validity",
        "within_balance",
        "within_rate",
        "paid_within_invoice",
    ]
    assert set(error.fields) == {
        "offering",
        "invoice_number",
        "contract_value",
        "invoice_date",
        "amount",
        "amount_paid",
    }
    assert len(error.fields["offering"]) == 2  # suspended; related
    assert len(error.fields["amount"]) == 2  # balance; rate
    assert "fails 8 check(s)" in error.message
    assert VoucherClaim.objects.get() == first


def test_only_the_holder_or_the_named_provider_claims(sh):
    outsider = f.user("outsider")
    with refused(NotPermitted):
        submit(sh, actor=outsider)
    provider_user = vf.provider_user(sh["provider"].institution)
    claim = submit(sh, actor=provider_user)
    assert claim.submitted_as == "provider"
    other_provider = vf.provider(sh["city"])
    with refused(NotPermitted):
        submit(sh, provider=other_provider, actor=provider_user)


def test_a_claim_replayed_with_its_idempotency_key_is_submitted_once(sh):
    first = submit(sh, idempotency_key="claim-1")
    again = submit(sh, idempotency_key="claim-1")  # a fresh invoice number: the key decides
    assert again.pk == first.pk and VoucherClaim.objects.count() == 1
    assert Voucher.objects.get(pk=sh["voucher"].pk).held == D("30000")
    other_holder_member = f.user("other_member")
    other = vf.voucher(sh["pool"], f.institution(sh["city"], other_holder_member), face="100000")
    with refused(IdempotencyConflict):
        vf.claim(other, sh["provider"], actor=other_holder_member, idempotency_key="claim-1")


# --- 2. Issuing: the levels of an award -------------------------------------------------------------------------


def issue(pool: FundingPool, inst: Institution, face: str, **kw: Any) -> Voucher:
    return vouchers.issue_voucher(
        pool=pool, institution=inst, face_value=D(face), actor=vf.officer_of(pool.programme.city), **kw
    )


@pytest.fixture
def bare():
    """A voucher pool of 1,000,000 in a programme of 600,000,000, and two institutions."""
    pool = vf.voucher_pool("SH", cap="1000000")
    city = pool.programme.city
    return {"pool": pool, "a": f.institution(city), "b": f.institution(city)}


def test_issuing_commits_the_face_value_against_the_pool(bare):
    v = issue(bare["pool"], bare["a"], "400000")
    pool = FundingPool.objects.get(pk=bare["pool"].pk)
    assert (pool.committed, pool.programme.committed) == (D("400000"), D("400000"))
    (entry,) = LedgerEntry.objects.filter(voucher=v)
    assert (entry.kind, entry.amount, entry.fiscal_year) == (K.COMMIT, D("400000"), TODAY.year)
    assert vouchers.code_is_well_formed(v.code) and vouchers.find_by_code(v.code) == v
    assert vouchers.find_by_code(v.code[:-1] + ("0" if v.code[-1] != "0" else "1")) is None
    assert AuditEvent.objects.filter(action="voucher.issue", object_id=str(v.pk)).exists()
    assert_invariants()


def test_issuing_past_the_pool_cap_names_the_pool_cap(bare):
    issue(bare["pool"], bare["a"], "600000")
    with refused(BudgetExceeded, level="pool_cap", asked=D("400000.01"), left=D("400000")):
        issue(bare["pool"], bare["b"], "400000.01")
    issue(bare["pool"], bare["b"], "400000")
    assert_invariants()


def test_issuing_past_the_fiscal_year_allotment_names_it(bare):
    pool = bare["pool"]
    set_allotment(
        pool=pool, actor=vf.officer_of(pool.programme.city), fiscal_year=TODAY.year, amount=D("300000")
    )
    issue(pool, bare["a"], "200000")
    with refused(BudgetExceeded, level="fiscal_year_allotment", fiscal_year=TODAY.year, left=D("100000")):
        issue(pool, bare["b"], "150000")
    # A year the pool did not allot has nothing to give.
    with refused(BudgetExceeded, level="fiscal_year_allotment", fiscal_year=TODAY.year + 1):
        issue(pool, bare["b"], "1000", valid_from=date(TODAY.year + 1, 1, 1))
    assert_invariants()


def test_the_institution_per_year_maximum_counts_its_vouchers(bare):
    pool = bare["pool"]
    FundingPool.objects.filter(pk=pool.pk).update(max_per_institution_year=D("300000"))
    first = issue(pool, bare["a"], "200000")
    with refused(BudgetExceeded, level="institution_year", fiscal_year=TODAY.year, left=D("100000")):
        issue(pool, bare["a"], "100000.01")
    issue(pool, bare["b"], "300000")  # another institution has its own maximum
    # Next year is a new year for the same institution.
    issue(pool, bare["a"], "300000", valid_from=date(TODAY.year + 1, 1, 1))
    # What an expired voucher did not spend no longer counts.
    assert vouchers.expire_vouchers(today=first.valid_until + timedelta(days=1)) == 2
    issue(pool, bare["a"], "300000", valid_from=first.valid_until)
    assert_invariants()


def test_the_institution_per_year_maximum_counts_vouchers_and_tranches_together(
    sh_pool, carols_startup, carol, alice, rita
):
    """A pool that paid awards in tranches before it ran as vouchers (the services no longer let a pool with awards
    take a scheme; the model does): the holder's tranches of the year and its vouchers share one maximum."""
    FundingPool.objects.filter(pk=sh_pool.pk).update(max_per_institution_year=D("1500000"))
    sh_pool.refresh_from_db()
    award = f.award(sh_pool, carols_startup, carol, alice, rita, requested="1000000", years=1)
    (year,) = set(award.tranches.values_list("fiscal_year", flat=True))
    from grants.models import VoucherScheme

    VoucherScheme.objects.create(pool=sh_pool, rates={"standard": "0.30"}, validity_days=365)
    issue(sh_pool, carols_startup, "400000", valid_from=date(year, 3, 1))
    with refused(BudgetExceeded, level="institution_year", fiscal_year=year, left=D("100000")):
        issue(sh_pool, carols_startup, "200000", valid_from=date(year, 4, 1))
    issue(sh_pool, carols_startup, "100000", valid_from=date(year, 4, 1))
    assert_invariants()


def test_issuing_above_the_per_award_maximum_names_it(bare):
    FundingPool.objects.filter(pk=bare["pool"].pk).update(max_per_award=D("250000"))
    with refused(BudgetExceeded, level="per_award", asked=D("250000.01")):
        issue(bare["pool"], bare["a"], "250000.01")
    issue(bare["pool"], bare["a"], "250000")


def test_issuing_past_the_programme_total_names_it(bare):
    pool = bare["pool"]
    programme = pool.programme
    programme.total_budget = D("700000")
    programme.save(update_fields=["total_budget"])
    other = f.pool(programme, code="MDL", cap="500000", category="models")
    vf.scheme(other)
    issue(other, bare["a"], "500000")
    with refused(BudgetExceeded, level="programme_total", left=D("200000")):
        issue(pool, bare["b"], "200000.01")  # the pool itself has 1,000,000 of room
    issue(pool, bare["b"], "200000")
    assert_invariants()


def test_issuing_to_an_ineligible_or_debarred_holder_is_refused(bare):
    inst = bare["a"]
    Institution.objects.filter(pk=inst.pk).update(debarred_until=date(2099, 1, 1))
    inst.refresh_from_db()
    with refused(InvalidInput) as info:
        issue(bare["pool"], inst, "1000")
    assert "debarred" in info.value.message
    with refused(InvalidInput):
        issue(bare["pool"], bare["b"], "0")


def test_only_a_programme_officer_of_the_city_issues(bare):
    hz_officer = vf.officer_of(f.city("HZ"))
    finance = vf.finance_of(bare["pool"].programme.city)
    for actor in (hz_officer, finance):
        with refused(NotPermitted):
            vouchers.issue_voucher(
                pool=bare["pool"], institution=bare["a"], face_value=D("1000"), actor=actor
            )


def test_an_issue_replayed_with_its_idempotency_key_commits_once(bare):
    first = issue(bare["pool"], bare["a"], "100000", idempotency_key="issue-7")
    again = issue(bare["pool"], bare["a"], "100000", idempotency_key="issue-7")
    assert again.pk == first.pk and Voucher.objects.count() == 1
    assert LedgerEntry.objects.filter(kind=K.COMMIT).count() == 1
    with refused(IdempotencyConflict):
        issue(bare["pool"], bare["b"], "100000", idempotency_key="issue-7")
    assert FundingPool.objects.get(pk=bare["pool"].pk).committed == D("100000")


# --- 2b. Bulk issue ---------------------------------------------------------------------------------------------


def many_institutions(city: Any, n: int, start: int) -> list[Institution]:
    Institution.objects.bulk_create(
        Institution(
            name_en=f"Bulk holder {i}",
            name_zh=f"批量持券单位{i}",
            credit_code=f.credit_code(start + i),
            type="sme",
            city=city,
        )
        for i in range(n)
    )
    return list(Institution.objects.filter(name_en__startswith="Bulk holder ").order_by("pk"))


def test_a_thousand_vouchers_issue_from_one_csv():
    pool = vf.voucher_pool("SH", cap="600000000")
    city = pool.programme.city
    holders = many_institutions(city, 1000, 500_000)
    lines = ["credit_code,face_value"] + [
        f"{inst.credit_code},{(i % 7 + 1) * 50000}" for i, inst in enumerate(holders)
    ]
    started = time.perf_counter()
    issued = vouchers.issue_bulk(pool=pool, csv_text="\n".join(lines) + "\n", actor=vf.officer_of(city))
    seconds = time.perf_counter() - started
    assert len(issued) == 1000 == Voucher.objects.filter(pool=pool).count()
    total = sum((D((i % 7 + 1) * 50000) for i in range(1000)), D(0))
    pool.refresh_from_db()
    assert pool.committed == total == pool.programme.committed
    assert LedgerEntry.objects.filter(pool=pool, kind=K.COMMIT).count() == 1000
    assert len({v.code for v in issued}) == 1000
    assert AuditEvent.objects.filter(action="voucher.issue").count() == 1000
    assert_invariants()
    print(f"\nvouchers: 1,000 vouchers ({total:,}) issued from one CSV in one call in {seconds:.2f} s")


def test_one_bad_row_among_many_issues_nothing_and_every_bad_row_is_listed():
    pool = vf.voucher_pool("SH", cap="600000000")
    city = pool.programme.city
    holders = many_institutions(city, 200, 600_000)
    rows = [f"{inst.credit_code},10000" for inst in holders]
    debarred = holders[7]
    Institution.objects.filter(pk=debarred.pk).update(debarred_until=date(2099, 1, 1))
    unknown = f.credit_code(999_999)
    rows[10] = f"{unknown},10000"  # line 12: nobody registered with it
    rows[50] = f"{holders[50].credit_code},ten thousand"  # line 52: not an amount
    rows[120] = f"{holders[120].credit_code},-5"  # line 122: not more than zero
    rows[150] = f"{holders[150].credit_code},10000,2026-13-01"  # line 152: not a date
    rows[199] = ",10000"  # line 201: no credit code
    text = "credit_code,face_value,valid_from\n" + "\n".join(rows) + "\n"
    with refused(vouchers.BulkRefused) as info:
        vouchers.issue_bulk(pool=pool, csv_text=text, actor=vf.officer_of(city))
    bad = {row["line"]: row for row in info.value.details["rows"]}
    assert sorted(bad) == [9, 12, 52, 122, 152, 201]
    assert "debarred" in " ".join(bad[9]["problems"])
    assert bad[12]["credit_code"] == unknown and "No institution" in bad[12]["problems"][0]
    assert "not an amount" in bad[52]["problems"][0]
    assert "more than zero" in " ".join(bad[122]["problems"])
    assert "YYYY-MM-DD" in bad[152]["problems"][0]
    assert "missing" in bad[201]["problems"][0]
    assert "6 row(s)" in info.value.message
    assert not Voucher.objects.exists()


def test_rows_that_together_pass_the_per_year_maximum_or_the_cap_are_reported():
    pool = vf.voucher_pool("SH", cap="500000", max_per_institution_year=D("100000"))
    city = pool.programme.city
    a, b, c = (f.institution(city) for _ in range(3))
    text = "\n".join(
        [
            "credit_code,face_value",
            f"{a.credit_code},60000",  # 2
            f"{b.credit_code},100000",  # 3
            f"{a.credit_code},50000",  # 4: with line 2, 110,000 for a this year
            f"{a.credit_code},40000",  # 5: with line 2 (line 4 is not counted), exactly 100,000
            f"{c.credit_code},100000",  # 6
            f"{b.credit_code},1",  # 7: b is full
        ]
    )
    with refused(vouchers.BulkRefused) as info:
        vouchers.issue_bulk(pool=pool, csv_text=text, actor=vf.officer_of(city))
    bad = {row["line"]: row["problems"] for row in info.value.details["rows"]}
    assert sorted(bad) == [4, 7]
    assert all("per-year maximum" in " ".join(p) for p in bad.values()), bad
    # Without the bad rows, the same file issues; then the cap (500,000 - 300,000 = 200,000 left) is reported.
    good = "\n".join(line for n, line in enumerate(text.splitlines(), start=1) if n not in (4, 7))
    assert len(vouchers.issue_bulk(pool=pool, csv_text=good, actor=vf.officer_of(city))) == 4
    d, e, g = (f.institution(city) for _ in range(3))
    over_cap = (
        f"credit_code,face_value\n{d.credit_code},90000\n{e.credit_code},90000\n{g.credit_code},90000\n"
    )
    with refused(vouchers.BulkRefused) as info:
        vouchers.issue_bulk(pool=pool, csv_text=over_cap, actor=vf.officer_of(city))
    assert [row["line"] for row in info.value.details["rows"]] == [4]
    assert_invariants()


def test_a_bulk_issue_replayed_with_its_key_issues_once():
    pool = vf.voucher_pool("SH")
    city = pool.programme.city
    a, b = f.institution(city), f.institution(city)
    text = f"credit_code,face_value\n{a.credit_code},1000\n{b.credit_code},2000\n"
    first = vouchers.issue_bulk(pool=pool, csv_text=text, actor=vf.officer_of(city), idempotency_key="bulk-1")
    again = vouchers.issue_bulk(pool=pool, csv_text=text, actor=vf.officer_of(city), idempotency_key="bulk-1")
    assert [v.pk for v in again] == [v.pk for v in first] and Voucher.objects.count() == 2
    assert FundingPool.objects.get(pk=pool.pk).committed == D("3000")


def test_a_file_without_the_header_is_refused():
    pool = vf.voucher_pool("SH")
    with refused(InvalidInput) as info:
        vouchers.issue_bulk(
            pool=pool, csv_text="code,amount\nX,1\n", actor=vf.officer_of(pool.programme.city)
        )
    assert "face_value" in info.value.fields["file"][0]


# --- 3. Approve and reject --------------------------------------------------------------------------------------


def test_finance_approves_a_lower_amount_and_a_replay_pays_once(sh):
    claim = submit(sh)
    paid = vouchers.approve_claim(
        claim=claim, actor=sh["finance"], amount=D("25000"), payment_reference="BK-1"
    )
    assert (paid.status, paid.approved_amount, paid.payment_reference) == (C.PAID, D("25000"), "BK-1")
    v = Voucher.objects.get(pk=sh["voucher"].pk)
    assert (v.paid, v.held, v.balance) == (D("25000"), D("0"), D("975000"))
    again = vouchers.approve_claim(claim=claim, actor=sh["finance"], amount=D("25000"))
    again_default = vouchers.approve_claim(claim=claim, actor=sh["finance"])
    assert again.pk == again_default.pk == claim.pk
    (entry,) = LedgerEntry.objects.filter(kind=K.DISBURSE)
    assert (entry.amount, entry.voucher_id, entry.claim_id) == (D("25000"), v.pk, claim.pk)
    # A different amount on a claim already paid is not a replay.
    with refused(InvalidTransition):
        vouchers.approve_claim(claim=claim, actor=sh["finance"], amount=D("30000"))
    with refused(InvalidTransition):
        vouchers.reject_claim(claim=claim, actor=sh["finance"], reason="Too late.")
    pool = FundingPool.objects.get(pk=sh["pool"].pk)
    assert (pool.committed, pool.disbursed) == (D("1000000"), D("25000"))
    assert_invariants()


@pytest.mark.parametrize("amount", [D("30000.01"), D("0"), D("-1")])
def test_approving_more_than_claimed_or_nothing_is_refused(sh, amount):
    claim = submit(sh)
    with refused(InvalidInput) as info:
        vouchers.approve_claim(claim=claim, actor=sh["finance"], amount=amount)
    assert "amount" in info.value.fields


def test_a_payment_reference_is_used_once(sh):
    first, second = submit(sh), submit(sh)
    vouchers.approve_claim(claim=first, actor=sh["finance"], payment_reference="BK-77")
    with refused(InvalidInput) as info:
        vouchers.approve_claim(claim=second, actor=sh["finance"], payment_reference="BK-77")
    assert "payment_reference" in info.value.fields


def test_rejecting_needs_a_reason_and_frees_the_hold(sh):
    claim = submit(sh)
    for reason in ("", "   "):
        with refused(InvalidInput) as info:
            vouchers.reject_claim(claim=claim, actor=sh["finance"], reason=reason)
        assert "reason" in info.value.fields
    rejected = vouchers.reject_claim(
        claim=claim, actor=sh["finance"], reason="The invoice is for another buyer."
    )
    assert (rejected.status, rejected.decision_reason) == (C.REJECTED, "The invoice is for another buyer.")
    v = Voucher.objects.get(pk=sh["voucher"].pk)
    assert (v.held, v.balance) == (D("0"), D("1000000"))
    with refused(InvalidTransition):
        vouchers.approve_claim(claim=claim, actor=sh["finance"])
    assert not LedgerEntry.objects.filter(kind__in=(K.DISBURSE, K.DECOMMIT)).exists()
    assert_invariants()


def test_a_programme_officer_or_another_citys_finance_officer_cannot_decide(sh):
    claim = submit(sh)
    hz_finance = vf.finance_of(f.city("HZ"))
    for actor in (sh["officer"], hz_finance, sh["member"]):
        with refused(NotPermitted):
            vouchers.approve_claim(claim=claim, actor=actor)
        with refused(NotPermitted):
            vouchers.reject_claim(claim=claim, actor=actor, reason="No.")


def test_rejecting_a_claim_on_a_voucher_that_expired_meanwhile_lapses_what_it_frees_once(sh):
    v = vf.voucher(sh["pool"], sh["holder"], face="100000", valid_from=date(TODAY.year - 1, 6, 1))
    claim = submit(sh, voucher=v, invoice_date=date(TODAY.year - 1, 7, 1))
    paid_claim = submit(sh, voucher=v, invoice_date=date(TODAY.year - 1, 7, 2))
    assert vouchers.expire_vouchers() == 1
    v.refresh_from_db()
    # The expiry lapsed what no claim held; the two pending claims keep theirs.
    assert (v.status, v.lapsed, v.held, v.balance) == (S.EXPIRED, D("40000"), D("60000"), D("0"))
    vouchers.reject_claim(
        claim=claim, actor=sh["finance"], reason="Usage statement does not match the invoice."
    )
    v.refresh_from_db()
    assert (v.lapsed, v.held, v.balance) == (D("70000"), D("30000"), D("0"))
    with refused(InvalidTransition):
        vouchers.reject_claim(claim=claim, actor=sh["finance"], reason="Again.")
    # Paying less than the other claimed lapses the difference, once, however often the payment is replayed.
    vouchers.approve_claim(claim=paid_claim, actor=sh["finance"], amount=D("20000"))
    vouchers.approve_claim(claim=paid_claim, actor=sh["finance"], amount=D("20000"))
    v.refresh_from_db()
    assert (v.paid, v.lapsed, v.held, v.balance) == (D("20000"), D("80000"), D("0"), D("0"))
    decommits = list(
        LedgerEntry.objects.filter(voucher=v, kind=K.DECOMMIT).order_by("id").values_list("amount", flat=True)
    )
    assert decommits == [D("40000"), D("30000"), D("10000")]
    assert vouchers.expire_vouchers() == 0
    pool = FundingPool.objects.get(pk=sh["pool"].pk)
    assert pool.committed == D("1000000") + D("20000")
    assert_invariants()


# --- 4. Expiry ---------------------------------------------------------------------------------------------------


def test_expiry_twice_lapses_once_and_not_before_the_last_day(sh):
    v = sh["voucher"]
    submit(sh)
    claim = VoucherClaim.objects.get()
    vouchers.approve_claim(claim=claim, actor=sh["finance"])
    assert vouchers.expire_vouchers(today=v.valid_until) == 0  # its last day: still valid
    assert vouchers.expire_vouchers(today=v.valid_until + timedelta(days=1)) == 1
    assert vouchers.expire_vouchers(today=v.valid_until + timedelta(days=1)) == 0
    assert vouchers.expire_vouchers(today=v.valid_until + timedelta(days=400)) == 0
    v.refresh_from_db()
    assert (v.status, v.paid, v.lapsed, v.balance) == (S.EXPIRED, D("30000"), D("970000"), D("0"))
    (lapse,) = LedgerEntry.objects.filter(voucher=v, kind=K.DECOMMIT)
    assert lapse.amount == D("970000") and lapse.fiscal_year == v.fiscal_year
    pool = FundingPool.objects.get(pk=sh["pool"].pk)
    assert (pool.committed, pool.disbursed, pool.programme.committed) == (D("30000"), D("30000"), D("30000"))
    assert AuditEvent.objects.filter(action="voucher.expire", object_id=str(v.pk)).count() == 1
    assert_invariants()


def test_a_spent_voucher_does_not_expire_and_lapses_nothing(sh):
    v = vf.voucher(sh["pool"], sh["holder"], face="30000", valid_from=THIS_YEAR)
    claim = submit(sh, voucher=v)
    vouchers.approve_claim(claim=claim, actor=sh["finance"])
    v.refresh_from_db()
    assert v.status == S.SPENT
    assert (
        vouchers.expire_vouchers(today=v.valid_until + timedelta(days=1)) == 1
    )  # only the fixture's voucher
    v.refresh_from_db()
    assert (v.status, v.lapsed) == (S.SPENT, D("0"))
    assert not LedgerEntry.objects.filter(voucher=v, kind=K.DECOMMIT).exists()
    assert_invariants()


def test_expiry_keeps_the_hold_of_a_pending_claim_which_is_then_paid_in_full(sh):
    v = sh["voucher"]
    claim = submit(sh)
    assert vouchers.expire_vouchers(today=v.valid_until + timedelta(days=1)) == 1
    v.refresh_from_db()
    assert (v.status, v.held, v.lapsed, v.balance) == (S.EXPIRED, D("30000"), D("970000"), D("0"))
    vouchers.approve_claim(claim=claim, actor=sh["finance"])
    v.refresh_from_db()
    assert (v.paid, v.held, v.lapsed) == (D("30000"), D("0"), D("970000"))
    assert LedgerEntry.objects.filter(voucher=v, kind=K.DECOMMIT).count() == 1
    assert_invariants()
