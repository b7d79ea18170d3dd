"""Reviewing (issue #14.5, #16.4): the conflict-of-interest declaration that comes before the application's
content, and the review criteria with their descriptions and scale, defined once for the admin's form, the API's
schema and the ranking.

A reviewer assigned to an application first sees only who applied (the institution, its credit code, the call)
and declares either no conflict of interest, or a conflict, recusing with a reason. Only after declaring no
conflict does the application's content (text, budget, files) reach them (`grants.selectors.cleared_reviews`
is the one scope the API, the admin and the portal ask) and may they submit the review. A recused review is never
submitted, so it does not count toward the pool's minimum number of reviews; the officer assigns someone else.
Members of the applicant institution stay blocked: they cannot be assigned, and one who became a member since
cannot declare no conflict.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from grants import audit
from grants.errors import ConflictOfInterest, DomainError, InvalidInput, NotPermitted
from grants.models import Application, InstitutionMember, Review

if TYPE_CHECKING:  # django-stubs' name for a lazy translation; not installed in production
    from django_stubs_ext import StrPromise

D = Review.Declaration


class AlreadyDeclared(DomainError):
    code = "conflict_already_declared"
    status = 409


class ConflictNotDeclared(DomainError):
    code = "conflict_not_declared"
    status = 409


@dataclass(frozen=True)
class Criterion:
    name: str
    label: "StrPromise"
    description: "StrPromise"


# The criteria of SPEC §2, each scored 1 to 5 on the same scale.
CRITERIA = (
    Criterion(
        "technical_merit",
        gettext_lazy("technical merit"),
        gettext_lazy(
            "Is the approach sound and up to date? Are the computing power, models or data asked for the right "
            "ones for the stated goal?"
        ),
    ),
    Criterion(
        "feasibility",
        gettext_lazy("feasibility"),
        gettext_lazy(
            "Can this team deliver in the time and with the budget proposed? Are the costs realistic and the "
            "milestones checkable?"
        ),
    ),
    Criterion(
        "impact",
        gettext_lazy("impact"),
        gettext_lazy(
            "What will the city's AI industry gain: products, jobs, shared data or models, follow-on investment?"
        ),
    ),
)
SCALE = (
    (1, gettext_lazy("1: poor, serious weaknesses")),
    (2, gettext_lazy("2: weak, several weaknesses")),
    (3, gettext_lazy("3: adequate, strengths and weaknesses balance")),
    (4, gettext_lazy("4: good, minor weaknesses")),
    (5, gettext_lazy("5: excellent, no real weakness")),
)


def _lock(review: Review) -> Review:
    return (
        Review.objects.select_for_update(of=("self",))
        .select_related("application__pool__programme", "application__institution")
        .get(pk=review.pk)
    )


def declare_conflict(*, review: Review, actor: User, conflict: bool, reason: str = "") -> Review:
    """The assigned reviewer declares no conflict of interest with the applicant (`conflict=False`), or recuses
    (`conflict=True`) with a reason. Once only, while the application is under review; audited."""
    reason = (reason or "").strip()
    with transaction.atomic():
        review = _lock(review)
        application = review.application
        if review.reviewer_id != actor.pk:
            raise NotPermitted(
                _("Only the assigned reviewer may declare a conflict of interest for this review.")
            )
        if review.declaration != D.PENDING:
            raise AlreadyDeclared(
                _("You already declared: %(d)s. Ask the programme officer if this must change.")
                % {"d": review.get_declaration_display()}
            )
        if application.status != Application.Status.UNDER_REVIEW:
            raise InvalidInput(_("The application is no longer under review."))
        if conflict and not reason:
            raise InvalidInput(
                _("Say why you recuse yourself."), fields={"reason": [_("A reason is required to recuse.")]}
            )
        if (
            not conflict
            and InstitutionMember.objects.filter(
                institution_id=application.institution_id, user_id=actor.pk
            ).exists()
        ):
            raise ConflictOfInterest(
                _("You are a member of the applicant institution: recuse yourself from this review.")
            )
        audit.change(
            review,
            actor=actor,
            action="review.recuse" if conflict else "review.declare_no_conflict",
            city_id=application.pool.programme.city_id,
            audited=("declaration", "recusal_reason"),
            values={
                "declaration": D.RECUSED if conflict else D.NO_CONFLICT,
                "declared_at": timezone.now(),
                "recusal_reason": reason if conflict else "",
            },
        )
    return review


def require_declared(review: Review) -> None:
    """A review is submitted only after its reviewer declared no conflict (submit_review asks, under its lock)."""
    if review.declaration == D.RECUSED:
        raise ConflictNotDeclared(_("You recused yourself from this review: it cannot be submitted."))
    if review.declaration != D.NO_CONFLICT:
        raise ConflictNotDeclared(
            _("Declare first that you have no conflict of interest with the applicant, then review.")
        )
