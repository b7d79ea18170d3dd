"""Programme and pool budgets: caps within the programme total, allotments within the cap.

Every change of them is one of these services, audited, and every refusal changes nothing. A pool's budget (its
cap and allotments) is checked by one pure function, `budget_problems`, which the admin's forms ask for their
errors and `create_pool` / `change_pool_budget` ask again under their locks before writing."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Sum
from django.utils.translation import gettext as _

from grants import audit
from grants.errors import InvalidInput
from grants.models import FiscalYearAllotment, FundingPool, LedgerEntry, Programme
from grants.money import ZERO, to_money
from grants.roles import Role, require
from grants.selectors import LedgerTotals, ledger_totals
from grants.services.budget import lock_pool

PROGRAMME_FIELDS = (
    "code",
    "name_en",
    "name_zh",
    "total_budget",
    "first_fiscal_year",
    "last_fiscal_year",
    "opens_at",
    "closes_at",
    "status",
    "policy_title",
    "policy_url",
)


def total_problem(programme_id: int, total: Decimal) -> str | None:
    """Why a programme's total budget cannot be `total`, or None: never below its pools' caps (level 6 of §4
    holds only while they fit) nor below what is committed. The caller holds the programme's lock."""
    programme = Programme.objects.get(pk=programme_id)
    caps = programme.pools.aggregate(s=Sum("cap", default=ZERO))["s"]
    if total < caps:
        return _("The pools' caps already sum to %(caps)s; the total cannot be less.") % {
            "caps": f"{caps:,.2f}"
        }
    if total < programme.committed:
        return _("%(c)s is already committed; the total cannot be less.") % {
            "c": f"{programme.committed:,.2f}"
        }
    return None


def save_programme(*, programme: Programme, actor: User) -> Programme:
    """Create or change a programme from its edited fields (never its committed counter). Locks the programme, so
    no pool cap can grow while its total is checked."""
    with transaction.atomic():
        require(actor, Role.PROGRAMME_OFFICER, programme.city_id)
        before = None
        if programme.pk:
            current = Programme.objects.select_for_update().get(pk=programme.pk)
            before = audit.snapshot(current, PROGRAMME_FIELDS)
            problem = total_problem(programme.pk, programme.total_budget)
            if problem:
                raise InvalidInput(problem, fields={"total_budget": [problem]})
            programme.save(update_fields=[*PROGRAMME_FIELDS, "city"])
        else:
            programme.committed = ZERO
            programme.save()
        audit.record(
            actor=actor,
            action="programme.change" if before else "programme.create",
            obj=programme,
            city_id=programme.city_id,
            before=before,
            after=audit.snapshot(programme, PROGRAMME_FIELDS),
        )
    return programme


# --- Pools: created, their rules changed, their budget changed, each by one service ------------------------------

# What an officer edits on a pool besides its budget: names and subsidy rules. Never the cap (change_pool_budget),
# the counters, or the programme and code (fixed at creation: references are made of them).
POOL_RULE_FIELDS = (
    "name_en",
    "name_zh",
    "category",
    "max_rate",
    "rate_by_type",
    "max_per_award",
    "max_per_institution_year",
    "min_duration_years",
    "max_duration_years",
    "eligible_types",
    "registration_required",
    "min_reviews",
    "alert_thresholds",
    "opens_at",
    "closes_at",
    "accepting_applications",
)


@dataclass(frozen=True)
class PoolBudget:
    """What a change of a pool's budget is checked against: the programme, the caps of its other pools, the pool
    (None before it exists), its allotments, and what the ledger holds in each year the change would allot anew."""

    programme: Programme
    other_caps: Decimal
    pool: FundingPool | None = None
    allotments: dict[int, FiscalYearAllotment] = field(default_factory=dict)
    ledger_by_year: dict[int, LedgerTotals] = field(default_factory=dict)


@dataclass(frozen=True)
class BudgetProblems:
    """Why a budget change is refused: the cap on its own (the programme total, what is committed), and the
    allotments (each year's, and their sum against the cap). Empty lists: the change is allowed."""

    cap: list[str]
    allotments: list[str]

    def __bool__(self) -> bool:
        return bool(self.cap or self.allotments)

    def refusal(self) -> InvalidInput:
        fields = {
            name: problems
            for name, problems in (("cap", self.cap), ("allotments", self.allotments))
            if problems
        }
        return InvalidInput(" ".join(self.cap + self.allotments), fields=fields)


