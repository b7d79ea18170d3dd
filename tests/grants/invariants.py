"""What §4 promises at every moment, checked against the database; and a snapshot to prove a refusal changed
nothing. Shared by the service, property and concurrency tests (and by anyone else who wants them)."""

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Q, Sum

from grants.models import (
    Application,
    AuditEvent,
    Award,
    AwardAgreement,
    DuplicateFlag,
    FiscalYearAllotment,
    FundingPool,
    Institution,
    LedgerEntry,
    MilestoneReport,
    Notification,
    NotificationEmail,
    Programme,
    Proposal,
    ProviderContract,
    Recovery,
    ReportingDuty,
    Review,
    Tranche,
    Voucher,
    VoucherClaim,
)

ZERO = Decimal("0.00")
K = LedgerEntry.Kind

# Every column a service may change, per model: a refusal must leave all of them as they were.
WATCHED: list[tuple[type, tuple[str, ...]]] = [
    (Programme, ("committed", "reserved", "status", "closed_through")),
    (FundingPool, ("committed", "disbursed", "reserved", "cap", "next_reference_number", "closed_through")),
    (
        FiscalYearAllotment,
        ("amount", "committed", "disbursed", "reserved", "carried_in", "carried_out", "lapsed"),
    ),
    (Institution, ("debarred_until", "debarment_reason")),
    (Application, ("status", "reference", "requested_amount", "decision_note")),
    (Review, ("submitted_at", "technical_merit", "recommendation", "declaration", "recusal_reason")),
    (DuplicateFlag, ("other_id", "acknowledged_at", "reason")),
    (Award, ("status", "amount", "paid", "recovered", "amendments")),
    (
        Tranche,
        (
            "status",
            "amount",
            "paid_on",
            "payment_reference",
            "released_by",
            "paid_by",
            "confirmed_by",
            "scheduled_date",
            "fiscal_year",
        ),
    ),
    (Proposal, ("status", "decided_by", "award")),
    (MilestoneReport, ("status",)),
    (AwardAgreement, ("status", "accepted_by", "accepted_at", "accepted_from")),
    (ReportingDuty, ("status", "answers", "submitted_at", "decided_at", "comment")),
    (Recovery, ("amount", "received", "status", "receipts")),
    (Voucher, ("face_value", "held", "paid", "lapsed", "status")),
    (VoucherClaim, ("status", "amount", "approved_amount", "invoice_key")),
    (ProviderContract, ("value", "invoiced")),
    (LedgerEntry, ("kind", "amount")),
    (AuditEvent, ("action",)),
    # Notices and their e-mails are written in the same transaction as the change they announce.
    (Notification, ("event", "user_id")),
    (NotificationEmail, ("notification_id",)),
]


def state() -> dict[str, list[tuple[Any, ...]]]:
    return {
        model.__name__: list(model.objects.order_by("pk").values_list("pk", *fields))  # type: ignore[attr-defined]
        for model, fields in WATCHED
    }


@contextmanager
def refused(exc_type: type[BaseException], **details: Any) -> Iterator[pytest.ExceptionInfo[Any]]:
    """The block raises `exc_type` (with these details, if given) and changes nothing in the database."""
    before = state()
    with pytest.raises(exc_type) as info:
        yield info
    for name, value in details.items():
        assert info.value.details.get(name) == value, (name, info.value.details)  # type: ignore[attr-defined]
    after = state()
    for name in before:
        assert after[name] == before[name], f"{name} changed by a refused operation"


def _ledger(**filters: Any) -> dict[str, Decimal]:
    rows = LedgerEntry.objects.filter(**filters).values("kind").annotate(total=Sum("amount"))
    sums = {r["kind"]: r["total"] for r in rows}
    return {
        "committed": sums.get(K.COMMIT, ZERO) - sums.get(K.DECOMMIT, ZERO),
        "disbursed": sums.get(K.DISBURSE, ZERO) - sums.get(K.RECOVER, ZERO),
        "reserved": sums.get(K.RESERVE, ZERO) - sums.get(K.RELEASE, ZERO),
    }


def _carried(**filters: Any) -> dict[str, Decimal]:
    rows = LedgerEntry.objects.filter(**filters).values("kind").annotate(total=Sum("amount"))
    sums = {r["kind"]: r["total"] for r in rows}
    return {
        "carried_in": sums.get(K.CARRY_IN, ZERO),
        "carried_out": sums.get(K.CARRY_OUT, ZERO),
        "lapsed": sums.get(K.LAPSE, ZERO),
    }


def assert_closed_years_settled() -> None:
    """A closed year (grants.services.fiscal) is settled: every pool of the programme is marked closed with it; no
    tranche of it is open; each allotment of it has nothing committed unpaid or reserved, and its amount plus what
    it carried in is exactly what was paid, carried over and lapsed."""
    for programme in Programme.objects.exclude(closed_through=None):
        closed = programme.closed_through
        assert not programme.pools.exclude(closed_through=closed).exists(), programme
        assert not Tranche.objects.filter(
            award__pool__programme=programme,
            fiscal_year__lte=closed,
            status__in=(Tranche.Status.PLANNED, Tranche.Status.PAYABLE, Tranche.Status.WITHHELD),
        ).exists(), programme
        for a in FiscalYearAllotment.objects.filter(pool__programme=programme, fiscal_year__lte=closed):
            assert a.committed == a.disbursed and a.reserved == ZERO, a
            assert a.committed + a.carried_out + a.lapsed == a.amount + a.carried_in, a


