"""Approving an application commits its amount against every level of §4 at once, or against none."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from grants import audit
from grants.errors import BudgetExceeded, DomainError, InvalidInput
from grants.models import Application, Award, FundingPool, Institution, Tranche
from grants.money import ZERO, apply_rate, split_largest_remainder, to_money
from grants.roles import Role, require
from grants.services.applications import rate_for
from grants.services.budget import (
    IdempotencyConflict,
    Kind,
    Locked,
    Movement,
    commit_last,
    lock_pool,
    post,
    replayed,
)
from grants.workflow import check_transition

S = Application.Status


class ReviewsMissing(DomainError):
    code = "reviews_missing"
    status = 409


class InstitutionDebarred(DomainError):
    code = "institution_debarred"
    status = 409


@dataclass(frozen=True)
class TrancheSpec:
    scheduled_date: date
    amount: Decimal
    requires_milestone: bool = False

    @property
    def fiscal_year(self) -> int:
        return self.scheduled_date.year


def _anniversary(start: date, years: int) -> date:
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February in a year that has none
        return start.replace(year=start.year + years, day=28)


def default_schedule(
    *,
    amount: Decimal,
    start: date,
    duration_years: int,
    first_share: Decimal | None = None,
    milestone_gated: bool = True,
) -> list[TrancheSpec]:
    """One tranche a year on the start date's anniversaries, split by largest remainder.

    `first_share` (e.g. 0.40) puts that part of the amount in the first tranche and splits the rest evenly;
    with `milestone_gated`, every tranche after the first needs an accepted milestone report.
    """
    amount = to_money(amount)
    if duration_years < 1:
        raise InvalidInput(_("The duration is at least one year."))
    weights: list[Decimal]
    if first_share is None or duration_years == 1:
        weights = [Decimal(1)] * duration_years
    else:
        if not Decimal(0) < first_share < Decimal(1):
            raise InvalidInput(
                _("The first tranche's share is between 0 and 1."),
                fields={"first_share": [_("Between 0 and 1, e.g. 0.40.")]},
            )
        rest = (Decimal(1) - first_share) / (duration_years - 1)
        weights = [first_share] + [rest] * (duration_years - 1)
    parts = split_largest_remainder(amount, weights)
    if any(p <= 0 for p in parts):
        raise InvalidInput(_("The amount is too small to split into %(n)d tranches.") % {"n": duration_years})
    return [
        TrancheSpec(_anniversary(start, k), part, requires_milestone=milestone_gated and k > 0)
        for k, part in enumerate(parts)
    ]


def check_schedule(schedule: list[TrancheSpec], amount: Decimal, *, first_year: int, last_year: int) -> None:
    problems = []
    if not schedule:
        problems.append(_("A schedule needs at least one tranche."))
    if any(t.amount <= 0 for t in schedule):
        problems.append(_("Every tranche amount must be more than zero."))
    if sum((t.amount for t in schedule), ZERO) != amount:
        problems.append(
            _("The tranches sum to %(sum)s, not the award amount %(amount)s.")
            % {"sum": f"{sum((t.amount for t in schedule), ZERO):,.2f}", "amount": f"{amount:,.2f}"}
        )
    outside = sorted({t.fiscal_year for t in schedule if not first_year <= t.fiscal_year <= last_year})
    if outside:
        problems.append(
            _("Tranches fall in fiscal years %(years)s, outside the programme's %(first)d to %(last)d.")
            % {"years": ", ".join(map(str, outside)), "first": first_year, "last": last_year}
        )
    if problems:
        raise InvalidInput(" ".join(problems), fields={"schedule": problems})


def _by_year(amounts: list[tuple[int, Decimal]]) -> dict[int, Decimal]:
    years: dict[int, Decimal] = {}
    for year, amount in amounts:
        years[year] = years.get(year, ZERO) + amount
    return years


def check_award_limits(pool: FundingPool, *, award_total: Decimal, cost_share_limit: Decimal | None) -> None:
    """Levels 4 and 5 of §4: they depend on the award alone, so they need no lock."""
    if pool.max_per_award is not None and award_total > pool.max_per_award:
        raise BudgetExceeded(level="per_award", asked=award_total, left=pool.max_per_award)
    if cost_share_limit is not None and award_total > cost_share_limit:
        raise BudgetExceeded(level="cost_share", asked=award_total, left=cost_share_limit)


def lock_institution_for_year_limit(pool: FundingPool, institution_id: int) -> None:
    """Approvals and amendments for one institution in a pool with a per-year maximum take the institution's row
    lock before reading its totals, so two of them cannot both pass `check_institution_year` on the same room."""
    if pool.max_per_institution_year is not None:
        list(Institution.objects.select_for_update().filter(pk=institution_id).values_list("pk", flat=True))


def check_institution_year(
    pool: FundingPool, *, institution_id: int, increase_by_year: dict[int, Decimal]
) -> None:
    """Level 3 of §4. The caller holds the institution's lock (`lock_institution_for_year_limit`)."""
    if pool.max_per_institution_year is None:
        return
    years = [y for y, d in increase_by_year.items() if d > 0]
    rows = (
        Tranche.objects.filter(award__pool=pool, award__institution_id=institution_id, fiscal_year__in=years)
        .exclude(status=Tranche.Status.CANCELLED)
        .values("fiscal_year")
        .annotate(total=Sum("amount"))
    )
    existing = {r["fiscal_year"]: r["total"] for r in rows}
    for year in sorted(years):
        left = pool.max_per_institution_year - existing.get(year, ZERO)
        if increase_by_year[year] > left:
            raise BudgetExceeded(
                level="institution_year", asked=increase_by_year[year], left=left, fiscal_year=year
            )


