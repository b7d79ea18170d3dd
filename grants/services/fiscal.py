"""Fiscal years as a treasury runs them (issue #15): a slipped tranche rescheduled into a later year, and a
programme's year closed with carry-over (结转) or lapse (结余) of what each pool left unspent.

Rescheduling moves a tranche's commitment from its year to the later one (DECOMMIT, COMMIT) after the target year
has been asked through grants.services.levels (the allotment and the institution's per-year maximum: the pool and
the programme are asked the net, nothing). Finance reschedules (grants.workflow.RESCHEDULE).

Closing year Y of a programme (any officer of its city previews it, finance confirms it:
grants.workflow.YEAR_CLOSE_PREVIEW, YEAR_CLOSE), per pool:

1. every unpaid tranche of Y (planned, payable or withheld) is rescheduled to the same day of Y+1, or cancelled
   and de-committed, as the programme's `unpaid_tranches` rule says (de-committed anyway when Y is the programme's
   last year);
2. what the allotment of Y then leaves unspent is carried over into Y+1 (CARRY_OUT from Y, CARRY_IN to Y+1) as
   far as the programme allows: money is carried for at most `carry_over_years` years after the year it was
   allotted for (LedgerEntry.origin_year) and at most `carry_over_max_rate` of Y's own allotment is carried. The
   rest lapses (LAPSE). Commitments are taken from the oldest money first; carried, the newest is kept first.
   A pool without allotments has no yearly balance: only its tranches move;
3. the programme and every pool are marked closed through Y (`closed_through`) under their locks: every later
   movement in Y or before is refused (grants.services.budget.refuse_closed_year, `commit_last`). Money received
   back for a closed year lapses there (grants.services.payments).

Years close in order, once they have ended, and not while money of the year is reserved by a proposal awaiting a
second officer. A second close of a closed year changes nothing. The preview is the same plan, computed without
locks and without writing (`preview_close`); the close recomputes it under the locks (`close_fiscal_year`).

Lock order (grants.services.budget): institutions (of the tranches that move, where a pool limits institutions
per year) → programme → pools (by id) → each pool's allotments → awards → tranches.
"""

import copy
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_DOWN, Decimal

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from grants import audit, selectors, workflow
from grants.errors import DomainError, InvalidInput
from grants.models import (
    Award,
    FiscalYearAllotment,
    FundingPool,
    Institution,
    LedgerEntry,
    Programme,
    Tranche,
    Voucher,
    VoucherClaim,
)
from grants.money import ZERO, format_money
from grants.roles import require
from grants.services import notifications
from grants.services.approval import lock_institution_for_year_limit
from grants.services.budget import (
    Kind,
    Locked,
    Movement,
    lock_pool,
    post,
    refuse_closed_year,
    replayed,
)
from grants.services.levels import ORDER, Level, first_without_room, levels
from grants.services.payments import _cancel_locked, _complete_if_done

T = Tranche.Status
RULE = Programme.UnpaidTranches
# A tranche the schedule may still move: not paid, not cancelled, not already due for payment (a payable tranche
# is withheld first if its payment must wait).
RESCHEDULABLE = (T.PLANNED, T.WITHHELD)


class NotReschedulable(DomainError):
    code = "not_reschedulable"
    status = 409


class YearNotClosable(DomainError):
    """The year cannot be closed now: it has not ended, an earlier year is open, money of it is reserved, or an
    unpaid tranche has nowhere to go. The message says which and what to do."""

    code = "fiscal_year_not_closable"
    status = 409


