"""Programme and pool budgets: caps within the programme total, allotments within the cap.

Every change of them is one of these services, audited, and every refusal changes nothing. A pool's budget (its
cap and allotments) is checked by one pure function, `budget_problems`, which the admin's forms ask for their
errors and `create_pool` / `change_pool_budget` ask again under their locks before writing."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Sum
from django.utils.translation import gettext as _

from cities.models import City
from grants import audit
from grants.errors import AlreadyExists, InvalidInput
from grants.models import (
    FiscalYearAllotment,
    FundingPool,
    InstitutionType,
    LedgerEntry,
    Programme,
    Tranche,
)
from grants.money import ZERO, format_money, to_money
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
    # Closing a fiscal year (grants.services.fiscal).
    "carry_over_years",
    "carry_over_max_rate",
    "unpaid_tranches",
)


def total_problem(programme_id: int, total: Decimal) -> str | None:
    """Why a programme's total budget cannot be `total`, or None: never below its pools' caps (level 6 of §4
    holds only while they fit) nor below what is committed. The caller holds the programme's lock."""
    programme = Programme.objects.get(pk=programme_id)
    caps = programme.pools.aggregate(s=Sum("cap", default=ZERO))["s"]
    if total < caps:
        return _("The pools' caps already sum to %(caps)s; the total cannot be less.") % {
            "caps": format_money(caps)
        }
    if total < programme.committed:
        return _("%(c)s is already committed; the total cannot be less.") % {
            "c": format_money(programme.committed)
        }
    return None


def programme_problems(programme: Programme) -> dict[str, list[str]]:
    """Why the programme cannot be saved with its edited fields (field: problems; empty: it can). A total within
    its pools' caps and what is committed (`total_problem`); years ordered and covering every allotment and every
    live tranche of its pools; the window ordered. Asked by `save_programme` under the programme's lock and by
    the admin's form for its field errors."""
    problems: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        problems.setdefault(name, []).append(message)

    if programme.total_budget is not None and programme.total_budget <= 0:
        add("total_budget", _("The total budget must be more than zero."))
    elif programme.pk and programme.total_budget is not None:
        problem = total_problem(programme.pk, programme.total_budget)
        if problem:
            add("total_budget", problem)
    first, last = programme.first_fiscal_year, programme.last_fiscal_year
    if first is not None and last is not None:
        if last < first:
            add("last_fiscal_year", _("The last fiscal year cannot come before the first."))
        elif programme.pk:
            used = sorted(
                set(
                    FiscalYearAllotment.objects.filter(pool__programme_id=programme.pk).values_list(
                        "fiscal_year", flat=True
                    )
                )
                | set(
                    Tranche.objects.filter(award__pool__programme_id=programme.pk)
                    .exclude(status=Tranche.Status.CANCELLED)
                    .values_list("fiscal_year", flat=True)
                )
            )
            outside = [year for year in used if not first <= year <= last]
            if outside:
                add(
                    "first_fiscal_year" if outside[0] < first else "last_fiscal_year",
                    _(
                        "Fiscal years %(years)s have allotments or tranches; the programme's years must include them."
                    )
                    % {"years": ", ".join(str(y) for y in outside)},
                )
    if programme.opens_at and programme.closes_at and programme.closes_at <= programme.opens_at:
        add("closes_at", _("Applications must close after they open."))
    return problems


def _refusal(problems: Mapping[str, list[str]]) -> InvalidInput:
    return InvalidInput(" ".join(p for ps in problems.values() for p in ps), fields=dict(problems))


def save_programme(*, programme: Programme, actor: User) -> Programme:
    """Create or change a programme from its edited fields (never its committed counter), refused with
    `programme_problems`. Locks the programme, so no pool cap can grow while its total is checked."""
    with transaction.atomic():
        require(actor, Role.PROGRAMME_OFFICER, programme.city_id)
        before = None
        if programme.pk:
            current = Programme.objects.select_for_update().get(pk=programme.pk)
            before = audit.snapshot(current, PROGRAMME_FIELDS)
        problems = programme_problems(programme)
        if problems:
            raise _refusal(problems)
        if programme.pk:
            programme.save(update_fields=[*PROGRAMME_FIELDS, "city"])
        else:
            if Programme.objects.filter(city_id=programme.city_id, code=programme.code).exists():
                raise AlreadyExists(
                    _("The city already has a programme with the code %(code)s.") % {"code": programme.code},
                    fields={"code": [_("Choose another code.")]},
                )
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