def check_levels(
    locked: Locked,
    *,
    institution_id: int,
    increase_by_year: dict[int, Decimal],
    award_total: Decimal,
    cost_share_limit: Decimal | None,
    has_allotments: bool,
) -> None:
    """Refuse the first level of §4 that `increase_by_year` would exceed. The caller holds the pool's locks (and
    the institution's, where the pool has a per-year maximum), so the figures read here cannot change before the
    commit."""
    pool, programme = locked.pool, locked.programme
    increase = sum((v for v in increase_by_year.values() if v > 0), ZERO)
    if increase > 0 and pool.committed + increase > pool.cap:
        raise BudgetExceeded(level="pool_cap", asked=increase, left=pool.cap - pool.committed)
    if has_allotments:
        for year, delta in sorted(increase_by_year.items()):
            if delta <= 0:
                continue
            allotment = locked.allotments.get(year)
            left = (allotment.amount - allotment.committed) if allotment else ZERO
            if delta > left:
                raise BudgetExceeded(level="fiscal_year_allotment", asked=delta, left=left, fiscal_year=year)
    check_institution_year(pool, institution_id=institution_id, increase_by_year=increase_by_year)
    check_award_limits(pool, award_total=award_total, cost_share_limit=cost_share_limit)
    if increase > 0 and programme is not None and programme.committed + increase > programme.total_budget:
        raise BudgetExceeded(
            level="programme_total", asked=increase, left=programme.total_budget - programme.committed
        )