def next_anniversary(day: date) -> date:
    """The same day a year later (28 February for a 29th)."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)


# --- Rescheduling -----------------------------------------------------------------------------------------------


def reschedule_tranche(
    *,
    tranche: Tranche,
    actor: User,
    scheduled_date: date,
    reason: str,
    idempotency_key: str | None = None,
) -> Tranche:
    """Move a planned or withheld tranche to a later date. Into another fiscal year, its commitment moves with it
    (DECOMMIT from the old year, COMMIT into the new, under one key) if the new year's allotment and the
    institution's per-year maximum have room (BudgetExceeded names the level and what is left); the old year must
    be open and the new one within the programme. Audited; the applicant is told.

    Locks the institution (where the pool limits it per year), the programme, the pool and every allotment of it,
    the award, the tranche.
    """
    if not (reason or "").strip():
        raise InvalidInput(_("Say why the tranche is rescheduled."), fields={"reason": [_("Required.")]})
    pool_id, institution_id = Tranche.objects.values_list("award__pool_id", "award__institution_id").get(
        pk=tranche.pk
    )
    with transaction.atomic():
        lock_institution_for_year_limit(FundingPool.objects.get(pk=pool_id), institution_id)
        locked = lock_pool(pool_id)
        assert locked.programme is not None
        award = Award.objects.select_for_update(of=("self",)).get(pk=tranche.award_id)
        award.pool = locked.pool
        tranche = Tranche.objects.select_for_update().get(pk=tranche.pk)
        tranche.award = award
        city_id = locked.programme.city_id
        require(actor, workflow.RESCHEDULE, city_id)
        moves = LedgerEntry.objects.filter(tranche=tranche, kind=Kind.COMMIT).count()
        key_base = (
            f"reschedule:{idempotency_key}"
            if idempotency_key
            else f"tranche:{tranche.pk}:reschedule:{scheduled_date.isoformat()}:{moves}"
        )
        if idempotency_key and replayed(key_base, tranche_id=tranche.pk) is not None:
            return tranche
        if tranche.status not in RESCHEDULABLE or award.status not in workflow.OPEN_AWARD:
            raise NotReschedulable(
                _(
                    "Only a planned or withheld tranche of an active or suspended award can be rescheduled; this "
                    "tranche is %(status)s."
                )
                % {"status": T(tranche.status).label},
                status=tranche.status,
            )
        old_date, old_year, new_year = tranche.scheduled_date, tranche.fiscal_year, scheduled_date.year
        if scheduled_date <= old_date:
            raise InvalidInput(
                _("The new date must be later than %(date)s.") % {"date": old_date.isoformat()},
                fields={"scheduled_date": [_("Later than the current date.")]},
            )
        programme = locked.programme
        if new_year > programme.last_fiscal_year:
            raise InvalidInput(
                _("The programme's last fiscal year is %(last)d; the tranche cannot move into %(year)d.")
                % {"last": programme.last_fiscal_year, "year": new_year},
                fields={"scheduled_date": [_("Within the programme's fiscal years.")]},
            )
        refuse_closed_year(locked, [old_year])
        if new_year != old_year:
            # The levels of an approval, asked the move: the new year's allotment and the institution's maximum in
            # it; the pool and the programme see no change (their net is zero).
            rows = levels(
                pool=locked.pool,
                programme=programme,
                allotments=locked.allotments,
                institution_id=institution_id,
                asked_by_year={old_year: -tranche.amount, new_year: tranche.amount},
                award_total=ZERO,
                cost_share_limit=None,
            )
            full = first_without_room(rows)
            if full is not None:
                raise full.refusal()
            post(
                locked,
                [
                    Movement(Kind.DECOMMIT, tranche.amount, old_year, award=award, tranche=tranche),
                    Movement(Kind.COMMIT, tranche.amount, new_year, award=award, tranche=tranche),
                ],
                actor=actor,
                reason=f"{award.reference} #{tranche.sequence} rescheduled to {scheduled_date}: {reason}",
                key_base=key_base,
            )
        audit.change(
            tranche,
            actor=actor,
            action="tranche.reschedule",
            city_id=city_id,
            audited=("scheduled_date", "fiscal_year"),
            values={"scheduled_date": scheduled_date, "fiscal_year": new_year},
            noted={"reason": reason},
        )
        _tell_applicant(tranche, old_date, note=reason)
    return tranche


def _tell_applicant(tranche: Tranche, old_date: date, *, note: str) -> None:
    notifications.notify(
        notifications.Event.TRANCHE_RESCHEDULED,
        obj=tranche,
        users=notifications.applicants(tranche.award.institution_id),
        context={"old_date": old_date, "new_date": tranche.scheduled_date, "note": note},
    )


# --- Closing a year: the plan -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrancheFate:
    """An unpaid tranche of the closed year and what the close does with it."""

    tranche_id: int
    award_id: int
    reference: str
    sequence: int
    institution_id: int
    amount: Decimal
    scheduled_date: date
    status: str
    # The new date (rescheduled into the next year), or None (cancelled and de-committed).
    new_date: date | None

    @property
    def rescheduled(self) -> bool:
        return self.new_date is not None


@dataclass
class PoolClose:
    """One pool's year at the close: its figures before, and what the close does."""

    pool: FundingPool
    allotment: FiscalYearAllotment | None
    committed: Decimal  # in the year, before the close (allotment or ledger)
    paid: Decimal
    reserved: Decimal
    tranches: list[TrancheFate] = field(default_factory=list)
    carried: dict[int, Decimal] = field(default_factory=dict)  # by the year the money was allotted for
    lapsing: dict[int, Decimal] = field(default_factory=dict)
    # Where the pool keeps no allotment of the next year, nothing can be carried into it.
    next_allotment: FiscalYearAllotment | None = None

    @property
    def allotted(self) -> Decimal:
        return self.allotment.amount if self.allotment else ZERO

    @property
    def carried_in(self) -> Decimal:
        return self.allotment.carried_in if self.allotment else ZERO

    @property
    def unpaid(self) -> Decimal:
        return sum((t.amount for t in self.tranches), ZERO)

    @property
    def rescheduled(self) -> Decimal:
        return sum((t.amount for t in self.tranches if t.rescheduled), ZERO)

    @property
    def decommitted(self) -> Decimal:
        return sum((t.amount for t in self.tranches if not t.rescheduled), ZERO)

    @property
    def carried_over(self) -> Decimal:
        return sum(self.carried.values(), ZERO)

    @property
    def lapsed(self) -> Decimal:
        return sum(self.lapsing.values(), ZERO)


