"""Approving an application commits its amount against every level of §4 at once, or against none."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from grants import audit
from grants.errors import DomainError, InstitutionDebarred, InvalidInput
from grants.models import Application, Award, FundingPool, Institution, Tranche
from grants.money import ZERO, split_largest_remainder, to_money
from grants.roles import Role, require
from grants.services.budget import IdempotencyConflict, Kind, Movement, commit_last, lock_pool, post, replayed
from grants.services.levels import cost_share_limit, levels, levels_now, refuse_first
from grants.workflow import OPEN_AWARD, OPEN_TRANCHE, check_transition, roles_for

S = Application.Status


class ReviewsMissing(DomainError):
    code = "reviews_missing"
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


def lock_institution_for_year_limit(pool: FundingPool, institution_id: int) -> None:
    """Approvals and amendments for one institution in a pool with a per-year maximum take the institution's row
    lock before reading its totals (`levels`), so two of them cannot both pass the institution's per-year maximum
    on the same room."""
    if pool.max_per_institution_year is not None:
        list(Institution.objects.select_for_update().filter(pk=institution_id).values_list("pk", flat=True))


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
    limit = cost_share_limit(pool, application.institution, application.eligible_cost)
    city_id = pool.programme.city_id
    key_base = f"approve:{idempotency_key}" if idempotency_key else f"application:{application.pk}:approve"

    with transaction.atomic():
        application = (
            Application.objects.select_for_update(of=("self",))
            .select_related("institution")
            .get(pk=application.pk)
        )
        # The role check comes before a replay: a replay must not hand another city's award to the caller.
        require(actor, roles_for(Application, S.APPROVED), city_id)
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
        lock_institution_for_year_limit(pool, application.institution_id)
        # Every level, in the one order, before anything is written: the refusal names the level the officer saw
        # full on the approval page. The shared rows are read unlocked here; commit_last decides them under locks.
        refuse_first(
            levels_now(
                pool_id=pool.pk,
                institution_id=application.institution_id,
                asked_by_year=by_year,
                award_total=amount,
                cost_share_limit=limit,
            )
        )
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
        audit.change(
            application,
            actor=actor,
            action="application.approve",
            city_id=city_id,
            audited=("status",),
            values={"status": S.APPROVED, "decided_at": now, "decision_note": note},
            also_save=["updated_at"],
            noted={
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
    amounts (largest remainder); an increase is checked against the same levels as an approval and commits
    through the same `commit_last`, a decrease de-commits.

    Locks the institution (where the pool limits it per year), the programme, the pool, its allotments and the
    award.
    """
    amount = to_money(amount)
    if not reason.strip():
        raise InvalidInput(_("Give a reason for the amendment."), fields={"reason": [_("Required.")]})
    award = Award.objects.select_related("pool__programme", "application").get(pk=award.pk)
    pool = award.pool

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
        if award.status not in OPEN_AWARD:
            raise InvalidInput(_("Only an active or suspended award can be amended."))
        open_tranches = list(
            award.tranches.select_for_update().filter(status__in=OPEN_TRANCHE).order_by("sequence")
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
        increasing = amount > award.amount
        # The same levels as an approval, against the rows locked above (every allotment of the pool: one created
        # meanwhile cannot be skipped). A decrease asks nothing of any level.
        refuse_first(
            levels(
                pool=locked.pool,
                programme=locked.pool.programme,
                allotments=locked.allotments,
                institution_id=award.institution_id,
                asked_by_year=delta_by_year,
                award_total=amount if increasing else ZERO,
                cost_share_limit=(
                    cost_share_limit(pool, award.institution, award.application.eligible_cost)
                    if increasing
                    else None
                ),
            )
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
        # An increase commits like an approval, through commit_last (its UPDATEs find the rows this transaction
        # already holds). The re-split is proportional, so every year moves the same way as the total.
        entry_reason = f"amendment of {award.reference}: {reason}"
        if increasing:
            commit_last(locked.pool, movements, actor=actor, reason=entry_reason, key_base=key_base)
        else:
            post(locked, movements, actor=actor, reason=entry_reason, key_base=key_base)
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