def approve_application(
    *,
    application: Application,
    actor: User,
    amount: Decimal | None = None,
    start_date: date | None = None,
    schedule: list[TrancheSpec] | None = None,
    first_share: Decimal | None = None,
    milestone_gated: bool = True,
    note: str = "",
    idempotency_key: str | None = None,
) -> Award:
    """Approve an application under review: create the award and its tranches and commit the amount against the
    pool cap, the fiscal-year allotments, the institution's per-year maximum, the per-award maximum, the
    cost-share rate and the programme total, all at once or not at all.

    Locks the application, then (where the pool has a per-year maximum per institution) the institution, and
    last the programme, the pool and its allotments, each with a conditional UPDATE, followed by the ledger
    entries. Everything else (the schedule, the static limits, the award, its tranches, the audit event) is done
    before the budget rows are touched, so the hot rows every approval of the pool shares stay locked only for
    the last few statements before COMMIT.
    """
    application = Application.objects.select_related("pool__programme", "institution").get(pk=application.pk)
    pool = application.pool
    amount = to_money(amount if amount is not None else application.requested_amount)
    if amount <= 0:
        raise InvalidInput(
            _("The award amount must be more than zero."), fields={"amount": [_("More than zero.")]}
        )
    start = start_date or application.proposed_start
    if schedule is None:
        schedule = default_schedule(
            amount=amount,
            start=start,
            duration_years=application.duration_years,
            first_share=first_share,
            milestone_gated=milestone_gated,
        )
    check_schedule(
        schedule,
        amount,
        first_year=pool.programme.first_fiscal_year,
        last_year=pool.programme.last_fiscal_year,
    )
    by_year = _by_year([(t.fiscal_year, t.amount) for t in schedule])
    rate = rate_for(pool, application.institution)
    city_id = pool.programme.city_id
    key_base = f"approve:{idempotency_key}" if idempotency_key else f"application:{application.pk}:approve"

    with transaction.atomic():
        application = (
            Application.objects.select_for_update(of=("self",))
            .select_related("institution")
            .get(pk=application.pk)
        )
        # The role check comes before a replay: a replay must not hand another city's award to the caller.
        require(actor, Role.PROGRAMME_OFFICER, city_id)
        if idempotency_key:
            first = replayed(key_base)
            if first is not None:
                if first.award is None or first.award.application_id != application.pk:
                    raise IdempotencyConflict(
                        _("This idempotency key was already used for a different request."), key=key_base
                    )
                return first.award
        check_transition(application, S.APPROVED)
        reviews = application.reviews.filter(submitted_at__isnull=False).count()
        if reviews < pool.min_reviews:
            raise ReviewsMissing(
                _("%(need)d submitted review(s) are needed before approval; there are %(have)d.")
                % {"need": pool.min_reviews, "have": reviews},
                needed=pool.min_reviews,
                submitted=reviews,
            )
        institution = application.institution
        if institution.is_debarred():
            raise InstitutionDebarred(
                _("The institution is debarred until %(d)s.") % {"d": institution.debarred_until}
            )
        check_award_limits(
            pool,
            award_total=amount,
            cost_share_limit=apply_rate(application.eligible_cost, rate) if rate is not None else None,
        )
        lock_institution_for_year_limit(pool, application.institution_id)
        check_institution_year(pool, institution_id=application.institution_id, increase_by_year=by_year)
        now = timezone.now()
        award = Award.objects.create(
            application=application,
            pool=pool,
            institution_id=application.institution_id,
            reference=application.reference or f"A-{application.pk}",
            amount=amount,
            start_date=start,
            duration_years=application.duration_years,
            approved_by=actor,
            approved_at=now,
        )
        Tranche.objects.bulk_create(
            Tranche(
                award=award,
                sequence=i,
                fiscal_year=t.fiscal_year,
                scheduled_date=t.scheduled_date,
                amount=t.amount,
                requires_milestone=t.requires_milestone,
            )
            for i, t in enumerate(schedule, start=1)
        )
        before = audit.snapshot(application, ("status",))
        application.status = S.APPROVED
        application.decided_at = now
        application.decision_note = note
        application.save(update_fields=["status", "decided_at", "decision_note", "updated_at"])
        audit.record(
            actor=actor,
            action="application.approve",
            obj=application,
            city_id=city_id,
            before=before,
            after={
                "status": application.status,
                "award": award.reference,
                "amount": str(amount),
                "schedule": [[t.scheduled_date.isoformat(), str(t.amount)] for t in schedule],
            },
        )
        commit_last(
            pool,
            [Movement(Kind.COMMIT, total, year, award=award) for year, total in sorted(by_year.items())],
            actor=actor,
            reason=f"approval of {award.reference}",
            key_base=key_base,
        )
    return award