@dataclass
class ClosePlan:
    """What closing `fiscal_year` of `programme` does, pool by pool; `problems` say why it cannot be confirmed
    now (empty: it can). `closed` is True for a year already closed: then the figures are what its close left."""

    programme: Programme
    fiscal_year: int
    next_year: int | None
    closed: bool
    pools: list[PoolClose]
    problems: list[str] = field(default_factory=list)
    refusal: DomainError | None = None

    @property
    def totals(self) -> dict[str, Decimal]:
        names = ("allotted", "carried_in", "committed", "paid", "unpaid", "rescheduled", "decommitted")
        figures = {name: sum((getattr(p, name) for p in self.pools), ZERO) for name in names}
        figures["carried_over"] = sum((p.carried_over for p in self.pools), ZERO)
        figures["lapsed"] = sum((p.lapsed for p in self.pools), ZERO)
        return figures


def _carried_in_by_origin(pool_id: int, year: int) -> dict[int, Decimal]:
    rows = (
        LedgerEntry.objects.filter(pool_id=pool_id, fiscal_year=year, kind=Kind.CARRY_IN)
        .order_by()
        .values_list("origin_year")
        .annotate(total=Sum("amount"))
    )
    return dict(rows)


def _split_unspent(
    programme: Programme, allotment: FiscalYearAllotment, committed_after: Decimal, *, can_carry: bool
) -> tuple[dict[int, Decimal], dict[int, Decimal]]:
    """The unspent balance of the year by the year it was allotted for, split into what is carried over and what
    lapses (the programme's limits in years and amount)."""
    year = allotment.fiscal_year
    buckets = dict(sorted(_carried_in_by_origin(allotment.pool_id, year).items()))
    buckets[year] = buckets.get(year, ZERO) + allotment.amount
    # Commitments take the oldest money first.
    used = committed_after
    unspent: dict[int, Decimal] = {}
    for origin, amount in buckets.items():
        take = min(used, amount)
        used -= take
        if amount - take > 0:
            unspent[origin] = amount - take
    room = (
        (allotment.amount * programme.carry_over_max_rate).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
        if programme.carry_over_max_rate is not None
        else None
    )
    carried: dict[int, Decimal] = {}
    lapsing: dict[int, Decimal] = {}
    # Carried, the newest money is kept first: it may be carried again longest.
    for origin in sorted(unspent, reverse=True):
        amount = unspent[origin]
        carry = ZERO
        if can_carry and year + 1 - origin <= programme.carry_over_years:
            carry = amount if room is None else min(amount, room)
            if room is not None:
                room -= carry
        if carry > 0:
            carried[origin] = carry
        if amount - carry > 0:
            lapsing[origin] = amount - carry
    return dict(sorted(carried.items())), dict(sorted(lapsing.items()))