def lock_budget(*, programme_id: int, pool_id: int | None = None, years: Iterable[int] = ()) -> PoolBudget:
    """Lock the rows a budget change of the pool (or of a new pool of the programme) depends on, in the fixed
    order (programme, pool, allotments), and read them. Held to the end of the transaction: the admin form that
    checks a change and the service that makes it in the same request see the same figures.

    The other pools' caps need no lock of their own: a cap changes only under its programme's lock."""
    if pool_id is None:
        programme = Programme.objects.select_for_update().get(pk=programme_id)
        return PoolBudget(programme=programme, other_caps=_caps(programme.pk, exclude_pool_id=None))
    locked = lock_pool(pool_id)
    assert locked.programme is not None  # lock_pool(programme=True) locks it
    new_years = sorted(set(years) - set(locked.allotments))
    ledger = (
        ledger_totals(
            LedgerEntry.objects.filter(pool_id=pool_id, fiscal_year__in=new_years), by=("fiscal_year",)
        )
        if new_years
        else {}
    )
    return PoolBudget(
        programme=locked.programme,
        other_caps=_caps(locked.programme.pk, exclude_pool_id=pool_id),
        pool=locked.pool,
        allotments=locked.allotments,
        ledger_by_year={year: totals for (year,), totals in ledger.items()},
    )


def _caps(programme_id: int, *, exclude_pool_id: int | None) -> Decimal:
    pools = FundingPool.objects.filter(programme_id=programme_id)
    if exclude_pool_id is not None:
        pools = pools.exclude(pk=exclude_pool_id)
    return pools.aggregate(s=Sum("cap", default=ZERO))["s"]


def budget_problems(budget: PoolBudget, *, cap: Decimal, allotments: Mapping[int, Decimal]) -> BudgetProblems:
    """Why the pool cannot have `cap` and `allotments` (year: amount; years not named keep theirs), checked as
    one change: the cap within the programme total and not below what is committed; each changed allotment in the
    programme's years, positive and not below what its year has committed; all of them within the new cap.

    Checking the final state whole is what makes a consistent change pass in any order: a cap raised together
    with its allotments, or lowered together with them ("grow the cap first, shrink allotments first"). Reads
    nothing: the figures are `budget`'s."""
    programme = budget.programme
    # A cap that stays is not judged again: a programme total can only be lowered to its pools' caps.
    unchanged = budget.pool is not None and cap == budget.pool.cap
    cap_problems = [] if unchanged else _cap_problems(budget, cap)

    current = {year: a.amount for year, a in budget.allotments.items()}
    changes = {year: amount for year, amount in sorted(allotments.items()) if current.get(year) != amount}
    allotment_problems: list[str] = []
    for year, amount in changes.items():
        problems = []
        if not programme.first_fiscal_year <= year <= programme.last_fiscal_year:
            problems.append(_("The fiscal year is outside the programme's years."))
        if amount <= 0:
            problems.append(_("The amount must be more than zero."))
        allotment = budget.allotments.get(year)
        in_year = (
            allotment.committed if allotment else budget.ledger_by_year.get(year, LedgerTotals()).committed
        )
        if amount < in_year:
            problems.append(
                _("%(c)s is already committed in that year; the allotment cannot be less.")
                % {"c": f"{in_year:,.2f}"}
            )
        allotment_problems += [f"{_('fiscal year')} {year}: {problem}" for problem in problems]
    allotted = sum({**current, **changes}.values(), ZERO)
    if allotted > cap:
        allotment_problems.append(
            _("The allotments would sum to %(sum)s, more than the pool cap %(cap)s.")
            % {"sum": f"{allotted:,.2f}", "cap": f"{cap:,.2f}"}
            if changes
            else _("The cap cannot be less than the fiscal-year allotments (%(a)s).")
            % {"a": f"{allotted:,.2f}"}
        )
    return BudgetProblems(cap=cap_problems, allotments=allotment_problems)


def _cap_problems(budget: PoolBudget, cap: Decimal) -> list[str]:
    problems = []
    if cap <= 0:
        problems.append(_("The cap must be more than zero."))
    if budget.other_caps + cap > budget.programme.total_budget:
        problems.append(
            _(
                "The pools' caps would sum to %(sum)s, more than the programme total %(total)s (%(left)s left)."
            )
            % {
                "sum": f"{budget.other_caps + cap:,.2f}",
                "total": f"{budget.programme.total_budget:,.2f}",
                "left": f"{budget.programme.total_budget - budget.other_caps:,.2f}",
            }
        )
    committed = budget.pool.committed if budget.pool is not None else ZERO
    if cap < committed:
        problems.append(
            _("The cap cannot be less than what is committed (%(c)s).") % {"c": f"{committed:,.2f}"}
        )
    return problems


