"""Reads for the portal, joined up front and scoped to the applicant's institutions."""

from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from operator import or_
from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from grants import selectors as grants_selectors
from grants.models import (
    Application,
    Attachment,
    AuditEvent,
    AwardAgreement,
    FundingPool,
    Institution,
    MilestoneReport,
    Programme,
)
from grants.roles import Role, has_role, in_city
from grants.services import windows

# What each recorded action means to the applicant. Actions not listed (reviews, internal figures) stay internal.
TIMELINE_LABELS = {
    "application.create": _("Draft created"),
    "application.update": _("Draft edited"),
    "application.attach": _("File attached"),
    "application.detach": _("File removed"),
    "application.submit": _("Submitted"),
    "application.assign_reviewers": _("Under review"),
    "application.return": _("Returned for changes"),
    "application.reject": _("Rejected"),
    "application.withdraw": _("Withdrawn"),
    "application.approve": _("Approved: award made"),
    "award.amend": _("Award amended"),
    "award.suspend": _("Award suspended"),
    "award.resume": _("Award resumed"),
    "award.terminate": _("Award terminated"),
    "award.complete": _("Award completed"),
    "tranche.release": _("Tranche payable"),
    "tranche.pay": _("Tranche paid"),
    "tranche.withhold": _("Tranche withheld"),
    "tranche.unwithhold": _("Tranche no longer withheld"),
    "tranche.cancel": _("Tranche cancelled"),
    "milestone.submit": _("Milestone report submitted"),
    "milestone.accept": _("Milestone report accepted"),
    "milestone.reject": _("Milestone report rejected"),
    "agreement.issue": _("Award agreement issued"),
    "agreement.accept": _("Award agreement accepted"),
    "report.submit": _("Report submitted"),
    "report.accept": _("Report accepted"),
    "report.return": _("Report returned for changes"),
}


def pools_with_window() -> QuerySet[FundingPool]:
    """Pools with the window that applies to them (grants.services.windows: the programme's, narrowed by the
    pool's own dates)."""
    opens, closes = windows.window_expressions()
    return (
        FundingPool.objects.select_related("programme__city")
        .annotate(window_opens=opens)
        .annotate(window_closes=closes)
    )


def open_calls(now: datetime | None = None) -> QuerySet[FundingPool]:
    """Pools taking applications now (grants.services.windows.is_open): open programme, pool accepting, inside
    the pool's window."""
    now = now or timezone.now()
    return (
        pools_with_window()
        .filter(
            # Q() because the type checker cannot see annotations as filter keywords.
            Q(window_opens__lte=now),
            Q(window_closes__gt=now),
            programme__status=Programme.Status.OPEN,
            accepting_applications=True,
        )
        .order_by("window_closes", "programme__city__code", "code")
    )


def institutions_of(user: Any) -> QuerySet[Institution]:
    return Institution.objects.filter(memberships__user_id=user.pk).select_related("city").order_by("name_en")


def applications_of(user: Any) -> QuerySet[Application]:
    return (
        Application.objects.filter(institution__memberships__user_id=user.pk)
        .select_related("pool__programme__city", "institution")
        .order_by("-updated_at")
    )


def application_for(user: Any, pk: int) -> Application:
    """The application if the user is a member of its institution; 404 otherwise (no existence leak)."""
    try:
        return applications_of(user).get(pk=pk)
    except Application.DoesNotExist:
        raise Http404 from None


def institution_for(user: Any, pk: int) -> Institution:
    try:
        return institutions_of(user).get(pk=pk)
    except Institution.DoesNotExist:
        raise Http404 from None


def attachment_for(user: Any, application_pk: int, pk: int) -> Attachment:
    """An attachment, to members of the applicant institution and to city staff who may see the application:
    officers, finance and auditors of its city, and its assigned reviewers."""
    try:
        attachment = Attachment.objects.select_related("application__pool__programme").get(
            pk=pk, application_id=application_pk
        )
    except Attachment.DoesNotExist:
        raise Http404 from None
    application = attachment.application
    if application.institution.memberships.filter(user_id=user.pk).exists():
        return attachment
    city_id = application.pool.programme.city_id
    staff_roles = (Role.PROGRAMME_OFFICER, Role.FINANCE_OFFICER, Role.AUDITOR)
    if any(has_role(user, r) for r in staff_roles) and in_city(user, city_id):
        return attachment
    # An assigned reviewer, once they declared no conflict of interest with the applicant.
    if grants_selectors.cleared_reviews(user).filter(application_id=application.pk).exists():
        return attachment
    raise Http404


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    label: str
    by: str
    note: str


def timeline(application: Application) -> list[TimelineEntry]:
    """The application's history from its audit events, and those of its award, tranches and milestone reports."""
    objects: list[tuple[str, Any]] = [("application", application.pk)]
    award = getattr(application, "award", None) if application.status == Application.Status.APPROVED else None
    if award is not None:
        objects.append(("award", award.pk))
        tranche_ids = list(award.tranches.values_list("pk", flat=True))
        objects += [("tranche", pk) for pk in tranche_ids]
        report_ids = MilestoneReport.objects.filter(tranche__award=award).values_list("pk", flat=True)
        objects += [("milestonereport", pk) for pk in report_ids]
        agreements = AwardAgreement.objects.filter(award=award).values_list("pk", flat=True)
        objects += [("awardagreement", pk) for pk in agreements]
        objects += [("reportingduty", pk) for pk in award.reporting_duties.values_list("pk", flat=True)]
    where = reduce(or_, (Q(object_type=t, object_id=str(pk)) for t, pk in objects))
    members = set(application.institution.memberships.values_list("user_id", flat=True))
    events = (
        AuditEvent.objects.filter(where, action__in=TIMELINE_LABELS).select_related("actor").order_by("id")
    )
    entries = []
    for event in events:
        if event.actor_id in members and event.actor is not None:
            by = event.actor.get_username()
        else:
            by = str(_("the city's grant office"))
        note = ""
        if isinstance(event.after, dict):
            note = str(event.after.get("note") or event.after.get("name") or "")
        entries.append(
            TimelineEntry(at=event.created_at, label=str(TIMELINE_LABELS[event.action]), by=by, note=note)
        )
    return entries
