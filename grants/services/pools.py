"""Programme and pool budgets: caps within the programme total, allotments within the cap."""

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
from grants.services.budget import Kind


def caps_problem(programme: Programme, cap: Decimal, *, exclude_pool_id: int | None = None) -> str | None:
    """Why `cap` cannot be a pool's cap in this programme, or None. The caps of a programme's pools sum to at
    most its total budget (§4 level 6)."""
    pools = FundingPool.objects.filter(programme=programme)
    if exclude_pool_id is not None:
        pools = pools.exclude(pk=exclude_pool_id)
    others = (pools.aggregate(s=Sum("cap", default=ZERO)))["s"]
    if others + cap > programme.total_budget:
        return _(
            "The pools' caps would sum to %(sum)s, more than the programme total %(total)s (%(left)s left)."
        ) % {
            "sum": f"{others + cap:,.2f}",
            "total": f"{programme.total_budget:,.2f}",
            "left": f"{programme.total_budget - others:,.2f}",
        }
    return None


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


def set_pool_cap(*, pool: FundingPool, actor: User, cap: Decimal) -> FundingPool:
    """Change a pool's cap: not below what is committed or allotted, not beyond the programme total.
    Locks the programme, then the pool."""
    cap = to_money(cap)
    with transaction.atomic():
        programme = Programme.objects.select_for_update().get(pk=pool.programme_id)
        pool = FundingPool.objects.select_for_update().get(pk=pool.pk)
        require(actor, Role.PROGRAMME_OFFICER, programme.city_id)
        problem = caps_problem(programme, cap, exclude_pool_id=pool.pk)
        allotted = pool.allotments.aggregate(s=Sum("amount", default=ZERO))["s"]
        if problem is None and cap < pool.committed:
            problem = _("The cap cannot be less than what is committed (%(c)s).") % {
                "c": f"{pool.committed:,.2f}"
            }
        if problem is None and cap < allotted:
            problem = _("The cap cannot be less than the fiscal-year allotments (%(a)s).") % {
                "a": f"{allotted:,.2f}"
            }
        if problem:
            raise InvalidInput(problem, fields={"cap": [problem]})
        before = {"cap": str(pool.cap)}
        pool.cap = cap
        pool.save(update_fields=["cap"])
        audit.record(
            actor=actor,
            action="pool.set_cap",
            obj=pool,
            city_id=programme.city_id,
            before=before,
            after={"cap": str(cap)},
        )
    return pool


def set_allotment(
    *, pool: FundingPool, actor: User, fiscal_year: int, amount: Decimal
) -> FiscalYearAllotment:
    """Create or change a fiscal-year allotment. A new allotment starts with the committed and disbursed money
    already in that year, from the ledger, so its counters agree with what is recorded.

    Locks the programme, the pool and the pool's allotments: no money can move in the pool meanwhile.
    """
    amount = to_money(amount)
    with transaction.atomic():
        programme = Programme.objects.select_for_update().get(pk=pool.programme_id)
        pool = FundingPool.objects.select_for_update().get(pk=pool.pk)
        require(actor, Role.PROGRAMME_OFFICER, programme.city_id)
        allotments = {
            a.fiscal_year: a for a in FiscalYearAllotment.objects.select_for_update().filter(pool=pool)
        }
        problems = []
        if not programme.first_fiscal_year <= fiscal_year <= programme.last_fiscal_year:
            problems.append(_("The fiscal year is outside the programme's years."))
        if amount <= 0:
            problems.append(_("The amount must be more than zero."))
        others = sum((a.amount for y, a in allotments.items() if y != fiscal_year), ZERO)
        if others + amount > pool.cap:
            problems.append(
                _("The allotments would sum to %(sum)s, more than the pool cap %(cap)s.")
                % {"sum": f"{others + amount:,.2f}", "cap": f"{pool.cap:,.2f}"}
            )
        allotment = allotments.get(fiscal_year)
        if allotment is None:
            sums = {
                row["kind"]: row["total"]
                for row in LedgerEntry.objects.filter(pool=pool, fiscal_year=fiscal_year)
                .values("kind")
                .annotate(total=Sum("amount"))
            }
            committed = sums.get(Kind.COMMIT, ZERO) - sums.get(Kind.DECOMMIT, ZERO)
            disbursed = sums.get(Kind.DISBURSE, ZERO) - sums.get(Kind.RECOVER, ZERO)
        else:
            committed, disbursed = allotment.committed, allotment.disbursed
        if amount < committed:
            problems.append(
                _("%(c)s is already committed in that year; the allotment cannot be less.")
                % {"c": f"{committed:,.2f}"}
            )
        if problems:
            raise InvalidInput(" ".join(problems), fields={"amount": problems})
        before = {"amount": str(allotment.amount)} if allotment else None
        if allotment is None:
            allotment = FiscalYearAllotment.objects.create(
                pool=pool, fiscal_year=fiscal_year, amount=amount, committed=committed, disbursed=disbursed
            )
        else:
            allotment.amount = amount
            allotment.save(update_fields=["amount"])
        audit.record(
            actor=actor,
            action="allotment.set",
            obj=allotment,
            city_id=programme.city_id,
            before=before,
            after={"fiscal_year": fiscal_year, "amount": str(amount)},
        )
    return allotment