def _year_problems(programme: Programme, year: int, today: date) -> list[str]:
    problems = []
    if not programme.first_fiscal_year <= year <= programme.last_fiscal_year:
        problems.append(
            _("Fiscal year %(year)d is not one of the programme's years (%(first)d to %(last)d).")
            % {"year": year, "first": programme.first_fiscal_year, "last": programme.last_fiscal_year}
        )
    if year >= today.year:
        problems.append(
            _("Fiscal year %(year)d has not ended; it can be closed from 1 January %(next)d.")
            % {"year": year, "next": year + 1}
        )
    # A voucher commits its face value in its year and is paid in it (grants.services.vouchers): the year closes
    # once its vouchers expired (their balance lapsed) or were spent, and their claims were decided.
    open_vouchers = (
        Voucher.objects.filter(pool__programme=programme, fiscal_year__lte=year)
        .filter(Q(status=Voucher.Status.ACTIVE) | Q(claims__status=VoucherClaim.Status.SUBMITTED))
        .distinct()
        .count()
    )
    if open_vouchers:
        problems.append(
            _(
                "%(n)d voucher(s) of fiscal year %(year)d are still valid or have claims awaiting verification: "
                "decide the claims, and let the vouchers expire (the hourly job) first."
            )
            % {"n": open_vouchers, "year": year}
        )
    expected = (programme.closed_through + 1) if programme.closed_through else programme.first_fiscal_year
    if year > expected:
        problems.append(
            _("Years close in order: close fiscal year %(expected)d first.") % {"expected": expected}
        )
    return problems


