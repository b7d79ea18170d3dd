"""The six budget levels of §4, defined once: what a commitment asks of each and what each has left.

One fixed order, the order every refusal follows: the pool cap, the fiscal-year allotments (year by year), the
institution's per-year maximum in the pool (year by year), the per-award maximum, the cost-share limit, the
programme total. Every door asks `levels` (or `levels_now`): approval before it writes anything, amendment under
its locks, the admin's approval page to show the officer the same rows, and `commit_last` to name the level its
conditional UPDATEs found full. A service refuses with the first row without room (`refuse_first`).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Sum

from grants.errors import BudgetExceeded
from grants.models import FiscalYearAllotment, FundingPool, Institution, Programme, Tranche
from grants.money import ZERO, apply_rate

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
) -> list[Level]:
    """Every level that applies to committing `asked_by_year` more (negative years give money back and ask
    nothing), in the fixed order.

    The pool, programme and allotment figures are the caller's: rows it holds locked (amendments) or read just now
    (`levels_now`). `allotments` is every allotment of the pool: a pool with any has nothing to give in a year it
    did not allot. Reads the institution's live tranches in the pool where the pool has a per-year maximum; a
    caller that acts on the answer holds the institution's lock first.
    """
    increases = {year: amount for year, amount in sorted(asked_by_year.items()) if amount > 0}
    increase = sum(increases.values(), ZERO)
    rows = [Level("pool_cap", increase, pool.cap, pool.committed)]
    if allotments:
        for year, amount in increases.items():
            allotment = allotments.get(year)
            rows.append(
                Level(
                    "fiscal_year_allotment",
                    amount,
                    allotment.amount if allotment else ZERO,
                    allotment.committed if allotment else ZERO,
                    fiscal_year=year,
                )
            )
    if pool.max_per_institution_year is not None and increases:
        used = dict(
            Tranche.objects.filter(
                award__pool=pool, award__institution_id=institution_id, fiscal_year__in=increases
            )
            .exclude(status=Tranche.Status.CANCELLED)
            .order_by()
            .values_list("fiscal_year")
            .annotate(total=Sum("amount"))
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
    rows.append(Level("programme_total", increase, programme.total_budget, programme.committed))
    return rows


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