def assert_invariants() -> None:
    """§4: 0 <= disbursed <= committed <= committed + reserved <= cap for every pool and allotment; counters
    equal the ledger sums (reserved: RESERVE - RELEASE); programme committed and reserved = Σ its pools; a proposal
    holds money reserved exactly while it is pending; per award Σ non-cancelled tranches = amount, paid <= amount."""
    for pool in FundingPool.objects.all():
        assert ZERO <= pool.disbursed <= pool.committed <= pool.committed + pool.reserved <= pool.cap, pool
        assert pool.reserved >= ZERO, pool
        counters = {"committed": pool.committed, "disbursed": pool.disbursed, "reserved": pool.reserved}
        assert _ledger(pool=pool) == counters, pool
    for allotment in FiscalYearAllotment.objects.all():
        assert ZERO <= allotment.disbursed <= allotment.committed, allotment
        taken = allotment.committed + allotment.reserved + allotment.carried_out + allotment.lapsed
        assert allotment.reserved >= ZERO and taken <= allotment.amount + allotment.carried_in, allotment
        ledger = _ledger(pool_id=allotment.pool_id, fiscal_year=allotment.fiscal_year)
        counters = {
            "committed": allotment.committed,
            "disbursed": allotment.disbursed,
            "reserved": allotment.reserved,
        }
        assert ledger == counters, allotment
        assert _carried(pool_id=allotment.pool_id, fiscal_year=allotment.fiscal_year) == {
            "carried_in": allotment.carried_in,
            "carried_out": allotment.carried_out,
            "lapsed": allotment.lapsed,
        }, allotment
        # What a year carries out is what the next carries in.
        assert (
            allotment.carried_out
            == _carried(pool_id=allotment.pool_id, fiscal_year=allotment.fiscal_year + 1)["carried_in"]
        ), allotment
    assert_closed_years_settled()
    for programme in Programme.objects.all():
        pools = programme.pools.aggregate(c=Sum("committed", default=ZERO), r=Sum("reserved", default=ZERO))
        assert (programme.committed, programme.reserved) == (pools["c"], pools["r"]), programme
        assert programme.committed + programme.reserved <= programme.total_budget
    for proposal in Proposal.objects.all():
        held = _ledger(proposal=proposal)["reserved"]
        if proposal.status != Proposal.Status.PENDING or proposal.kind == Proposal.Kind.PAYMENT:
            assert held == ZERO, proposal
        else:
            assert held > ZERO, proposal
    for award in Award.objects.all():
        live = award.tranches.exclude(status=Tranche.Status.CANCELLED)
        assert live.aggregate(s=Sum("amount", default=ZERO))["s"] == award.amount, award
        paid = award.tranches.filter(status=Tranche.Status.PAID).aggregate(s=Sum("amount", default=ZERO))["s"]
        assert paid == award.paid <= award.amount, award
        assert ZERO <= award.recovered <= award.paid, award
        assert _ledger(award=award) == {
            "committed": award.amount - award.recovered,
            "disbursed": award.paid - award.recovered,
            "reserved": ZERO,
        }, award
        if award.status in (Award.Status.COMPLETED, Award.Status.TERMINATED):
            assert not award.tranches.filter(
                Q(status=Tranche.Status.PLANNED) | Q(status=Tranche.Status.PAYABLE)
            ).exists(), award
    for recovery in Recovery.objects.all():
        assert ZERO <= recovery.received <= recovery.amount
    assert_vouchers_settled()


def assert_vouchers_settled() -> None:
    """Per voucher (grants/services/vouchers.py): its ledger holds face value - lapsed committed and what was paid
    disbursed; paid + held + lapsed <= face value; held = Σ its claims awaiting verification, paid = Σ the approved
    amounts of its paid claims; an expired voucher has no balance; per contract, what claims invoiced under it is
    within its value and is the sum of their invoices."""
    for voucher in Voucher.objects.all():
        assert _ledger(voucher=voucher) == {
            "committed": voucher.face_value - voucher.lapsed,
            "disbursed": voucher.paid,
            "reserved": ZERO,
        }, voucher
        assert ZERO <= voucher.paid + voucher.held + voucher.lapsed <= voucher.face_value, voucher
        claims = voucher.claims.all()
        held = claims.filter(status=VoucherClaim.Status.SUBMITTED).aggregate(s=Sum("amount", default=ZERO))[
            "s"
        ]
        paid = claims.filter(status=VoucherClaim.Status.PAID).aggregate(
            s=Sum("approved_amount", default=ZERO)
        )["s"]
        assert (voucher.held, voucher.paid) == (held, paid), voucher
        if voucher.status == Voucher.Status.EXPIRED:
            assert voucher.balance == ZERO, voucher
    for contract in ProviderContract.objects.all():
        invoiced = sum((c.invoice_total for c in contract.claims.all()), ZERO)
        assert contract.invoiced == invoiced <= contract.value, contract


def audit_actions(obj: Any) -> list[str]:
    """The audit trail of one object, oldest first."""
    return list(
        AuditEvent.objects.filter(object_type=obj._meta.model_name, object_id=str(obj.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