def amend_award(
    *,
    award: Award,
    actor: User,
    amount: Decimal,
    reason: str,
    idempotency_key: str | None = None,
) -> Award:
    """Change an award's amount. The unpaid part is re-split over the unpaid tranches in proportion to their
    amounts (largest remainder); an increase is checked like an approval, a decrease de-commits.

    Locks the institution (where the pool limits it per year), the programme, the pool, its allotments and the
    award.
    """
    amount = to_money(amount)
    if not reason.strip():
        raise InvalidInput(_("Give a reason for the amendment."), fields={"reason": [_("Required.")]})
    award = Award.objects.select_related("pool__programme", "application").get(pk=award.pk)
    pool = award.pool
    rate = rate_for(pool, award.institution)

    with transaction.atomic():
        lock_institution_for_year_limit(pool, award.institution_id)
        locked = lock_pool(pool.pk)
        award = Award.objects.select_for_update(of=("self",)).select_related("application").get(pk=award.pk)
        key_base = (
            f"amend:{idempotency_key}"
            if idempotency_key
            else f"award:{award.pk}:amend:{award.amendments + 1}"
        )
        require(actor, Role.PROGRAMME_OFFICER, locked.pool.programme.city_id)
        if idempotency_key and replayed(key_base, award_id=award.pk) is not None:
            return award
        if award.status not in (Award.Status.ACTIVE, Award.Status.SUSPENDED):
            raise InvalidInput(_("Only an active or suspended award can be amended."))
        open_tranches = list(
            award.tranches.select_for_update()
            .filter(status__in=[Tranche.Status.PLANNED, Tranche.Status.PAYABLE, Tranche.Status.WITHHELD])
            .order_by("sequence")
        )
        new_unpaid = amount - award.paid
        if new_unpaid < 0:
            raise InvalidInput(
                _("The amount cannot be less than what was already paid (%(paid)s).")
                % {"paid": f"{award.paid:,.2f}"}
            )
        if amount == award.amount:
            raise InvalidInput(_("The amount is unchanged."))
        if not open_tranches:
            raise InvalidInput(_("Every tranche is paid or cancelled; there is no unpaid tranche to amend."))
        new_amounts = (
            split_largest_remainder(new_unpaid, [t.amount for t in open_tranches])
            if new_unpaid
            else [ZERO for _t in open_tranches]
        )
        delta_by_year = _by_year(
            [(t.fiscal_year, new - t.amount) for t, new in zip(open_tranches, new_amounts, strict=True)]
        )
        check_levels(
            locked,
            institution_id=award.institution_id,
            increase_by_year=delta_by_year,
            award_total=amount if amount > award.amount else ZERO,
            cost_share_limit=(
                apply_rate(award.application.eligible_cost, rate)
                if rate is not None and amount > award.amount
                else None
            ),
            # Read under the lock: an allotment created meanwhile cannot be skipped.
            has_allotments=bool(locked.allotments),
        )
        movements = [
            Movement(Kind.COMMIT if delta > 0 else Kind.DECOMMIT, abs(delta), year, award=award)
            for year, delta in sorted(delta_by_year.items())
            if delta != 0
        ]
        before = {"amount": str(award.amount), "tranches": {t.sequence: str(t.amount) for t in open_tranches}}
        for tranche, new in zip(open_tranches, new_amounts, strict=True):
            if new == 0:
                tranche.status = Tranche.Status.CANCELLED
                tranche.status_note = f"cancelled by amendment: {reason}"[:500]
                tranche.save(update_fields=["status", "status_note"])
            elif new != tranche.amount:
                tranche.amount = new
                tranche.save(update_fields=["amount"])
        post(
            locked,
            movements,
            actor=actor,
            reason=f"amendment of {award.reference}: {reason}",
            key_base=key_base,
        )
        award.amount = amount
        award.amendments += 1
        award.save(update_fields=["amount", "amendments"])
        audit.record(
            actor=actor,
            action="award.amend",
            obj=award,
            city_id=locked.pool.programme.city_id,
            before=before,
            after={
                "amount": str(amount),
                "tranches": {t.sequence: str(n) for t, n in zip(open_tranches, new_amounts, strict=True)},
            },
        )
        if new_unpaid == 0:
            # Every tranche is now paid or cancelled: the award is complete (§3), as after a last payment.
            check_transition(award, Award.Status.COMPLETED)
            award.status = Award.Status.COMPLETED
            award.save(update_fields=["status"])
            audit.record(
                actor=actor,
                action="award.complete",
                obj=award,
                city_id=locked.pool.programme.city_id,
                after={"status": award.status},
            )
    return award


def parse_schedule(rows: list[dict[str, Any]]) -> list[TrancheSpec]:
    """A custom schedule from plain rows: {"scheduled_date": date, "amount": ..., "requires_milestone": bool}."""
    try:
        return [
            TrancheSpec(
                scheduled_date=row["scheduled_date"],
                amount=to_money(row["amount"]),
                requires_milestone=bool(row.get("requires_milestone", False)),
            )
            for row in rows
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(
            _("Each tranche needs a scheduled date and an amount."), fields={"schedule": [str(exc)]}
        ) from None
