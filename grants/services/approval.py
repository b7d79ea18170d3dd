"""Approving an application commits its amount against every level of §4 at once, or against none."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from grants import audit
from grants.errors import DomainError, InstitutionDebarred, InvalidInput, InvalidTransition
from grants.models import (
    Application,
    Award,
    FundingPool,
    Institution,
    Proposal,
    Review,
    Tranche,
    VoucherScheme,
)
from grants.money import ZERO, format_money, split_largest_remainder, to_money
from grants.roles import Role, require
from grants.services import duplicates, notifications
from grants.services.agreements import issue_agreement
from grants.services.budget import (
    IdempotencyConflict,
    Kind,
    Locked,
    Movement,
    commit_last,
    lock_pool,
    post,
    release,
    replayed,
)
from grants.services.levels import Level, cost_share_limit, levels, levels_now, refuse_first
from grants.services.reporting import end_of, schedule_duties
from grants.workflow import (
    OPEN_AWARD,
    OPEN_TRANCHE,
    check_transition,
    refuse_pending,
    require_alone,
    roles_for,
    sources,
    transition_refusal,
)

S = Application.Status


class VoucherPool(DomainError):
    code = "voucher_pool"
    status = 409


def refuse_if_voucher_pool(pool: FundingPool) -> None:
    """A pool run as vouchers makes no awards paid in tranches: approving an application there issues a voucher
    (grants.services.vouchers.issue_from_application)."""
    if VoucherScheme.objects.filter(pool_id=pool.pk).exists():
        raise VoucherPool(
            _(
                "This pool runs as vouchers: issue a voucher from the application instead of approving an award "
                "paid in tranches."
            )
        )


class ReviewsMissing(DomainError):
    code = "reviews_missing"
    status = 409


def approval_refusal(application: Application, pool: FundingPool) -> DomainError | None:
    """Why the application cannot be approved now, before any figure is looked at: its state, the reviews it
    still lacks, its institution's debarment; each refusal says what to do next. None when it can be.
    approve_application refuses with it under its lock; the admin asks it before offering the approval form."""
    reviews = application.reviews.aggregate(
        # A reviewer who recused will never submit: not counted as assigned (grants/services/reviews.py).
        assigned=Count("pk", filter=~Q(declaration=Review.Declaration.RECUSED)),
        submitted=Count("pk", filter=Q(submitted_at__isnull=False)),
    )
    if application.status in sources(Application, S.UNDER_REVIEW, Role.PROGRAMME_OFFICER):
        # Not under review yet: the review is what is missing, and assigning reviewers is how it starts.
        return InvalidTransition(
            kind="application",
            current=application.status,
            target=S.APPROVED,
            labels=(application.get_status_display(), str(S.APPROVED.label)),
            next_step=_(
                "It has not been reviewed: assign reviewers (this puts it under review), then approve it once "
                "%(need)d review(s) are submitted."
            )
            % {"need": max(pool.min_reviews, 1)},
        )
    refusal = transition_refusal(application, S.APPROVED)
    if refusal is not None:
        return refusal
    if reviews["submitted"] < pool.min_reviews:
        missing = pool.min_reviews - reviews["submitted"]
        unassigned = max(pool.min_reviews - reviews["assigned"], 0)
        next_step = (
            _("Assign %(n)d more reviewer(s).") % {"n": unassigned}
            if unassigned
            else _("Wait for the assigned reviewers: %(n)d review(s) still to come.") % {"n": missing}
        )
        return ReviewsMissing(
            _("Approval needs %(need)d submitted review(s); %(have)d submitted so far.")
            % {"need": pool.min_reviews, "have": reviews["submitted"]}
            + " "
            + next_step,
            needed=pool.min_reviews,
            submitted=reviews["submitted"],
        )
    institution = application.institution
    if institution.is_debarred():
        return InstitutionDebarred(
            _(
                "The institution is debarred until %(d)s: it cannot be given an award before then; reject the "
                "application or wait."
            )
            % {"d": institution.debarred_until}
        )
    return None


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
            % {"sum": format_money(sum((t.amount for t in schedule), ZERO)), "amount": format_money(amount)}
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


def approval_terms(
    application: Application,
    *,
    amount: Decimal | None,
    start_date: date | None,
    schedule: list[TrancheSpec] | None,
    first_share: Decimal | None,
    milestone_gated: bool,
) -> tuple[Decimal, date, list[TrancheSpec]]:
    """The award amount, start and schedule an approval (or a proposal of one) asks for, checked: the requested
    amount and the default schedule unless given."""
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
    return amount, start, schedule


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
    confirming: Proposal | None = None,
) -> Award:
    """Approve an application under review: create the award and its tranches and commit the amount against the
    pool cap, the fiscal-year allotments, the institution's per-year maximum, the per-award maximum, the
    cost-share rate and the programme total, all at once or not at all.

    Above the pool's approval threshold one officer may not approve alone (SecondOfficerRequired): the approval
    is proposed instead (grants.services.proposals), and its confirmation comes here with `confirming`, the
    proposal, locked: its reservation is released first, under the budget rows' locks, then everything goes
    as for a direct approval; the award records the proposer as approved_by and the actor as confirmed_by.

    Locks the application, then (where the pool has a per-year maximum per institution) the institution, and
    last the programme, the pool and its allotments, each with a conditional UPDATE, followed by the ledger
    entries. Everything else (the schedule, the static limits, the award, its tranches, the audit event) is done
    before the budget rows are touched, so the hot rows every approval of the pool shares stay locked only for
    the last few statements before COMMIT.
    """
    application = Application.objects.select_related("pool__programme", "institution").get(pk=application.pk)
    pool = application.pool
    refuse_if_voucher_pool(pool)
    amount, start, schedule = approval_terms(
        application,
        amount=amount,
        start_date=start_date,
        schedule=schedule,
        first_share=first_share,
        milestone_gated=milestone_gated,
    )
    by_year = _by_year([(t.fiscal_year, t.amount) for t in schedule])
    limit = cost_share_limit(pool, application.institution, application.eligible_cost)
    city_id = pool.programme.city_id
    key_base = f"approve:{idempotency_key}" if idempotency_key else f"application:{application.pk}:approve"
    # Similar applications or awards of the same firm elsewhere: scanned again and stored in its own transaction,
    # then refused until each flag is acknowledged (grants/services/duplicates.py).
    duplicates.require_acknowledged(application=application, actor=actor)

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
        refusal = approval_refusal(application, pool)
        if refusal is not None:
            raise refusal
        if confirming is None:
            require_alone(pool, Proposal.Kind.APPROVAL, amount, pending=application.proposals.all())
        lock_institution_for_year_limit(pool, application.institution_id)
        if confirming is not None:
            # The room it held goes back first, so the levels below (and commit_last) see it; the budget rows stay
            # locked from here to COMMIT, which only confirmations pay for.
            release(
                lock_pool(pool.pk),
                confirming,
                actor=actor,
                reason=f"confirmation of proposal {confirming.pk}",
            )
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
            approved_by=confirming.proposed_by if confirming else actor,
            confirmed_by=actor if confirming else None,
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
        # The approval's notice first: the agreement's (issue_agreement) follows it in the applicant's inbox.
        notifications.application_approved(award, note=note)
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
        # The reports the award owes and the agreement the institution accepts before any tranche is released.
        duties = schedule_duties(award=award)
        issue_agreement(award=award, actor=actor, city_id=city_id, end_date=end_of(award), duties=duties)
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
    confirming: Proposal | None = None,
) -> Award:
    """Change an award's amount. The unpaid part is re-split over the unpaid tranches in proportion to their
    amounts (largest remainder); an increase is checked against the same levels as an approval and commits
    through the same `commit_last`, a decrease de-commits.

    An increase to above the pool's approval threshold needs a second officer (SecondOfficerRequired): it is
    proposed instead (grants.services.proposals) and its confirmation comes here with `confirming`, whose
    reservation is released under the locks before the levels are asked.

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
        if confirming is None:
            refuse_pending(award.proposals.all())
            if amount > award.amount:
                require_alone(locked.pool, Proposal.Kind.AMENDMENT, amount, pending=award.proposals.none())
        if confirming is not None:
            # The room it held goes back first (into the rows locked above), so the levels below see it.
            release(locked, confirming, actor=actor, reason=f"confirmation of proposal {confirming.pk}")
        plan = plan_amendment(award, amount)
        open_tranches, new_amounts, delta_by_year = plan.open_tranches, plan.new_amounts, plan.delta_by_year
        new_unpaid, increasing = plan.new_unpaid, plan.increasing
        refuse_first(amendment_levels(locked, award, amount, plan))
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


