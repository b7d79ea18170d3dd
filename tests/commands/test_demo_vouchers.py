"""The demo's vouchers (issue 13.8): Shanghai's computing-power vouchers with three accredited providers and claims
in every state, one claim refused for a duplicate invoice, a voucher whose balance lapsed at expiry; Hangzhou's
scheme with a domestic and a standard rate. Counters equal the ledger sums afterwards, and loading twice adds
nothing."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import F, Sum

from grants import selectors
from grants.management.commands import load_demo
from grants.management.commands._demo_vouchers import DUPLICATE_INVOICE
from grants.models import (
    AuditEvent,
    FundingPool,
    InstitutionMember,
    LedgerEntry,
    Provider,
    Voucher,
    VoucherClaim,
)
from grants.roles import PROVIDER
from grants.services import vouchers
from tests.grants.invariants import assert_invariants

ZERO = Decimal("0.00")
K = LedgerEntry.Kind
S = VoucherClaim.Status
PROVIDER_LOGINS = ("sh_provider1", "sh_provider2", "sh_provider3", "hz_provider1")


@pytest.fixture
def demo(db, capsys):
    call_command("load_demo")
    return capsys.readouterr().out


def voucher_pool(city: str) -> FundingPool:
    return FundingPool.objects.get(programme__city__code=city, programme__code__startswith="V", code="CMP")


def ledger(voucher: Voucher, kind: str) -> Decimal:
    return LedgerEntry.objects.filter(voucher=voucher, kind=kind).aggregate(s=Sum("amount", default=ZERO))[
        "s"
    ]


def test_shanghai_vouchers_have_claims_in_every_state_and_an_expired_balance_lapsed(demo):
    pool = voucher_pool("SH")
    assert pool.voucher_scheme.pays == "holder"
    providers = Provider.objects.filter(city__code="SH")
    assert providers.count() == 3
    assert set(providers.values_list("offerings__offering_class", flat=True)) == {"standard", "domestic"}

    claims = VoucherClaim.objects.filter(voucher__pool=pool)
    assert set(claims.values_list("status", flat=True)) == set(S.values)
    assert claims.filter(status=S.PAID, approved_amount=F("amount")).exists()
    lower = claims.get(status=S.PAID, approved_amount__lt=F("amount"))
    assert ZERO < lower.approved_amount < lower.amount
    (rejected,) = claims.filter(status=S.REJECTED)
    assert rejected.decision_reason and rejected.decided_by == User.objects.get(username="sh_finance")
    assert {"holder", "provider"} <= set(claims.values_list("submitted_as", flat=True))

    # Five vouchers: one from an approved application, two from one CSV, two issued one at a time.
    issued = Voucher.objects.filter(pool=pool)
    assert issued.count() == 5
    (from_application,) = issued.exclude(application=None)
    application = from_application.application
    assert application is not None and application.status == "approved"
    assert from_application.face_value == application.requested_amount
    bulk = AuditEvent.objects.filter(action="voucher.issue", city=pool.programme.city, after__bulk=2)
    assert bulk.count() == 2

    # A 2025 voucher, partly used, lapsed what was left at expiry: once, even if the job runs again.
    (expired,) = Voucher.objects.filter(status=Voucher.Status.EXPIRED)
    assert expired.pool == pool and expired.fiscal_year == 2025
    assert expired.paid > ZERO and expired.lapsed == expired.face_value - expired.paid
    assert expired.balance == ZERO and ledger(expired, K.DECOMMIT) == expired.lapsed
    assert vouchers.expire_vouchers(today=expired.valid_until + timedelta(days=1)) == 0
    assert ledger(expired, K.DECOMMIT) == expired.lapsed


def test_the_duplicate_invoice_was_refused_and_recorded_nothing(demo):
    assert f"invoice '{DUPLICATE_INVOICE}'" in demo and "was refused and recorded nothing" in demo
    original = VoucherClaim.objects.get(invoice_number="24312000000012345678")
    assert original.status == S.PAID and original.reference in demo
    # The same invoice written otherwise has the same normalised key, and only the original claim holds it.
    assert not VoucherClaim.objects.filter(invoice_number=DUPLICATE_INVOICE).exists()
    assert VoucherClaim.objects.filter(invoice_key=original.invoice_key).count() == 1
    # Presented again, it fails that one check and no other.
    data = vouchers.ClaimInput(
        offering_id=original.offering_id,
        contract_number=original.contract_number,
        contract_value=original.contract_value,
        invoice_code="",
        invoice_number=DUPLICATE_INVOICE,
        invoice_date=original.invoice_date,
        invoice_amount=original.invoice_amount,
        invoice_tax=original.invoice_tax,
        amount_paid=original.amount_paid,
        amount=original.amount,
        usage_statement=original.usage_statement,
    )
    problems, checks = vouchers.claim_problems(
        voucher=original.voucher, actor=User.objects.get(username="applicant1"), data=data
    )
    assert (list(problems), checks) == (["invoice_number"], ["invoice_unique"])


def test_hangzhou_pays_more_for_domestic_computing_power_and_counters_equal_the_ledger(demo):
    pool = voucher_pool("HZ")
    assert pool.voucher_scheme.rates == {"standard": "0.3000", "domestic": "0.5000"}
    assert pool.voucher_scheme.pays == "provider"
    (provider,) = Provider.objects.filter(city__code="HZ")
    assert set(provider.offerings.values_list("offering_class", flat=True)) == {"standard", "domestic"}
    claims = VoucherClaim.objects.filter(voucher__pool=pool)
    rates = dict(claims.values_list("offering__offering_class", "rate"))
    assert rates == {"standard": Decimal("0.30"), "domestic": Decimal("0.50")}
    for claim in claims:
        assert claim.payee == "provider" and claim.amount == claim.rate * claim.amount_paid

    # Every pool, allotment, award and voucher: counters equal the ledger sums (tests/grants/invariants.py).
    assert_invariants()
    for voucher in Voucher.objects.all():
        assert ledger(voucher, K.COMMIT) == voucher.face_value
        assert ledger(voucher, K.DISBURSE) == voucher.paid
    for claim in VoucherClaim.objects.filter(status=S.PAID):
        (entry,) = LedgerEntry.objects.filter(claim=claim)
        assert (entry.kind, entry.amount, entry.voucher_id) == (
            K.DISBURSE,
            claim.approved_amount,
            claim.voucher_id,
        )


def test_provider_users_sign_in_see_their_own_claims_and_a_second_load_adds_nothing(demo, capsys):
    password = demo.split("password ", 1)[1].split(":", 1)[0]
    for username in PROVIDER_LOGINS:
        assert username in demo
        user = User.objects.get(username=username)
        assert user.check_password(password) and user.groups.filter(name=PROVIDER).exists()
        (membership,) = InstitutionMember.objects.filter(user=user)
        assert Provider.objects.filter(institution=membership.institution).exists()
        seen = selectors.claims_for(user)
        assert seen.exists()
        assert set(seen.values_list("provider__institution", flat=True)) == {membership.institution_id}

    counts = (Voucher.objects.count(), VoucherClaim.objects.count(), LedgerEntry.objects.count())
    call_command("load_demo")
    assert "already loaded" in capsys.readouterr().out
    assert (Voucher.objects.count(), VoucherClaim.objects.count(), LedgerEntry.objects.count()) == counts
    call_command("load_demo", "--reset-passwords")
    password = capsys.readouterr().out.split("password ", 1)[1].split(":", 1)[0]
    assert User.objects.get(username="hz_provider1").check_password(password)


def test_demo_data_loaded_before_vouchers_gets_them_once(db, capsys, monkeypatch):
    with monkeypatch.context() as earlier:
        earlier.setattr(load_demo, "load_vouchers", lambda **kw: [])
        call_command("load_demo")
    assert not Voucher.objects.exists()
    capsys.readouterr()
    call_command("load_demo")
    out = capsys.readouterr().out
    assert "Vouchers added to the demo loaded earlier" in out and "already loaded" in out
    password = out.split("Provider users, password ", 1)[1].split(":", 1)[0]
    assert User.objects.get(username="sh_provider1").check_password(password)
    assert set(VoucherClaim.objects.values_list("status", flat=True)) == set(S.values)
    assert_invariants()
    counts = (Voucher.objects.count(), LedgerEntry.objects.count(), User.objects.count())
    call_command("load_demo")
    assert "Vouchers added" not in capsys.readouterr().out
    assert (Voucher.objects.count(), LedgerEntry.objects.count(), User.objects.count()) == counts