def _plan(
    programme: Programme,
    year: int,
    pools: Iterable[FundingPool],
    allotments: Mapping[int, Mapping[int, FiscalYearAllotment]],
    today: date,
) -> ClosePlan:
    """The close of `year` against these rows (locked by the close, read just now by the preview)."""
    closed = programme.closed_through is not None and programme.closed_through >= year
    next_year = year + 1 if year < programme.last_fiscal_year else None
    plan = ClosePlan(programme, year, next_year, closed, [])
    if not closed:
        plan.problems += _year_problems(programme, year, today)
    open_tranches: dict[int, list[Tranche]] = defaultdict(list)
    if not closed:
        for tranche in (
            Tranche.objects.filter(
                award__pool__in=[p.pk for p in pools], fiscal_year=year, status__in=workflow.OPEN_TRANCHE
            )
            .select_related("award")
            .order_by("award__pool_id", "award_id", "sequence")
        ):
            open_tranches[tranche.award.pool_id].append(tranche)
    ledger = selectors.ledger_totals(
        LedgerEntry.objects.filter(pool__in=[p.pk for p in pools], fiscal_year=year), by=("pool_id",)
    )
    reschedule = programme.unpaid_tranches == RULE.RESCHEDULE and next_year is not None
    for pool in pools:
        pool_allotments = allotments.get(pool.pk, {})
        allotment = pool_allotments.get(year)
        totals = ledger.get((pool.pk,), selectors.LedgerTotals())
        row = PoolClose(
            pool=pool,
            allotment=allotment,
            committed=totals.committed,
            paid=totals.disbursed,
            reserved=totals.reserved,
            next_allotment=pool_allotments.get(next_year) if next_year else None,
        )
        row.tranches = [
            TrancheFate(
                tranche_id=t.pk,
                award_id=t.award_id,
                reference=t.award.reference,
                sequence=t.sequence,
                institution_id=t.award.institution_id,
                amount=t.amount,
                scheduled_date=t.scheduled_date,
                status=t.status,
                new_date=next_anniversary(t.scheduled_date) if reschedule else None,
            )
            for t in open_tranches.get(pool.pk, [])
        ]
        if row.reserved > 0:
            plan.problems.append(
                _(
                    "%(reserved)s of fiscal year %(year)d is reserved in pool %(pool)s by proposals awaiting a "
                    "second officer: confirm or send them back first."
                )
                % {"reserved": format_money(row.reserved), "year": year, "pool": pool.code}
            )
        if allotment is not None and not closed:
            can_carry = next_year is not None and row.next_allotment is not None
            row.carried, row.lapsing = _split_unspent(
                programme, allotment, row.committed - row.unpaid, can_carry=can_carry
            )
        if pool_allotments and row.rescheduled and row.next_allotment is None:
            plan.problems.append(
                _(
                    "Pool %(pool)s has no allotment for fiscal year %(next)d, so its unpaid tranches cannot be "
                    "rescheduled into it: allot that year first, or choose to de-commit unpaid tranches."
                )
                % {"pool": pool.code, "next": next_year}
            )
        elif row.rescheduled and plan.refusal is None:
            plan.refusal = _refusal_of_moves(programme, pool, pool_allotments, row, year)
        if closed and allotment is not None:
            # What the close left: its carried and lapsed counters, by the year the money was allotted for.
            for kind, target in ((Kind.CARRY_OUT, row.carried), (Kind.LAPSE, row.lapsing)):
                for origin, amount in (
                    LedgerEntry.objects.filter(pool=pool, fiscal_year=year, kind=kind)
                    .order_by()
                    .values_list("origin_year")
                    .annotate(total=Sum("amount"))
                ):
                    target[origin] = amount
        plan.pools.append(row)
    if plan.refusal is not None:
        plan.problems.append(plan.refusal.message)
    return plan


def _refusal_of_moves(
    programme: Programme,
    pool: FundingPool,
    pool_allotments: Mapping[int, FiscalYearAllotment],
    row: PoolClose,
    year: int,
) -> DomainError | None:
    """Whether the pool's unpaid tranches fit into the next year, asked through the levels of an approval: the
    next year's allotment (with what this close carries into it) and each institution's per-year maximum."""
    next_year = year + 1
    moving = row.rescheduled
    allotments = dict(pool_allotments)
    if row.next_allotment is not None:
        after_carry = copy.copy(row.next_allotment)
        after_carry.carried_in += row.carried_over
        allotments[next_year] = after_carry
    by_institution: dict[int, Decimal] = defaultdict(Decimal)
    for fate in row.tranches:
        if fate.rescheduled:
            by_institution[fate.institution_id] += fate.amount

    def asked(institution_id: int, amount: Decimal) -> list[Level]:
        return levels(
            pool=pool,
            programme=programme,
            allotments=allotments,
            institution_id=institution_id,
            asked_by_year={year: -amount, next_year: amount},
            award_total=ZERO,
            cost_share_limit=None,
        )

    # The pool's levels once for everything that moves; each institution's maximum for its own tranches.
    found = [r for r in asked(min(by_institution), moving) if r.name != "institution_year"]
    for institution_id, amount in sorted(by_institution.items()):
        found += [r for r in asked(institution_id, amount) if r.name == "institution_year"]
    full = first_without_room(sorted(found, key=lambda r: ORDER.index(r.name)))
    return full.refusal() if full is not None else None