def create_programme(*, actor: User, city: City, **fields: Any) -> Programme:
    """A new programme of `city` from PROGRAMME_FIELDS (`save_programme`'s rules)."""
    unknown = set(fields) - set(PROGRAMME_FIELDS)
    if unknown:
        raise ValueError(f"not a programme field: {sorted(unknown)}")
    return save_programme(programme=Programme(city=city, **fields), actor=actor)


def change_programme(*, programme: Programme, actor: User, **changes: Any) -> Programme:
    """Change some of a programme's PROGRAMME_FIELDS (`save_programme`'s rules; the code is fixed: references are
    made of it)."""
    unknown = set(changes) - (set(PROGRAMME_FIELDS) - {"code"})
    if unknown:
        raise ValueError(f"not a changeable programme field: {sorted(unknown)}")
    for name, value in changes.items():
        setattr(programme, name, value)
    return save_programme(programme=programme, actor=actor)


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
    # Maker-checker (grants.services.proposals): above these one officer does not decide alone.
    "approval_threshold",
    "payment_threshold",
    "proposal_expiry_days",
)


def pool_rule_problems(pool: FundingPool) -> dict[str, list[str]]:
    """Why the pool's subsidy rules and window cannot be saved as they are (field: problems; empty: they can).
    `create_pool` and `change_pool` ask it under their locks; the admin's pool form and the API's serializers
    shape the input, this judges it."""
    problems: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        problems.setdefault(name, []).append(message)

    types = set(InstitutionType.values)
    if not (pool.name_en or "").strip():
        add("name_en", _("Give the pool an English name."))
    if pool.max_rate is not None and not ZERO < Decimal(pool.max_rate) <= 1:
        add("max_rate", _("A rate is more than 0 and at most 1 (0.30 is 30%)."))
    rates = pool.rate_by_type
    if not isinstance(rates, dict):
        add("rate_by_type", _("Give one rate per institution type."))
    else:
        for kind, rate in sorted(rates.items()):
            if kind not in types:
                add("rate_by_type", _("%(type)s is not an institution type.") % {"type": kind})
                continue
            try:
                value = Decimal(str(rate))
            except ArithmeticError:
                value = Decimal("NaN")
            if not (value.is_finite() and ZERO < value <= 1):
                add(
                    "rate_by_type",
                    _("The rate for %(type)s is more than 0 and at most 1 (0.30 is 30%%).")
                    % {"type": InstitutionType(kind).label},
                )
    eligible = pool.eligible_types
    if not isinstance(eligible, list) or not set(eligible) <= types:
        add("eligible_types", _("Choose institution types from the list."))
    thresholds = pool.alert_thresholds
    if not isinstance(thresholds, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= 100 for t in thresholds
    ):
        add("alert_thresholds", _("Each alert threshold is a whole percentage from 1 to 100."))
    for name in ("max_per_award", "max_per_institution_year"):
        value = getattr(pool, name)
        if value is not None and value <= 0:
            add(name, _("A maximum must be more than zero (leave it empty for no maximum)."))
    for name in ("approval_threshold", "payment_threshold"):
        value = getattr(pool, name)
        if value is not None and value <= 0:
            add(name, _("A threshold must be more than zero (leave it empty: one officer decides alone)."))
    if pool.proposal_expiry_days is not None and pool.proposal_expiry_days < 1:
        add("proposal_expiry_days", _("A proposal expires after at least 1 day."))
    if (pool.min_duration_years or 0) < 1:
        add("min_duration_years", _("The shortest award is at least 1 year."))
    elif (pool.max_duration_years or 0) < pool.min_duration_years:
        add("max_duration_years", _("The longest award cannot be shorter than the shortest."))
    if pool.opens_at and pool.closes_at and pool.closes_at <= pool.opens_at:
        add("closes_at", _("Applications must close after they open."))
    return problems


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
        if programme.closed_through is not None and year <= programme.closed_through:
            problems.append(_("The fiscal year is closed."))
        allotment = budget.allotments.get(year)
        # What the amount must cover (allotment_taken_within_spendable): what is committed, reserved, carried
        # over or lapsed in the year, less what earlier years carried into it.
        in_year = (
            allotment.committed
            + allotment.reserved
            + allotment.carried_out
            + allotment.lapsed
            - allotment.carried_in
            if allotment
            else budget.ledger_by_year.get(year, LedgerTotals()).committed
            + budget.ledger_by_year.get(year, LedgerTotals()).reserved
        )
        if amount < in_year:
            problems.append(
                _("%(c)s is already committed in that year; the allotment cannot be less.")
                % {"c": format_money(in_year)}
            )
        allotment_problems += [f"{_('fiscal year')} {year}: {problem}" for problem in problems]
    allotted = sum({**current, **changes}.values(), ZERO)
    if allotted > cap:
        allotment_problems.append(
            _("The allotments would sum to %(sum)s, more than the pool cap %(cap)s.")
            % {"sum": format_money(allotted), "cap": format_money(cap)}
            if changes
            else _("The cap cannot be less than the fiscal-year allotments (%(a)s).")
            % {"a": format_money(allotted)}
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
                "sum": format_money(budget.other_caps + cap),
                "total": format_money(budget.programme.total_budget),
                "left": format_money(budget.programme.total_budget - budget.other_caps),
            }
        )
    committed = budget.pool.committed if budget.pool is not None else ZERO
    reserved = budget.pool.reserved if budget.pool is not None else ZERO
    if cap < committed:
        problems.append(
            _("The cap cannot be less than what is committed (%(c)s).") % {"c": format_money(committed)}
        )
    elif cap < committed + reserved:
        # Proposals awaiting a second officer hold their room (grants.services.proposals).
        problems.append(
            _(
                "The cap cannot be less than what is committed and reserved by proposals awaiting a second "
                "officer (%(c)s)."
            )
            % {"c": format_money(committed + reserved)}
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
        rule_problems = pool_rule_problems(pool)
        if rule_problems:
            raise _refusal(rule_problems)
        pool.cap = to_money(pool.cap)
        problems = budget_problems(budget, cap=pool.cap, allotments=allotments)
        if problems:
            raise problems.refusal()
        if FundingPool.objects.filter(programme_id=pool.programme_id, code=pool.code).exists():
            raise AlreadyExists(
                _("The programme already has a pool with the code %(code)s.") % {"code": pool.code},
                fields={"code": [_("Choose another code.")]},
            )
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
        problems = pool_rule_problems(pool)
        if problems:
            raise _refusal(problems)
        # Before and after of each rule changed (the maker-checker thresholds among them): who changed what.
        stored = FundingPool.objects.select_for_update().get(pk=pool.pk)
        pool.save(update_fields=fields)
        audit.record(
            actor=actor,
            action="pool.change",
            obj=pool,
            city_id=programme.city_id,
            before=audit.snapshot(stored, fields),
            after={"fields": fields, **audit.snapshot(pool, fields)},
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
                    # A proposal's reservation made before the year had an allotment (its RELEASE must find it).
                    reserved=ledger.reserved,
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


def update_pool(
    *,
    pool: FundingPool,
    actor: User,
    rules: Mapping[str, Any] | None = None,
    cap: Decimal | None = None,
    allotments: Mapping[int, Decimal] | None = None,
) -> FundingPool:
    """Change a pool's rules (POOL_RULE_FIELDS: value), cap and allotments in one transaction: the budget first
    (`change_pool_budget`, under its locks), then the rules (`change_pool`). Either refusal changes nothing."""
    rules = dict(rules or {})
    with transaction.atomic():
        if cap is not None or allotments:
            change_pool_budget(pool=pool, actor=actor, cap=cap, allotments=allotments)
        for name, value in rules.items():
            setattr(pool, name, value)
        change_pool(pool=pool, actor=actor, fields=rules)
    return pool


def close_call(*, pool: FundingPool, actor: User) -> FundingPool:
    """Stop the pool taking applications now, whatever its window says; those already submitted go on. Audited
    as `pool.close`, like the closing job's. Closing a closed call changes nothing (a retry is harmless).

    Locks the programme, then the pool (the fixed order), and decides on the locked row."""
    with transaction.atomic():
        locked = lock_pool(pool.pk, years=set())
        require(actor, Role.PROGRAMME_OFFICER, locked.pool.programme.city_id)
        if locked.pool.accepting_applications:
            audit.change(
                locked.pool,
                actor=actor,
                action="pool.close",
                city_id=locked.pool.programme.city_id,
                audited=("accepting_applications",),
                values={"accepting_applications": False},
            )
    pool.accepting_applications = False
    return pool