def create_pool(
    *, pool: FundingPool, actor: User, allotments: Mapping[int, Decimal] | None = None
) -> FundingPool:
    """Create a pool (an unsaved instance: its programme, code, names, rules and cap) with its fiscal-year
    allotments, within the programme total. Locks the programme, so no other cap of it changes meanwhile."""
    allotments = {year: to_money(amount) for year, amount in (allotments or {}).items()}
    with transaction.atomic():
        budget = lock_budget(programme_id=pool.programme_id)
        require(actor, Role.PROGRAMME_OFFICER, budget.programme.city_id)
        pool.cap = to_money(pool.cap)
        problems = budget_problems(budget, cap=pool.cap, allotments=allotments)
        if problems:
            raise problems.refusal()
        pool.committed = pool.disbursed = ZERO
        pool.save()
        audit.record(
            actor=actor,
            action="pool.create",
            obj=pool,
            city_id=budget.programme.city_id,
            after={"cap": str(pool.cap), "code": pool.code},
        )
        for year, amount in sorted(allotments.items()):
            allotment = FiscalYearAllotment.objects.create(pool=pool, fiscal_year=year, amount=amount)
            _record_allotment(actor, allotment, budget.programme.city_id, before=None)
    return pool


def change_pool(*, pool: FundingPool, actor: User, fields: Iterable[str]) -> FundingPool:
    """Save the edited rules of a pool (`fields`, a subset of POOL_RULE_FIELDS) from the instance given."""
    fields = list(fields)
    if not set(fields) <= set(POOL_RULE_FIELDS):
        raise ValueError(f"not a pool rule: {sorted(set(fields) - set(POOL_RULE_FIELDS))}")
    if not fields:
        return pool
    with transaction.atomic():
        programme = Programme.objects.get(pk=pool.programme_id)
        require(actor, Role.PROGRAMME_OFFICER, programme.city_id)
        pool.save(update_fields=fields)
        audit.record(
            actor=actor, action="pool.change", obj=pool, city_id=programme.city_id, after={"fields": fields}
        )
    return pool


def change_pool_budget(
    *,
    pool: FundingPool,
    actor: User,
    cap: Decimal | None = None,
    allotments: Mapping[int, Decimal] | None = None,
) -> FundingPool:
    """Change a pool's cap (None: keep it) and fiscal-year allotments (year: amount; years not named keep theirs)
    together, checked as one change by `budget_problems`. A new allotment starts with the committed and disbursed
    money already in its year, from the ledger, so its counters agree with what is recorded.

    Locks the programme, the pool and its allotments (`lock_budget`): no money moves in the pool and no other cap
    of the programme changes meanwhile. The final state is checked whole, so the writes need no order: no
    constraint spans rows."""
    requested = {year: to_money(amount) for year, amount in (allotments or {}).items()}
    with transaction.atomic():
        budget = lock_budget(programme_id=pool.programme_id, pool_id=pool.pk, years=requested)
        locked = budget.pool
        assert locked is not None
        city_id = budget.programme.city_id
        require(actor, Role.PROGRAMME_OFFICER, city_id)
        new_cap = to_money(cap) if cap is not None else locked.cap
        problems = budget_problems(budget, cap=new_cap, allotments=requested)
        if problems:
            raise problems.refusal()
        if new_cap != locked.cap:
            audit.change(
                locked,
                actor=actor,
                action="pool.set_cap",
                city_id=city_id,
                audited=("cap",),
                values={"cap": new_cap},
            )
        for year, amount in sorted(requested.items()):
            allotment = budget.allotments.get(year)
            if allotment is None:
                ledger = budget.ledger_by_year.get(year, LedgerTotals())
                allotment = FiscalYearAllotment.objects.create(
                    pool=locked,
                    fiscal_year=year,
                    amount=amount,
                    committed=ledger.committed,
                    disbursed=ledger.disbursed,
                )
                _record_allotment(actor, allotment, city_id, before=None)
            elif allotment.amount != amount:
                before_amount = {"amount": str(allotment.amount)}
                allotment.amount = amount
                allotment.save(update_fields=["amount"])
                _record_allotment(actor, allotment, city_id, before=before_amount)
    pool.cap = new_cap
    return pool


def _record_allotment(
    actor: User, allotment: FiscalYearAllotment, city_id: int, *, before: dict[str, str] | None
) -> None:
    audit.record(
        actor=actor,
        action="allotment.set",
        obj=allotment,
        city_id=city_id,
        before=before,
        after={"fiscal_year": allotment.fiscal_year, "amount": str(allotment.amount)},
    )


def set_pool_cap(*, pool: FundingPool, actor: User, cap: Decimal) -> FundingPool:
    """Change a pool's cap alone: `change_pool_budget` with the allotments as they are."""
    return change_pool_budget(pool=pool, actor=actor, cap=cap)


def set_allotment(
    *, pool: FundingPool, actor: User, fiscal_year: int, amount: Decimal
) -> FiscalYearAllotment:
    """Create or change one fiscal-year allotment: `change_pool_budget` with the cap as it is."""
    change_pool_budget(pool=pool, actor=actor, allotments={fiscal_year: amount})
    return FiscalYearAllotment.objects.get(pool_id=pool.pk, fiscal_year=fiscal_year)
