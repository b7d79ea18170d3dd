"""The voucher life cycle through the services: issue, claim, pay (a lower amount), reject, expire."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from grants.models import LedgerEntry, Voucher, VoucherClaim
from grants.services import vouchers
from tests import factories
from tests import voucher_factories as vf
from tests.grants.invariants import assert_invariants

pytestmark = pytest.mark.django_db


def test_issue_claim_pay_reject_expire() -> None:
    pool = vf.voucher_pool()
    city = pool.programme.city
    member = factories.user("holder")
    holder = factories.institution(city, member)
    prov = vf.provider(city)
    v = vf.voucher(pool, holder, face="100000")
    pool.refresh_from_db()
    assert pool.committed == Decimal("100000")
    first = vf.claim(v, prov, actor=member)
    second = vf.claim(v, prov, actor=member)
    v.refresh_from_db()
    assert v.held == Decimal("60000") and v.balance == Decimal("40000")
    finance = vf.finance_of(city)
    vouchers.approve_claim(claim=first, actor=finance, amount=Decimal("25000"))
    vouchers.reject_claim(claim=second, actor=finance, reason="The payment proof is for another invoice.")
    v.refresh_from_db()
    assert (v.paid, v.held, v.balance) == (Decimal("25000"), Decimal("0"), Decimal("75000"))
    assert vouchers.expire_vouchers(today=v.valid_until + timedelta(days=1)) == 1
    assert vouchers.expire_vouchers(today=v.valid_until + timedelta(days=1)) == 0
    v.refresh_from_db()
    pool.refresh_from_db()
    assert v.status == Voucher.Status.EXPIRED and v.lapsed == Decimal("75000")
    assert (pool.committed, pool.disbursed) == (Decimal("25000"), Decimal("25000"))
    assert LedgerEntry.objects.filter(voucher=v, kind=LedgerEntry.Kind.DECOMMIT).count() == 1
    assert VoucherClaim.objects.get(pk=second.pk).status == VoucherClaim.Status.REJECTED
    assert vouchers.find_by_code(v.code.lower().replace("-", " ")) == v
    assert_invariants()


def test_every_failed_check_at_once() -> None:
    pool = vf.voucher_pool()
    city = pool.programme.city
    member = factories.user("holder")
    holder = factories.institution(city, member)
    prov = vf.provider(city)
    vf.relate(holder, prov.institution)
    v = vf.voucher(pool, holder, face="10000")
    data = vf.claim_input(
        v,
        prov,
        invoice_date=v.valid_from - timedelta(days=1),
        amount=Decimal("50000"),
        amount_paid=Decimal("200000"),
    )
    with pytest.raises(vouchers.ClaimRefused) as info:
        files = vf.files()
        vouchers.submit_claim(
            voucher=v,
            actor=member,
            data=data,
            invoice_file=files["invoice_file"],
            payment_proof=files["payment_proof"],
        )
    checks = set(info.value.details["checks"])
    assert {"not_related", "invoice_in_validity", "within_balance", "paid_within_invoice"} <= checks
    assert not VoucherClaim.objects.exists()
    assert timezone.localdate() >= v.valid_from
