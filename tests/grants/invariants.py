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
    FiscalYearAllotment,
    FundingPool,
    Institution,
    LedgerEntry,
    MilestoneReport,
    Programme,
    Recovery,
    Review,
    Tranche,
)

ZERO = Decimal("0.00")
K = LedgerEntry.Kind

# Every column a service may change, per model: a refusal must leave all of them as they were.
WATCHED: list[tuple[type, tuple[str, ...]]] = [
    (Programme, ("committed", "status")),
    (FundingPool, ("committed", "disbursed", "cap", "next_reference_number")),
    (FiscalYearAllotment, ("amount", "committed", "disbursed")),
    (Institution, ("debarred_until", "debarment_reason")),
    (Application, ("status", "reference", "requested_amount", "decision_note")),
    (Review, ("submitted_at", "technical_merit", "recommendation")),
    (Award, ("status", "amount", "paid", "recovered", "amendments")),
    (Tranche, ("status", "amount", "paid_on", "payment_reference")),
    (MilestoneReport, ("status",)),
    (Recovery, ("amount", "received", "status", "receipts")),
    (LedgerEntry, ("kind", "amount")),
    (AuditEvent, ("action",)),
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
    }


def assert_invariants() -> None:
    """§4: 0 <= disbursed <= committed <= cap for every pool and allotment; counters equal the ledger sums;
    programme committed = Σ its pools; per award Σ non-cancelled tranches = amount, paid <= amount."""
    for pool in FundingPool.objects.all():
        assert ZERO <= pool.disbursed <= pool.committed <= pool.cap, pool
        assert _ledger(pool=pool) == {"committed": pool.committed, "disbursed": pool.disbursed}, pool
    for allotment in FiscalYearAllotment.objects.all():
        assert ZERO <= allotment.disbursed <= allotment.committed <= allotment.amount, allotment
        ledger = _ledger(pool_id=allotment.pool_id, fiscal_year=allotment.fiscal_year)
        assert ledger == {"committed": allotment.committed, "disbursed": allotment.disbursed}, allotment
    for programme in Programme.objects.all():
        pools = programme.pools.aggregate(s=Sum("committed", default=ZERO))["s"]
        assert programme.committed == pools, programme
        assert programme.committed <= programme.total_budget
    for award in Award.objects.all():
        live = award.tranches.exclude(status=Tranche.Status.CANCELLED)
        assert live.aggregate(s=Sum("amount", default=ZERO))["s"] == award.amount, award
        paid = award.tranches.filter(status=Tranche.Status.PAID).aggregate(s=Sum("amount", default=ZERO))["s"]
        assert paid == award.paid <= award.amount, award
        assert ZERO <= award.recovered <= award.paid, award
        assert _ledger(award=award) == {
            "committed": award.amount - award.recovered,
            "disbursed": award.paid - award.recovered,
        }, award
        if award.status in (Award.Status.COMPLETED, Award.Status.TERMINATED):
            assert not award.tranches.filter(
                Q(status=Tranche.Status.PLANNED) | Q(status=Tranche.Status.PAYABLE)
            ).exists(), award
    for recovery in Recovery.objects.all():
        assert ZERO <= recovery.received <= recovery.amount


def audit_actions(obj: Any) -> list[str]:
    """The audit trail of one object, oldest first."""
    return list(
        AuditEvent.objects.filter(object_type=obj._meta.model_name, object_id=str(obj.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
