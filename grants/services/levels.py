"""The six budget levels of §4, defined once: what a commitment asks of each and what each has left.

One fixed order, the order every refusal follows: the pool cap, the fiscal-year allotments (year by year), the
institution's per-year maximum in the pool (year by year), the per-award maximum, the cost-share limit, the
programme total. Every door asks `levels` (or `levels_now`): approval before it writes anything, amendment under
its locks, a proposal before it reserves, the admin's approval page to show the officer the same rows, and
`commit_last` to name the level its conditional UPDATEs found full. A service refuses with the first row without
room (`refuse_first`).

What a level has used is what is committed plus what proposals awaiting a second officer have reserved
(grants.services.proposals): a reservation holds its room against every level until it is confirmed or released.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import F, Sum

from grants.errors import BudgetExceeded
from grants.models import (
    FiscalYearAllotment,
    FundingPool,
    Institution,
    LedgerEntry,
    Programme,
    Tranche,
    Voucher,
)
from grants.money import ZERO, apply_rate
from grants.selectors import ledger_totals

ORDER = (
    "pool_cap",
    "fiscal_year_allotment",
    "institution_year",
    "per_award",
    "cost_share",
    "programme_total",
)


@dataclass(frozen=True)
class Level:
    """One level: `asked` of a `limit` of which `used` is taken. Per-year levels name their year."""

    name: str
    asked: Decimal
    limit: Decimal
    used: Decimal = ZERO
    fiscal_year: int | None = None

    @property
    def left(self) -> Decimal:
        return self.limit - self.used

    @property
    def has_room(self) -> bool:
        return self.asked <= self.left

    def refusal(self) -> BudgetExceeded:
        return BudgetExceeded(level=self.name, asked=self.asked, left=self.left, fiscal_year=self.fiscal_year)


def rate_for(pool: FundingPool, institution: Institution) -> Decimal | None:
    """The pool's cost-share rate for the institution: its rate for the institution's type, else its maximum rate
    (None: no limit). Eligibility on submission and the cost-share level both ask it."""
    override = (pool.rate_by_type or {}).get(institution.type)
    return Decimal(str(override)) if override is not None else pool.max_rate


def cost_share_limit(pool: FundingPool, institution: Institution, eligible_cost: Decimal) -> Decimal | None:
    """The most an award may be: the pool's rate for the institution's type times the eligible cost."""
    rate = rate_for(pool, institution)
    return apply_rate(eligible_cost, rate) if rate is not None else None


def levels(
    *,
    pool: FundingPool,
    programme: Programme,
    allotments: Mapping[int, FiscalYearAllotment],
    institution_id: int,
    asked_by_year: Mapping[int, Decimal],
    award_total: Decimal,
    cost_share_limit: Decimal | None,
    institution_used: Mapping[int, Decimal] | None = None,
) -> list[Level]:
    """Every level that applies to committing `asked_by_year` more (negative years give money back and ask
    nothing), in the fixed order.

    The pool, programme and allotment figures are the caller's: rows it holds locked (amendments) or read just now
    (`levels_now`). `allotments` is every allotment of the pool: a pool with any has nothing to give in a year it
    did not allot. Where the pool has a per-year maximum, reads what the institution uses of it
    (`institution_year_used`) unless the caller passes it (`institution_used`); a caller that acts on the answer
    holds the institution's lock first.
    """
    increases = {year: amount for year, amount in sorted(asked_by_year.items()) if amount > 0}
    # The pool and the programme are asked the net: moving a tranche to another year (grants.services.fiscal)
    # takes nothing more of either. Approvals and amendments move every year the same way, so net = Σ increases.
    increase = max(sum(asked_by_year.values(), ZERO), ZERO)
    rows = [Level("pool_cap", increase, pool.cap, pool.committed + pool.reserved)]
    if allotments:
        for year, amount in increases.items():
            allotment = allotments.get(year)
            rows.append(
                Level(
                    "fiscal_year_allotment",
                    amount,
                    allotment.spendable if allotment else ZERO,
                    allotment.committed + allotment.reserved if allotment else ZERO,
                    fiscal_year=year,
                )
            )
    if pool.max_per_institution_year is not None and increases:
        used = (
            institution_used
            if institution_used is not None
            else institution_year_used(pool.pk, [institution_id], set(increases)).get(institution_id, {})
        )
        rows += [
            Level(
                "institution_year",
                amount,
                pool.max_per_institution_year,
                used.get(year, ZERO),
                fiscal_year=year,
            )
            for year, amount in increases.items()
        ]
    if pool.max_per_award is not None:
        rows.append(Level("per_award", award_total, pool.max_per_award))
    if cost_share_limit is not None:
        rows.append(Level("cost_share", award_total, cost_share_limit))
    rows.append(
        Level("programme_total", increase, programme.total_budget, programme.committed + programme.reserved)
    )
    return rows


def institution_year_used(
    pool_id: int, institution_ids: list[int], years: set[int]
) -> dict[int, dict[int, Decimal]]:
    """What each institution already uses of its per-year maximum in the pool, per fiscal year: its live tranches,
    its vouchers' face value less what lapsed, and what its proposals hold reserved. Three grouped reads, however
    many institutions (a bulk issue of vouchers asks for a thousand at once)."""
    used: dict[int, dict[int, Decimal]] = {i: {} for i in institution_ids}

    def add(rows: Any) -> None:
        for institution_id, year, total in rows:
            used[institution_id][year] = used[institution_id].get(year, ZERO) + (total or ZERO)

    add(
        Tranche.objects.filter(
            award__pool_id=pool_id, award__institution_id__in=institution_ids, fiscal_year__in=years
        )
        .exclude(status=Tranche.Status.CANCELLED)
        .order_by()
        .values_list("award__institution_id", "fiscal_year")
        .annotate(total=Sum("amount"))
    )
    # A voucher holds its face value committed in its year until what it did not spend lapses.
    add(
        Voucher.objects.filter(pool_id=pool_id, institution_id__in=institution_ids, fiscal_year__in=years)
        .order_by()
        .values_list("institution_id", "fiscal_year")
        .annotate(total=Sum(F("face_value") - F("lapsed")))
    )
    reserved = ledger_totals(
        LedgerEntry.objects.filter(
            pool_id=pool_id, proposal__institution_id__in=institution_ids, fiscal_year__in=years
        ),
        by=("proposal__institution_id", "fiscal_year"),
    )
    add((institution_id, year, t.reserved) for (institution_id, year), t in reserved.items())
    return used


def reserved_for_institution(pool_id: int, institution_id: int, years: set[int]) -> dict[int, Decimal]:
    """What the institution's proposals in the pool hold reserved per fiscal year: the net of their RESERVE and
    RELEASE entries (a released proposal nets to zero), from the ledger like every reserved counter."""
    totals = ledger_totals(
        LedgerEntry.objects.filter(
            pool_id=pool_id, proposal__institution_id=institution_id, fiscal_year__in=years
        ),
        by=("fiscal_year",),
    )
    return {year: t.reserved for (year,), t in totals.items()}


def levels_now(
    *,
    pool_id: int,
    institution_id: int,
    asked_by_year: Mapping[int, Decimal],
    award_total: Decimal,
    cost_share_limit: Decimal | None,
) -> list[Level]:
    """`levels` against the budget rows as they are committed now, without locking them: what the officer sees
    before confirming, and approval's check before it writes (its conditional UPDATEs decide under the locks)."""
    pool = FundingPool.objects.select_related("programme").get(pk=pool_id)
    allotments = {a.fiscal_year: a for a in FiscalYearAllotment.objects.filter(pool_id=pool_id)}
    return levels(
        pool=pool,
        programme=pool.programme,
        allotments=allotments,
        institution_id=institution_id,
        asked_by_year=asked_by_year,
        award_total=award_total,
        cost_share_limit=cost_share_limit,
    )


def first_without_room(rows: list[Level]) -> Level | None:
    return next((row for row in rows if not row.has_room), None)


def refuse_first(rows: list[Level]) -> None:
    """Raise BudgetExceeded for the first level without room, naming it, what was asked and what is left."""
    full = first_without_room(rows)
    if full is not None:
        raise full.refusal()
