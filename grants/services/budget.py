"""Posting money movements: ledger entries and the counters they justify, together, under locks.

Lock order, everywhere (so two transactions never wait on each other in a cycle):
application → institution → programme → pool → fiscal-year allotments (by year) → award → tranche → recovery.
Approval takes the budget rows last of all, with conditional UPDATEs (`commit_last`), so the rows every approval of
a pool shares are held only for the few statements before COMMIT.
Every counter has a CHECK constraint behind it, so even a bug here cannot push a pool past its cap.

Every row lock is `FOR UPDATE OF` the row's own table (`of=("self",)` when the query joins): on PostgreSQL a plain
FOR UPDATE over a join also locks the joined rows (the programme, the city), in the join's order rather than this
one, and two transactions taking the same rows in different orders deadlock.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from grants.errors import DomainError
from grants.models import (
    LEDGER_EFFECTS,
    Award,
    FiscalYearAllotment,
    FundingPool,
    LedgerEntry,
    Programme,
    Tranche,
)
from grants.services import after_commit, outbox
from grants.services.levels import Level

Kind = LedgerEntry.Kind


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    status = 409


@dataclass
class Locked:
    """The budget rows of one pool, locked for the rest of the transaction."""

    programme: Programme | None
    pool: FundingPool
    allotments: dict[int, FiscalYearAllotment] = field(default_factory=dict)


def lock_pool(pool_id: int, *, programme: bool = True, years: set[int] | None = None) -> Locked:
    """Lock the pool's budget rows in the fixed order. `years=None` locks every allotment of the pool.

    Money that only moves between disbursed and committed (payments) needs no programme lock: the programme keeps a
    committed counter only.
    """
    locked_programme = None
    if programme:
        programme_id = FundingPool.objects.values_list("programme_id", flat=True).get(pk=pool_id)
        locked_programme = Programme.objects.select_for_update().get(pk=programme_id)
    pool = (
        FundingPool.objects.select_for_update(of=("self",)).select_related("programme__city").get(pk=pool_id)
    )
    if locked_programme is not None:
        pool.programme = locked_programme
    allotment_qs = (
        FiscalYearAllotment.objects.select_for_update().filter(pool_id=pool_id).order_by("fiscal_year")
    )
    if years is not None:
        allotment_qs = allotment_qs.filter(fiscal_year__in=years)
    return Locked(locked_programme, pool, {a.fiscal_year: a for a in allotment_qs})


def pool_has_allotments(pool_id: int) -> bool:
    return FiscalYearAllotment.objects.filter(pool_id=pool_id).exists()


def replayed(key_base: str, **expected: Any) -> LedgerEntry | None:
    """The first entry of an operation already posted under this key, or None.

    A key already used for another object is refused: the same key must mean the same request.
    """
    entry = LedgerEntry.objects.filter(idempotency_key=f"{key_base}|0").first()
    if entry is None:
        return None
    for attr, value in expected.items():
        if getattr(entry, attr) != value:
            raise IdempotencyConflict(
                _("This idempotency key was already used for a different request."), key=key_base
            )
    return entry


@dataclass
class Movement:
    kind: str
    amount: Decimal
    fiscal_year: int
    award: Award | None = None
    tranche: Tranche | None = None


def post(
    locked: Locked, movements: list[Movement], *, actor: User, reason: str, key_base: str
) -> list[LedgerEntry]:
    """Write the ledger entries and move the pool, programme and allotment counters by the same amounts.

    The caller holds the locks from `lock_pool` and has checked every limit; the CHECK constraints catch anything
    it missed and roll the whole transaction back.
    """
    if not movements:
        return []
    now = timezone.now()
    entries, committed, disbursed = _write_entries(locked.pool, movements, actor, reason, key_base, now)
    pool = locked.pool
    pool.committed += sum(committed.values(), Decimal(0))
    pool.disbursed += sum(disbursed.values(), Decimal(0))
    pool.tracking_due_at = now
    pool.save(update_fields=["committed", "disbursed", "tracking_due_at"])
    if any(committed.values()):
        programme = locked.programme
        if programme is None:
            raise RuntimeError("moving committed money needs the programme locked")
        programme.committed += sum(committed.values(), Decimal(0))
        programme.save(update_fields=["committed"])
    for year in sorted(set(committed) | set(disbursed)):
        allotment = locked.allotments.get(year)
        if allotment is None:
            continue
        allotment.committed += committed[year]
        allotment.disbursed += disbursed[year]
        allotment.save(update_fields=["committed", "disbursed"])

    return entries


def _write_entries(
    pool: FundingPool, movements: list[Movement], actor: User, reason: str, key_base: str, now: datetime
) -> tuple[list[LedgerEntry], dict[int, Decimal], dict[int, Decimal]]:
    """Insert the ledger entries; return them with the net change of committed and disbursed per fiscal year.
    Writes the outbox notice of them (tracking, webhooks) and asks for it to be sent after the commit."""
    committed: dict[int, Decimal] = defaultdict(Decimal)
    disbursed: dict[int, Decimal] = defaultdict(Decimal)
    entries = []
    for i, m in enumerate(movements):
        if m.amount <= 0:
            raise ValueError(f"ledger amounts are positive, got {m.amount}")
        counter, sign = LEDGER_EFFECTS[m.kind]
        (committed if counter == "committed" else disbursed)[m.fiscal_year] += sign * m.amount
        entries.append(
            LedgerEntry(
                kind=m.kind,
                amount=m.amount,
                pool=pool,
                fiscal_year=m.fiscal_year,
                award=m.award,
                tranche=m.tranche,
                actor=actor if getattr(actor, "pk", None) else None,
                created_at=now,
                reason=reason[:300],
                idempotency_key=f"{key_base}|{i}",
            )
        )
    LedgerEntry.objects.bulk_create(entries)
    pool_id = pool.pk
    entry_ids = [e.pk for e in entries]
    # The notice is a row of this transaction (it exists exactly when the entries do); after the commit the worker
    # is told to send it at once, and if the broker is down then, beat's drain sends it later.
    outbox.record_money_moved(pool_id=pool_id, entry_ids=entry_ids)
    transaction.on_commit(lambda: _after_commit(pool_id, entry_ids))
    return entries, committed, disbursed


def commit_last(
    pool: FundingPool, movements: list[Movement], *, actor: User, reason: str, key_base: str
) -> list[LedgerEntry]:
    """Commit money (COMMIT movements only) against the programme total, the pool cap and the fiscal-year
    allotments with one conditional UPDATE each, in the fixed lock order, as the last statements of the caller's
    transaction. An UPDATE that matches no row means that level has no room: the whole transaction is refused with
    BudgetExceeded naming the first such level in the order of grants.services.levels, with what it has left now.
    Approvals and increasing amendments both commit here.

    Under PostgreSQL's READ COMMITTED an UPDATE that waited for another transaction's lock re-checks its WHERE
    against the row that transaction left, so no two approvals can both take the last of a cap.
    """
    if any(m.kind != Kind.COMMIT for m in movements):
        raise ValueError("commit_last only commits money")
    now = timezone.now()
    by_year: dict[int, Decimal] = defaultdict(Decimal)
    for m in movements:
        by_year[m.fiscal_year] += m.amount
    total = sum(by_year.values(), Decimal(0))
    programme_has_room = Programme.objects.filter(
        pk=pool.programme_id, committed__lte=F("total_budget") - total
    ).update(committed=F("committed") + total)
    pool_has_room = FundingPool.objects.filter(pk=pool.pk, committed__lte=F("cap") - total).update(
        committed=F("committed") + total, tracking_due_at=now
    )
    if not pool_has_room:
        current = FundingPool.objects.values("cap", "committed").get(pk=pool.pk)
        raise Level("pool_cap", total, current["cap"], current["committed"]).refusal()
    # The pool row is locked now, and creating an allotment needs it: the set of allotments cannot change.
    allotted = set(
        FiscalYearAllotment.objects.filter(pool_id=pool.pk).order_by().values_list("fiscal_year", flat=True)
    )
    if allotted:
        for year, amount in sorted(by_year.items()):
            has_room = year in allotted and FiscalYearAllotment.objects.filter(
                pool_id=pool.pk, fiscal_year=year, committed__lte=F("amount") - amount
            ).update(committed=F("committed") + amount)
            if not has_room:
                figures = (
                    FiscalYearAllotment.objects.filter(pool_id=pool.pk, fiscal_year=year)
                    .values("amount", "committed")
                    .first()
                ) or {"amount": Decimal(0), "committed": Decimal(0)}
                raise Level(
                    "fiscal_year_allotment", amount, figures["amount"], figures["committed"], fiscal_year=year
                ).refusal()
    # Updated first (the lock order), refused last (the levels' order): the allotments come before it.
    if not programme_has_room:
        programme = Programme.objects.values("total_budget", "committed").get(pk=pool.programme_id)
        raise Level("programme_total", total, programme["total_budget"], programme["committed"]).refusal()
    # Written under the pool's lock, like every other movement of the pool: its ledger's id order is the order in
    # which its money moved.
    entries, _committed, _disbursed = _write_entries(pool, movements, actor, reason, key_base, now)
    return entries


def _after_commit(pool_id: int, entry_ids: list[int]) -> None:
    after_commit.money_moved(pool_id, entry_ids)