def _read_allotments(pool_ids: list[int]) -> dict[int, dict[int, FiscalYearAllotment]]:
    found: dict[int, dict[int, FiscalYearAllotment]] = defaultdict(dict)
    for allotment in FiscalYearAllotment.objects.filter(pool_id__in=pool_ids):
        found[allotment.pool_id][allotment.fiscal_year] = allotment
    return found


def preview_close(
    *, programme: Programme, fiscal_year: int, actor: User, today: date | None = None
) -> ClosePlan:
    """The close as a dry run: what each pool has and what the close would do, with why it cannot be confirmed
    yet. Reads without locking and writes nothing."""
    require(actor, workflow.YEAR_CLOSE_PREVIEW, programme.city_id)
    programme = Programme.objects.select_related("city").get(pk=programme.pk)
    pools = list(FundingPool.objects.filter(programme=programme).order_by("pk"))
    return _plan(
        programme,
        fiscal_year,
        pools,
        _read_allotments([p.pk for p in pools]),
        today or timezone.localdate(),
    )


# --- Closing a year: the close ----------------------------------------------------------------------------------


class _InstitutionsChanged(Exception):
    def __init__(self, ids: set[int]) -> None:
        self.ids = ids


def _institutions_to_lock(programme_id: int, year: int) -> set[int]:
    """The institutions whose tranches of the year may move into a pool limiting institutions per year."""
    return set(
        Tranche.objects.filter(
            award__pool__programme_id=programme_id,
            award__pool__max_per_institution_year__isnull=False,
            fiscal_year=year,
            status__in=workflow.OPEN_TRANCHE,
        ).values_list("award__institution_id", flat=True)
    )


def close_fiscal_year(
    *, programme: Programme, fiscal_year: int, actor: User, today: date | None = None
) -> ClosePlan:
    """Close `fiscal_year` of the programme as `preview_close` shows it, or refuse with why not (nothing changes).
    Idempotent: closing a closed year returns what its close left and writes nothing."""
    require(actor, workflow.YEAR_CLOSE, programme.city_id)
    today = today or timezone.localdate()
    institutions = _institutions_to_lock(programme.pk, fiscal_year)
    for _attempt in range(3):
        try:
            return _close(programme.pk, fiscal_year, actor, today, institutions)
        except _InstitutionsChanged as changed:
            # An award was approved for another institution meanwhile: take its lock too, in order, and redo.
            institutions |= changed.ids
    raise YearNotClosable(_("Awards keep being approved in this year; try the close again."))


