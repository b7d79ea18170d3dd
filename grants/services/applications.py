"""Applications from draft to decision (§3, §8), except approval, which moves money (approval.py)."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from grants import audit, workflow
from grants.errors import ConflictOfInterest, Ineligible, InvalidInput, NotPermitted
from grants.models import Application, DuplicateFlag, FundingPool, Institution, InstitutionMember, Review
from grants.money import apply_rate, format_money, to_money
from grants.roles import Role, has_role, require_member
from grants.services import duplicates, notifications, windows
from grants.services.levels import levels_now, rate_for
from grants.services.reviews import require_declared

S = Application.Status
EDITABLE_FIELDS = (
    "title",
    "summary",
    "eligible_cost",
    "requested_amount",
    "duration_years",
    "proposed_start",
)
AUDITED = ("status", "reference", *EDITABLE_FIELDS)


def _city_id(application: Application) -> int:
    return application.pool.programme.city_id


def _lock(application: Application) -> Application:
    return (
        Application.objects.select_for_update(of=("self",))
        .select_related("pool__programme__city", "institution")
        .get(pk=application.pk)
    )


def _clean_fields(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(_("These fields cannot be set: %(f)s.") % {"f": ", ".join(sorted(unknown))})
    problems: dict[str, list[str]] = {}
    for name in ("eligible_cost", "requested_amount"):
        if name in fields:
            try:
                fields[name] = to_money(fields[name])
            except (TypeError, ValueError):
                problems[name] = [_("Enter an amount in yuan, e.g. 1250000.00.")]
                continue
            if fields[name] <= 0:
                problems[name] = [_("The amount must be more than zero.")]
    if "duration_years" in fields and (
        not isinstance(fields["duration_years"], int) or fields["duration_years"] < 1
    ):
        problems["duration_years"] = [_("The duration is a whole number of years, at least 1.")]
    if "title" in fields and not str(fields["title"]).strip():
        problems["title"] = [_("A title is required.")]
    if "proposed_start" in fields and not isinstance(fields["proposed_start"], date):
        problems["proposed_start"] = [_("Enter a date.")]
    if problems:
        raise InvalidInput(_("Some fields are not valid."), fields=problems)
    return fields


def create_application(
    *,
    actor: User,
    institution: Institution,
    pool: FundingPool,
    title: str,
    eligible_cost: Decimal,
    requested_amount: Decimal,
    proposed_start: date,
    duration_years: int = 1,
    summary: str = "",
) -> Application:
    """A draft application, by a member of the institution."""
    require_member(actor, institution)
    fields = _clean_fields(
        {
            "title": title,
            "summary": summary,
            "eligible_cost": eligible_cost,
            "requested_amount": requested_amount,
            "duration_years": duration_years,
            "proposed_start": proposed_start,
        }
    )
    with transaction.atomic():
        application = Application.objects.create(
            institution=institution, pool=pool, created_by=actor, **fields
        )
        audit.record(
            actor=actor,
            action="application.create",
            obj=application,
            city_id=pool.programme.city_id,
            after=audit.snapshot(application, AUDITED),
        )
    return application


def update_application(*, application: Application, actor: User, **fields: Any) -> Application:
    """Edit a draft. A returned application becomes a draft again when its institution edits it."""
    fields = _clean_fields(fields)
    with transaction.atomic():
        application = _lock(application)
        require_member(actor, application.institution)
        if application.status not in workflow.EDITABLE:
            raise InvalidInput(
                _("Only a draft can be edited; this application is %(s)s.")
                % {"s": application.get_status_display()}
            )
        audit.change(
            application,
            actor=actor,
            action="application.update",
            city_id=_city_id(application),
            audited=AUDITED,
            values={**fields, "status": S.DRAFT},
            also_save=["updated_at"],
        )
    return application


def delete_draft(*, application: Application, actor: User) -> None:
    with transaction.atomic():
        application = _lock(application)
        require_member(actor, application.institution)
        if application.status != S.DRAFT or application.reference:
            raise InvalidInput(
                _("Only a draft that was never submitted can be deleted; withdraw it instead.")
            )
        audit.record(
            actor=actor,
            action="application.delete",
            obj=application,
            city_id=_city_id(application),
            before=audit.snapshot(application, AUDITED),
        )
        for attachment in application.attachments.all():
            attachment.file.delete(save=False)
        application.delete()


def eligibility_failures(
    application: Application, *, now: datetime | None = None
) -> list[tuple[str, str, str]]:
    """Every rule of §8 the application fails, as (code, field, message). Empty when eligible."""
    now = now or timezone.now()
    pool = application.pool
    programme = pool.programme
    institution = application.institution
    failures: list[tuple[str, str, str]] = []
    if not windows.is_open(pool, now):
        failures.append(("window_closed", "pool", _("This call is not open for applications now.")))
    if pool.eligible_types and institution.type not in pool.eligible_types:
        failures.append(
            (
                "institution_type",
                "institution",
                _("Institutions of this type are not eligible for this call."),
            )
        )
    if pool.registration_required and institution.city_id != programme.city_id:
        failures.append(
            ("not_registered_in_city", "institution", _("The institution must be registered in this city."))
        )
    if institution.is_debarred(now.date()):
        failures.append(
            (
                "institution_debarred",
                "institution",
                _("The institution is debarred until %(d)s.") % {"d": institution.debarred_until},
            )
        )
    rate = rate_for(pool, institution)
    if rate is not None and application.requested_amount > apply_rate(application.eligible_cost, rate):
        failures.append(
            (
                "over_cost_share",
                "requested_amount",
                _("At most %(rate)s%% of the eligible cost may be requested: %(max)s.")
                % {
                    "rate": f"{(rate * 100).normalize():f}",
                    "max": format_money(apply_rate(application.eligible_cost, rate)),
                },
            )
        )
    if pool.max_per_award is not None and application.requested_amount > pool.max_per_award:
        failures.append(
            (
                "over_per_award",
                "requested_amount",
                _("At most %(max)s may be requested per award.") % {"max": format_money(pool.max_per_award)},
            )
        )
    if not (pool.min_duration_years <= application.duration_years <= pool.max_duration_years):
        failures.append(
            (
                "duration_not_allowed",
                "duration_years",
                (
                    ngettext(
                        "The duration must be %(n)d year.",
                        "The duration must be %(n)d years.",
                        pool.min_duration_years,
                    )
                    % {"n": pool.min_duration_years}
                    if pool.min_duration_years == pool.max_duration_years
                    else _("The duration must be between %(lo)d and %(hi)d years.")
                    % {"lo": pool.min_duration_years, "hi": pool.max_duration_years}
                ),
            )
        )
    failures += institution_year_failures(application)
    others = Application.objects.filter(
        institution=institution, pool=pool, status__in=Application.OPEN_STATUSES
    ).exclude(pk=application.pk)
    if others.exists():
        failures.append(
            (
                "open_application_exists",
                "pool",
                _("The institution already has an open application to this pool."),
            )
        )
    return failures


def institution_year_failures(application: Application) -> list[tuple[str, str, str]]:
    """The institution's per-year maximum in the pool, asked on submission as at approval: the requested amount
    spread over the years as the default schedule would (grants.services.approval.default_schedule) against what
    is already committed to the institution in the pool, year by year (levels.py's `institution_year` rows)."""
    pool = application.pool
    if pool.max_per_institution_year is None or application.requested_amount <= 0:
        return []
    from grants.services.approval import default_schedule

    try:
        schedule = default_schedule(
            amount=application.requested_amount,
            start=application.proposed_start,
            duration_years=max(application.duration_years, 1),
            milestone_gated=False,
        )
    except InvalidInput:
        return []  # an amount too small to split: nothing to ask of the maximum
    by_year: dict[int, Decimal] = {}
    for tranche in schedule:
        by_year[tranche.fiscal_year] = by_year.get(tranche.fiscal_year, Decimal(0)) + tranche.amount
    rows = levels_now(
        pool_id=pool.pk,
        institution_id=application.institution_id,
        asked_by_year=by_year,
        award_total=application.requested_amount,
        cost_share_limit=None,
    )
    return [
        (
            "over_institution_year",
            "requested_amount",
            _(
                "In fiscal year %(year)d this would put %(asked)s against the institution's maximum of %(max)s in "
                "this call, of which %(left)s is left: ask for less or spread the project over more years."
            )
            % {
                "year": row.fiscal_year,
                "asked": format_money(row.asked),
                "max": format_money(row.limit),
                "left": format_money(max(row.left, Decimal(0))),
            },
        )
        for row in rows
        if row.name == "institution_year" and not row.has_room
    ]


def submit_application(*, application: Application, actor: User) -> Application:
    """Submit a draft: every eligibility rule is checked and all failures reported at once; a first submission
    gets its reference.

    Locks the application, then the pool's row for its reference counter (the order of budget.py).
    """
    with transaction.atomic():
        application = _lock(application)
        workflow.require(actor, application, S.SUBMITTED)
        failures = eligibility_failures(application)
        if failures:
            raise Ineligible(failures)
        reference = application.reference
        if not reference:
            pool = application.pool
            FundingPool.objects.filter(pk=pool.pk).update(
                next_reference_number=F("next_reference_number") + 1
            )
            number = FundingPool.objects.values_list("next_reference_number", flat=True).get(pk=pool.pk) - 1
            programme = pool.programme
            reference = f"{programme.city.code}-{programme.code}-{pool.code}-{number:05d}"
        audit.change(
            application,
            actor=actor,
            action="application.submit",
            city_id=_city_id(application),
            audited=AUDITED,
            values={"status": S.SUBMITTED, "reference": reference, "submitted_at": timezone.now()},
            also_save=["updated_at"],
        )
        duplicates.record_findings(
            application=application, found_on=DuplicateFlag.Found.SUBMISSION, actor=actor
        )
        notifications.application_changed(application)
    return application


def _officer_transition(
    *, application: Application, actor: User, target: str, action: str, note: str = ""
) -> Application:
    with transaction.atomic():
        application = _lock(application)
        workflow.require(actor, application, target)
        values: dict[str, Any] = {"status": target, "decision_note": note}
        if target == S.REJECTED:
            values["decided_at"] = timezone.now()
        audit.change(
            application,
            actor=actor,
            action=action,
            city_id=_city_id(application),
            audited=AUDITED,
            values=values,
            also_save=["updated_at"],
            noted={"note": note},
        )
        notifications.application_changed(application, note=note)
    return application


def return_application(*, application: Application, actor: User, note: str) -> Application:
    """An officer sends the application back for changes; the institution edits it as a draft."""
    if not note.strip():
        raise InvalidInput(_("Say what must change."), fields={"note": [_("A note is required.")]})
    return _officer_transition(
        application=application, actor=actor, target=S.RETURNED, action="application.return", note=note
    )


def reject_application(*, application: Application, actor: User, note: str = "") -> Application:
    return _officer_transition(
        application=application, actor=actor, target=S.REJECTED, action="application.reject", note=note
    )


def withdraw_application(*, application: Application, actor: User) -> Application:
    with transaction.atomic():
        application = _lock(application)
        workflow.require(actor, application, S.WITHDRAWN)
        audit.change(
            application,
            actor=actor,
            action="application.withdraw",
            city_id=_city_id(application),
            audited=AUDITED,
            values={"status": S.WITHDRAWN},
            also_save=["updated_at"],
        )
    return application


def assign_reviewers(*, application: Application, actor: User, reviewers: list[User]) -> list[Review]:
    """Assign reviewers; the application goes under review. A member of the applicant institution cannot review."""
    if not reviewers:
        raise InvalidInput(
            _("Choose at least one reviewer."), fields={"reviewers": [_("Choose a reviewer.")]}
        )
    with transaction.atomic():
        application = _lock(application)
        city_id = _city_id(application)
        workflow.require_role(actor, application, S.UNDER_REVIEW)
        if application.status not in workflow.ASSIGNABLE:
            raise InvalidInput(
                _(
                    "Reviewers can be assigned only to a submitted application under review; this one is %(s)s."
                )
                % {"s": application.get_status_display()}
            )
        conflicted = set(
            InstitutionMember.objects.filter(
                institution=application.institution, user__in=[r.pk for r in reviewers]
            ).values_list("user_id", flat=True)
        )
        if conflicted:
            raise ConflictOfInterest(
                _("A member of the applicant institution cannot review its application."),
                reviewers=sorted(conflicted),
            )
        not_reviewers = [r.pk for r in reviewers if not has_role(r, Role.REVIEWER)]
        if not_reviewers:
            raise InvalidInput(
                _("Only users with the reviewer role can be assigned."), reviewers=sorted(not_reviewers)
            )
        already = set(application.reviews.values_list("reviewer_id", flat=True))
        created = [
            Review.objects.create(application=application, reviewer=r, assigned_by=actor)
            for r in reviewers
            if r.pk not in already
        ]
        # Reviewers added to an application already under review change only the reviews: nothing to save.
        audit.change(
            application,
            actor=actor,
            action="application.assign_reviewers",
            city_id=city_id,
            audited=AUDITED,
            values={"status": S.UNDER_REVIEW} if application.status == S.SUBMITTED else {},
            also_save=["updated_at"],
            noted={"reviewers": [r.pk for r in reviewers]},
        )
        notifications.reviewers_assigned(created)
    return created


def awaiting_review(review: Review) -> bool:
    """Each assigned reviewer submits one review."""
    return review.submitted_at is None


def submit_review(
    *,
    review: Review,
    actor: User,
    technical_merit: int,
    feasibility: int,
    impact: int,
    recommendation: str,
    recommended_amount: Decimal | None = None,
    comment: str = "",
) -> Review:
    """The assigned reviewer's one review of an application under review."""
    problems: dict[str, list[str]] = {}
    for name, score in (
        ("technical_merit", technical_merit),
        ("feasibility", feasibility),
        ("impact", impact),
    ):
        if not isinstance(score, int) or not 1 <= score <= 5:
            problems[name] = [_("A score from 1 to 5.")]
    if recommendation not in Review.Recommendation.values:
        problems["recommendation"] = [_("Choose fund, do not fund or revise.")]
    if recommended_amount is not None:
        recommended_amount = to_money(recommended_amount)
        if recommended_amount <= 0:
            problems["recommended_amount"] = [_("The amount must be more than zero.")]
    if problems:
        raise InvalidInput(_("Some fields are not valid."), fields=problems)
    with transaction.atomic():
        review = (
            Review.objects.select_for_update(of=("self",))
            .select_related("application__pool__programme")
            .get(pk=review.pk)
        )
        if review.reviewer_id != actor.pk:
            raise NotPermitted(_("Only the assigned reviewer may submit this review."))
        if not awaiting_review(review):
            raise InvalidInput(_("This review was already submitted; each reviewer submits one review."))
        if review.application.status != S.UNDER_REVIEW:
            raise InvalidInput(_("The application is no longer under review."))
        require_declared(review)
        review.technical_merit = technical_merit
        review.feasibility = feasibility
        review.impact = impact
        review.recommendation = recommendation
        review.recommended_amount = recommended_amount
        review.comment = comment
        review.submitted_at = timezone.now()
        review.save()
        audit.record(
            actor=actor,
            action="review.submit",
            obj=review,
            city_id=review.application.pool.programme.city_id,
            after=audit.snapshot(
                review, ("technical_merit", "feasibility", "impact", "recommendation", "recommended_amount")
            ),
        )
    return review
