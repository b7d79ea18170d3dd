"""Posting money movements: ledger entries and the counters they justify, together, under locks.

Lock order, everywhere (so two transactions never wait on each other in a cycle):
proposal → application → institution → programme → pool → fiscal-year allotments (by year) → award → tranche →
recovery; and for vouchers (grants.services.vouchers), after the allotments: voucher → provider contract → claim.
Approval takes the budget rows last of all, with conditional UPDATEs (`commit_last`), so the rows every approval of
a pool shares are held only for the few statements before COMMIT.
Every counter has a CHECK constraint behind it, so even a bug here cannot push a pool past its cap.

Reserved money (RESERVE entries of a proposal awaiting a second officer, grants.services.proposals) counts against
every cap like committed money: room is cap - committed - reserved, here (`commit_last`) as in levels.py and in
the CHECK constraints. RELEASE gives it back.

Every row lock is `FOR UPDATE OF` the row's own table (`of=("self",)` when the query joins): on PostgreSQL a plain
FOR UPDATE over a join also locks the joined rows (the programme, the city), in the join's order rather than this
one, and two transactions taking the same rows in different orders deadlock.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from grants.errors import DomainError, FiscalYearClosed
from grants.models import (
    ALLOTMENT_ONLY_COUNTERS,
    ALLOTMENT_SPENDABLE,
    LEDGER_EFFECTS,
    Award,
    FiscalYearAllotment,
    FundingPool,
    LedgerEntry,
    Programme,
    Proposal,
    Tranche,
    Voucher,
    VoucherClaim,
)
from grants.selectors import ledger_totals
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

    The locks are FOR NO KEY UPDATE, the lock an UPDATE of the counters itself takes: they exclude every other
    writer of these rows, but not a transaction that merely inserts a row referring to them (an approval's new
    award takes FOR KEY SHARE on its pool through the foreign key, long before its conditional UPDATEs). A plain
    FOR UPDATE would wait for that approval while the approval waits for this transaction's programme or pool: a
    deadlock (tests/grants/test_fiscal_concurrency.py found it, a year's close racing approvals and payments).
    """
    locked_programme = None
    if programme:
        programme_id = FundingPool.objects.values_list("programme_id", flat=True).get(pk=pool_id)
        locked_programme = Programme.objects.select_for_update(no_key=True).get(pk=programme_id)
    pool = (
        FundingPool.objects.select_for_update(of=("self",), no_key=True)
        .select_related("programme__city")
        .get(pk=pool_id)
    )
    if locked_programme is not None:
        pool.programme = locked_programme
    allotment_qs = (
        FiscalYearAllotment.objects.select_for_update(no_key=True)
        .filter(pool_id=pool_id)
        .order_by("fiscal_year")
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
    proposal: Proposal | None = None
    # A voucher's commitment or lapse, and the claim a voucher payment pays (grants.services.vouchers).
    voucher: Voucher | None = None
    claim: VoucherClaim | None = None
    # CARRY_OUT, CARRY_IN, LAPSE: the year the money was first allotted for (LedgerEntry.origin_year).
    origin_year: int | None = None


def refuse_closed_year(locked: Locked, years: Iterable[int]) -> None:
    """Refuse (FiscalYearClosed) a movement in a fiscal year the programme closed. Asked under the pool's lock,
    which the close holds while it marks the year closed: no movement can slip in behind it."""
    closed = max(
        (c for c in (locked.pool.closed_through, getattr(locked.programme, "closed_through", None)) if c),
        default=None,
    )
    early = min(years, default=None)
    if closed is not None and early is not None and early <= closed:
        raise FiscalYearClosed(fiscal_year=early, closed_through=closed)


def post(
    locked: Locked,
    movements: list[Movement],
    *,
    actor: User,
    reason: str,
    key_base: str,
    into_closed_year: bool = False,
) -> list[LedgerEntry]:
    """Write the ledger entries and move the pool, programme and allotment counters by the same amounts.

    The caller holds the locks from `lock_pool` and has checked every limit; the CHECK constraints catch anything
    it missed and roll the whole transaction back. A closed fiscal year is refused (`refuse_closed_year`) unless
    `into_closed_year`: money received back for a closed year, which lapses there (grants.services.payments).
    """
    if not movements:
        return []
    if not into_closed_year:
        refuse_closed_year(locked, (m.fiscal_year for m in movements))
    now = timezone.now()
    entries, moved = _write_entries(locked.pool, movements, actor, reason, key_base, now)
    committed, disbursed, reserved = moved["committed"], moved["disbursed"], moved["reserved"]
    pool = locked.pool
    pool.committed += sum(committed.values(), Decimal(0))
    pool.disbursed += sum(disbursed.values(), Decimal(0))
    pool.reserved += sum(reserved.values(), Decimal(0))
    pool.tracking_due_at = now
    pool.save(update_fields=["committed", "disbursed", "reserved", "tracking_due_at"])
    if any(committed.values()) or any(reserved.values()):
        programme = locked.programme
        if programme is None:
            raise RuntimeError("moving committed or reserved money needs the programme locked")
        programme.committed += sum(committed.values(), Decimal(0))
        programme.reserved += sum(reserved.values(), Decimal(0))
        programme.save(update_fields=["committed", "reserved"])
    # One UPDATE per allotment with every counter it moves: its CHECK constraint weighs them together (a year's
    # close carries money in and commits rescheduled tranches against it in the same posting).
    for year in sorted({year for by_year in moved.values() for year in by_year}):
        allotment = locked.allotments.get(year)
        if allotment is None:
            if any(moved[counter].get(year) for counter in ALLOTMENT_ONLY_COUNTERS):
                raise RuntimeError(f"carried and lapsed money moves only in a locked allotment (year {year})")
            continue
        for counter, by_year in moved.items():
            setattr(allotment, counter, getattr(allotment, counter) + by_year.get(year, Decimal(0)))
        allotment.save(update_fields=list(moved))

    return entries


def _write_entries(
    pool: FundingPool, movements: list[Movement], actor: User, reason: str, key_base: str, now: datetime
) -> tuple[list[LedgerEntry], dict[str, dict[int, Decimal]]]:
    """Insert the ledger entries; return them with the net change of each counter (committed, disbursed,
    reserved) per fiscal year. Writes the outbox notice of them (tracking, webhooks) and asks for it to be sent
    after the commit."""
    moved: dict[str, dict[int, Decimal]] = {
        counter: defaultdict(Decimal) for counter, _sign in LEDGER_EFFECTS.values()
    }
    entries = []
    for i, m in enumerate(movements):
        if m.amount <= 0:
            raise ValueError(f"ledger amounts are positive, got {m.amount}")
        counter, sign = LEDGER_EFFECTS[m.kind]
        moved[counter][m.fiscal_year] += sign * m.amount
        entries.append(
            LedgerEntry(
                kind=m.kind,
                amount=m.amount,
                pool=pool,
                fiscal_year=m.fiscal_year,
                award=m.award,
                tranche=m.tranche,
                proposal=m.proposal,
                voucher=m.voucher,
                claim=m.claim,
                origin_year=m.origin_year,
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
    return entries, moved


def commit_last(
    pool: FundingPool, movements: list[Movement], *, actor: User, reason: str, key_base: str
) -> list[LedgerEntry]:
    """Commit money (COMMIT movements), or reserve it for a proposal (RESERVE movements), against the programme
    total, the pool cap and the fiscal-year allotments with one conditional UPDATE each, in the fixed lock order,
    as the last statements of the caller's transaction. Room is what neither commitments nor reservations hold.
    An UPDATE that matches no row means that level has no room: the whole transaction is refused with
    BudgetExceeded naming the first such level in the order of grants.services.levels, with what it has left now.
    Approvals and increasing amendments commit here, proposals reserve here.

    Under PostgreSQL's READ COMMITTED an UPDATE that waited for another transaction's lock re-checks its WHERE
    against the row that transaction left, so no two approvals can both take the last of a cap.
    """
    kinds = {m.kind for m in movements}
    if kinds not in ({Kind.COMMIT}, {Kind.RESERVE}):
        raise ValueError("commit_last only commits or only reserves money")
    counter = LEDGER_EFFECTS[kinds.pop()][0]
    taken = F("committed") + F("reserved")
    now = timezone.now()
    by_year: dict[int, Decimal] = defaultdict(Decimal)
    for m in movements:
        by_year[m.fiscal_year] += m.amount
    total = sum(by_year.values(), Decimal(0))
    # A closed fiscal year takes nothing: its close holds these rows' locks while it marks them closed.
    still_open = Q(closed_through__isnull=True) | Q(closed_through__lt=min(by_year))
    programme_has_room = Programme.objects.filter(
        still_open, pk=pool.programme_id, committed__lte=F("total_budget") - F("reserved") - total
    ).update(**{counter: F(counter) + total})
    pool_has_room = FundingPool.objects.filter(
        still_open, pk=pool.pk, committed__lte=F("cap") - F("reserved") - total
    ).update(**{counter: F(counter) + total}, tracking_due_at=now)
    if not (programme_has_room and pool_has_room):
        refuse_closed_year(
            Locked(
                Programme.objects.only("closed_through").get(pk=pool.programme_id),
                FundingPool.objects.only("closed_through").get(pk=pool.pk),
            ),
            by_year,
        )
    if not pool_has_room:
        current = FundingPool.objects.annotate(taken=taken).values("cap", "taken").get(pk=pool.pk)
        raise Level("pool_cap", total, current["cap"], current["taken"]).refusal()
    # The pool row is locked now, and creating an allotment needs it: the set of allotments cannot change.
    allotted = set(
        FiscalYearAllotment.objects.filter(pool_id=pool.pk).order_by().values_list("fiscal_year", flat=True)
    )
    if allotted:
        for year, amount in sorted(by_year.items()):
            has_room = year in allotted and FiscalYearAllotment.objects.filter(
                pool_id=pool.pk, fiscal_year=year, committed__lte=ALLOTMENT_SPENDABLE - F("reserved") - amount
            ).update(**{counter: F(counter) + amount})
            if not has_room:
                figures = (
                    FiscalYearAllotment.objects.filter(pool_id=pool.pk, fiscal_year=year)
                    .annotate(taken=taken, limit=ALLOTMENT_SPENDABLE)
                    .values("limit", "taken")
                    .first()
                ) or {"limit": Decimal(0), "taken": Decimal(0)}
                raise Level(
                    "fiscal_year_allotment", amount, figures["limit"], figures["taken"], fiscal_year=year
                ).refusal()
    # Updated first (the lock order), refused last (the levels' order): the allotments come before it.
    if not programme_has_room:
        programme = (
            Programme.objects.annotate(taken=taken).values("total_budget", "taken").get(pk=pool.programme_id)
        )
        raise Level("programme_total", total, programme["total_budget"], programme["taken"]).refusal()
    # Written under the pool's lock, like every other movement of the pool: its ledger's id order is the order in
    # which its money moved.
    entries, _moved = _write_entries(pool, movements, actor, reason, key_base, now)
    return entries


def release(locked: Locked, proposal: Proposal, *, actor: User | None, reason: str) -> list[LedgerEntry]:
    """Give back what a proposal holds reserved, year by year as its own entries say (RELEASE), under the locks
    of `lock_pool`. One key per proposal: whatever releases it (confirmation, sending back, expiry) releases it
    once; a second release is refused by the key's unique index."""
    held = ledger_totals(LedgerEntry.objects.filter(proposal=proposal), by=("fiscal_year",))
    movements = [
        Movement(Kind.RELEASE, totals.reserved, year, proposal=proposal)
        for (year,), totals in sorted(held.items())
        if totals.reserved > 0
    ]
    return post(
        locked,
        movements,
        actor=actor,  # type: ignore[arg-type]  # None: the expiry sweep, nobody
        reason=reason,
        key_base=f"proposal:{proposal.pk}:release",
    )


def _after_commit(pool_id: int, entry_ids: list[int]) -> None:
    after_commit.money_moved(pool_id, entry_ids)