@dataclass(frozen=True)
class AmendmentPlan:
    """An amendment worked out against the locked award: the open tranches, their new amounts, the change of
    commitment per fiscal year."""

    open_tranches: list[Tranche]
    new_amounts: list[Decimal]
    delta_by_year: dict[int, Decimal]
    new_unpaid: Decimal
    increasing: bool


def plan_amendment(award: Award, amount: Decimal) -> AmendmentPlan:
    """Refuse an amendment that cannot be made; else re-split the unpaid part over the open tranches (locked
    here) in proportion to their amounts. The caller holds the award's lock."""
    if award.status not in OPEN_AWARD:
        raise InvalidInput(_("Only an active or suspended award can be amended."))
    open_tranches = list(
        award.tranches.select_for_update().filter(status__in=OPEN_TRANCHE).order_by("sequence")
    )
    new_unpaid = amount - award.paid
    if new_unpaid < 0:
        raise InvalidInput(
            _("The amount cannot be less than what was already paid (%(paid)s).")
            % {"paid": format_money(award.paid)}
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
    return AmendmentPlan(open_tranches, new_amounts, delta_by_year, new_unpaid, amount > award.amount)


def amendment_levels(locked: Locked, award: Award, amount: Decimal, plan: AmendmentPlan) -> list[Level]:
    """The same levels as an approval, against the rows locked (every allotment of the pool: one created
    meanwhile cannot be skipped). A decrease asks nothing of any level."""
    return levels(
        pool=locked.pool,
        programme=locked.pool.programme,
        allotments=locked.allotments,
        institution_id=award.institution_id,
        asked_by_year=plan.delta_by_year,
        award_total=amount if plan.increasing else ZERO,
        cost_share_limit=(
            cost_share_limit(locked.pool, award.institution, award.application.eligible_cost)
            if plan.increasing
            else None
        ),
    )


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