def _close(programme_id: int, year: int, actor: User, today: date, institutions: set[int]) -> ClosePlan:
    with transaction.atomic():
        list(
            Institution.objects.select_for_update(no_key=True)
            .filter(pk__in=sorted(institutions))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        programme = (
            Programme.objects.select_for_update(of=("self",), no_key=True)
            .select_related("city")
            .get(pk=programme_id)
        )
        pool_ids = list(
            FundingPool.objects.filter(programme_id=programme_id).order_by("pk").values_list("pk", flat=True)
        )
        locks: dict[int, Locked] = {}
        for pool_id in pool_ids:
            locked = lock_pool(pool_id)
            locked.programme = programme
            locked.pool.programme = programme
            locks[pool_id] = locked
        if programme.closed_through is None or programme.closed_through < year:
            missing = _institutions_to_lock(programme_id, year) - institutions
            if missing:
                raise _InstitutionsChanged(missing)
        pools = [locks[pk].pool for pk in pool_ids]
        plan = _plan(programme, year, pools, {pk: locks[pk].allotments for pk in pool_ids}, today)
        if plan.closed:
            return plan
        if plan.refusal is not None:
            raise plan.refusal
        if plan.problems:
            raise YearNotClosable(" ".join(plan.problems), problems=plan.problems)
        for row in plan.pools:
            _close_pool(plan, row, locks[row.pool.pk], actor)
        audit.change(
            programme,
            actor=actor,
            action="fiscal_year.close",
            city_id=programme.city_id,
            audited=("closed_through",),
            values={"closed_through": year},
            noted={"fiscal_year": year, "pools": [_summary(row) for row in plan.pools]},
        )
        FundingPool.objects.filter(pk__in=pool_ids).update(closed_through=year)
        for row in plan.pools:
            row.pool.closed_through = year
        plan.closed = True
    return plan


def _summary(row: PoolClose) -> dict[str, object]:
    return {
        "pool": row.pool.code,
        "allotted": str(row.allotted),
        "carried_in": str(row.carried_in),
        "committed": str(row.committed),
        "paid": str(row.paid),
        "rescheduled": [
            [t.reference, t.sequence, str(t.amount), str(t.new_date)] for t in row.tranches if t.rescheduled
        ],
        "decommitted": [[t.reference, t.sequence, str(t.amount)] for t in row.tranches if not t.rescheduled],
        "carried_over": str(row.carried_over),
        "lapsed": str(row.lapsed),
    }


def _close_pool(plan: ClosePlan, row: PoolClose, locked: Locked, actor: User) -> None:
    year = plan.fiscal_year
    programme = plan.programme
    city_id = programme.city_id
    fates = {t.tranche_id: t for t in row.tranches}
    awards = {
        a.pk: a
        for a in Award.objects.select_for_update(of=("self",), no_key=True)
        .filter(pk__in=sorted({t.award_id for t in row.tranches}))
        .order_by("pk")
    }
    tranches = {
        t.pk: t
        for t in Tranche.objects.select_for_update(no_key=True).filter(pk__in=sorted(fates)).order_by("pk")
    }
    reason = f"close of fiscal year {year} of {programme.code}"
    for award_id, award in awards.items():
        award.pool = locked.pool
        ending = [
            tranches[f.tranche_id] for f in row.tranches if f.award_id == award_id and not f.rescheduled
        ]
        for tranche in ending:
            tranche.award = award
        if ending:
            _cancel_locked(locked, award, ending, actor=actor, reason=reason, city_id=city_id, key=None)
            _complete_if_done(award, actor=actor, city_id=city_id)
    movements: list[Movement] = []
    next_year = year + 1
    for fate in row.tranches:
        if not fate.rescheduled:
            continue
        tranche = tranches[fate.tranche_id]
        award = awards[fate.award_id]
        tranche.award = award
        movements += [
            Movement(Kind.DECOMMIT, tranche.amount, year, award=award, tranche=tranche),
            Movement(Kind.COMMIT, tranche.amount, next_year, award=award, tranche=tranche),
        ]
    for origin, amount in row.carried.items():
        movements += [
            Movement(Kind.CARRY_OUT, amount, year, origin_year=origin),
            Movement(Kind.CARRY_IN, amount, next_year, origin_year=origin),
        ]
    for origin, amount in row.lapsing.items():
        movements.append(Movement(Kind.LAPSE, amount, year, origin_year=origin))
    post(
        locked,
        movements,
        actor=actor,
        reason=f"{reason}: unpaid tranches, carry-over and lapse",
        key_base=f"close:{programme.pk}:{year}:pool:{row.pool.pk}",
    )
    for fate in row.tranches:
        if not fate.rescheduled or fate.new_date is None:
            continue
        tranche = tranches[fate.tranche_id]
        audit.change(
            tranche,
            actor=actor,
            action="tranche.reschedule",
            city_id=city_id,
            audited=("scheduled_date", "fiscal_year"),
            values={"scheduled_date": fate.new_date, "fiscal_year": next_year},
            noted={"reason": reason},
        )
        _tell_applicant(tranche, fate.scheduled_date, note=reason)
