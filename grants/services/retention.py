"""Personal data kept no longer than needed (PIPL art. 19 and 47), and given to the person who asks (art. 45).

A daily run (`manage.py apply_retention`, the beat's `grants.apply_retention`) anonymises in place what is past its
retention, per kind (settings RETENTION_*_DAYS, docs/operations.md "Personal data"):

- rejected or withdrawn applications, counted from the decision or withdrawal: title, summary and decision note
  replaced, reviewers' comments cleared, files deleted;
- files of applications that ended without an award, or of drafts neither edited nor given a file since: deleted;
- applicant accounts without a log-in whose institutions have no live award, open recovery or open application:
  name and e-mail replaced, password unusable, account inactive, API tokens and stored API responses deleted;
- expired sessions: deleted.

Nothing that anything refers to is deleted: awards, tranches, ledger entries and audit events keep pointing at the
same application and user rows, which now name nobody. Staff accounts and anyone who moved money are kept as they
are: who approved and paid public money is part of the financial record, which the accounting archive rules keep
for 30 years. Milestone reports and the free text of awarded applications are that record too. Audit events are
append-only and untouched (docs/operations.md says how their snapshots are handled).

Each row is done in its own transaction, under its lock, after checking again that it is still due, with an audit
event; the run ends with one `retention.run` event carrying the counts and ids. A second run finds nothing due and
changes nothing but for its own audit event; an interrupted run loses nothing, the next one carries on.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from cities.models import StaffScope
from grants import audit
from grants.models import (
    ApiToken,
    Application,
    Attachment,
    AuditEvent,
    Award,
    IdempotencyRecord,
    InstitutionMember,
    LedgerEntry,
    MilestoneReport,
    Recovery,
    Review,
    Tranche,
)
from grants.portal.selectors import TIMELINE_LABELS
from grants.services import notifications

S = Application.Status
UNSUCCESSFUL = (S.REJECTED, S.WITHDRAWN)
LIVE_AWARD = (Award.Status.ACTIVE, Award.Status.SUSPENDED)

# Usernames are letters, digits and @ . + - _ (the signup form and the admin validate them), so nobody can sign up
# as "Anonymised person #12": the name marks an anonymised account and never collides with a real one.
ANONYMOUS_PREFIX = "Anonymised person #"
# .invalid never resolves (RFC 6761): nothing can be sent there, and the id keeps each address unique.
ANONYMOUS_EMAIL = "anonymised-{pk}@anonymised.invalid"
ANONYMOUS_APPLICATION = "Anonymised application #{pk}"


@dataclass
class RetentionReport:
    """What a run anonymised (or, dry, would): ids per kind, and the count of expired sessions."""

    as_of: datetime
    dry_run: bool
    cutoffs: dict[str, datetime]
    applications: list[int] = field(default_factory=list)
    attachments: list[int] = field(default_factory=list)
    accounts: list[int] = field(default_factory=list)
    sessions: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "applications": len(self.applications),
            "attachments": len(self.attachments),
            "accounts": len(self.accounts),
            "sessions": self.sessions,
        }


def retention_days() -> dict[str, int]:
    return {
        "applications": settings.RETENTION_CLOSED_APPLICATION_DAYS,
        "attachments": settings.RETENTION_UNSUCCESSFUL_ATTACHMENT_DAYS,
        "accounts": settings.RETENTION_INACTIVE_ACCOUNT_DAYS,
    }


def cutoffs(now: datetime) -> dict[str, datetime]:
    """Per kind, the moment before which its data is past retention."""
    return {kind: now - timedelta(days=days) for kind, days in retention_days().items()}


def _with_end() -> QuerySet[Application]:
    # A rejection sets decided_at, a withdrawal only updated_at; neither state is edited afterwards.
    return Application.objects.annotate(ended_at=Coalesce("decided_at", "updated_at"))


def closed_applications_due(cutoff: datetime) -> QuerySet[Application]:
    """Rejected or withdrawn before the cutoff, not yet anonymised."""
    return _with_end().filter(Q(ended_at__lt=cutoff), status__in=UNSUCCESSFUL, anonymised_at__isnull=True)


def applications_with_files_due(cutoff: datetime) -> QuerySet[Application]:
    """Applications holding files that are past retention: ended without an award before the cutoff, or drafts
    neither edited nor given a file since (adding a file does not touch the application's updated_at)."""
    latest = (
        Attachment.objects.filter(application=OuterRef("pk")).order_by("-uploaded_at").values("uploaded_at")
    )
    return (
        _with_end()
        .annotate(last_upload=Subquery(latest[:1]))
        .filter(
            Q(last_upload__isnull=False),
            Q(status__in=UNSUCCESSFUL, ended_at__lt=cutoff)
            | Q(status=S.DRAFT, updated_at__lt=cutoff, last_upload__lt=cutoff),
        )
    )


def inactive_accounts_due(cutoff: datetime) -> QuerySet[User]:
    """Applicant accounts not logged in since the cutoff (or never, and created before it) with nothing still
    owed: no live award, open recovery or open application in any of their institutions. Staff, and anyone who
    ever moved money, are never due."""
    member = {"institution__memberships__user_id": OuterRef("pk")}
    return (
        User.objects.exclude(username__startswith=ANONYMOUS_PREFIX)
        .filter(Q(last_login__lt=cutoff) | Q(last_login__isnull=True, date_joined__lt=cutoff))
        .filter(is_staff=False, is_superuser=False)
        .exclude(Exists(User.groups.through.objects.filter(user_id=OuterRef("pk"))))
        .exclude(Exists(StaffScope.objects.filter(user_id=OuterRef("pk"))))
        .exclude(Exists(LedgerEntry.objects.filter(actor_id=OuterRef("pk"))))
        .exclude(Exists(Award.objects.filter(status__in=LIVE_AWARD, **member)))
        .exclude(Exists(Application.objects.filter(status__in=Application.OPEN_STATUSES, **member)))
        .exclude(
            Exists(
                Recovery.objects.filter(
                    status=Recovery.Status.OPEN, award__institution__memberships__user_id=OuterRef("pk")
                )
            )
        )
    )


def apply_retention(*, now: datetime | None = None, dry_run: bool = False) -> RetentionReport:
    """Anonymise every kind of personal data past its retention as of `now`; with dry_run, only say what.

    Locks one application or user row at a time (the application row is what adding a file locks, so no file
    arrives while the application's files are deleted) and checks under the lock that it is still due."""
    now = now or timezone.now()
    cut = cutoffs(now)
    report = RetentionReport(as_of=now, dry_run=dry_run, cutoffs=cut)
    closed = list(closed_applications_due(cut["applications"]).order_by("pk").values_list("pk", flat=True))
    with_files = list(
        applications_with_files_due(cut["attachments"]).order_by("pk").values_list("pk", flat=True)
    )
    accounts = list(inactive_accounts_due(cut["accounts"]).order_by("pk").values_list("pk", flat=True))
    expired_sessions = Session.objects.filter(expire_date__lt=now)
    if dry_run:
        report.applications = closed
        holding = Attachment.objects.filter(application_id__in={*closed, *with_files})
        report.attachments = list(holding.order_by("pk").values_list("pk", flat=True))
        report.accounts = accounts
        report.sessions = expired_sessions.count()
        return report
    for pk in closed:
        _anonymise_application(pk, cutoff=cut["applications"], now=now, report=report)
    for pk in with_files:
        _remove_files(pk, cutoff=cut["attachments"], report=report)
    for pk in accounts:
        _anonymise_account(pk, cutoff=cut["accounts"], report=report)
    # Sessions live in the database (Django's default engine); a logged-out or expired one is nobody's business.
    report.sessions, _by_model = expired_sessions.delete()
    AuditEvent.objects.create(
        actor=None,
        action="retention.run",
        object_type="retention",
        object_id=now.isoformat()[:40],
        object_repr="Personal data retention run",
        city=None,
        after={
            "as_of": now.isoformat(),
            "retention_days": retention_days(),
            "counts": report.counts(),
            "ids": {
                "applications": report.applications,
                "attachments": report.attachments,
                "accounts": report.accounts,
            },
        },
        remote_addr=audit.remote_addr.get(),
    )
    return report


def _delete_files(application: Application) -> list[int]:
    """Delete the application's attachments, files first. Called inside the row's transaction: if it then rolls
    back, the row stays and the next run deletes it again (a missing file is no error), whereas a file left behind
    after its row were gone would be personal data that nothing leads to any more."""
    attachments = list(Attachment.objects.select_for_update().filter(application=application).order_by("pk"))
    for attachment in attachments:
        attachment.file.delete(save=False)
    ids = [a.pk for a in attachments]
    Attachment.objects.filter(pk__in=ids).delete()
    return ids


def _locked_application(pk: int) -> Application:
    return Application.objects.select_for_update(of=("self",)).select_related("pool__programme").get(pk=pk)


def _anonymise_application(pk: int, *, cutoff: datetime, now: datetime, report: RetentionReport) -> None:
    with transaction.atomic():
        application = _locked_application(pk)
        if not closed_applications_due(cutoff).filter(pk=pk).exists():
            return  # another run did it meanwhile
        files = _delete_files(application)
        comments = Review.objects.filter(application=application).exclude(comment="").update(comment="")
        application.title = ANONYMOUS_APPLICATION.format(pk=pk)
        application.summary = ""
        application.decision_note = ""
        application.anonymised_at = now
        # updated_at is left alone: it is when the application ended, which retention counts from.
        application.save(update_fields=["title", "summary", "decision_note", "anonymised_at"])
        notices = notifications.forget_application(application)
        audit.record(
            actor=None,
            action="application.anonymise",
            obj=application,
            city_id=application.pool.programme.city_id,
            after={
                "cleared": ["title", "summary", "decision_note"],
                "review_comments_cleared": comments,
                "attachments_deleted": files,
                "notices_cleared": notices,
            },
        )
    report.applications.append(pk)
    report.attachments.extend(files)


def _remove_files(pk: int, *, cutoff: datetime, report: RetentionReport) -> None:
    with transaction.atomic():
        application = _locked_application(pk)
        if not applications_with_files_due(cutoff).filter(pk=pk).exists():
            return
        files = _delete_files(application)
        audit.record(
            actor=None,
            action="application.remove_attachments",
            obj=application,
            city_id=application.pool.programme.city_id,
            after={"attachments_deleted": files},
        )
    report.attachments.extend(files)


def _anonymise_account(pk: int, *, cutoff: datetime, report: RetentionReport) -> None:
    with transaction.atomic():
        # A log-in meanwhile updates last_login on this row: it waits for the lock, or the check below sees it.
        user = User.objects.select_for_update().get(pk=pk)
        if not inactive_accounts_due(cutoff).filter(pk=pk).exists():
            return
        user.username = f"{ANONYMOUS_PREFIX}{pk}"
        user.first_name = ""
        user.last_name = ""
        user.email = ANONYMOUS_EMAIL.format(pk=pk)
        user.set_unusable_password()
        user.is_active = False
        user.save(update_fields=["username", "first_name", "last_name", "email", "password", "is_active"])
        tokens, _by_model = ApiToken.objects.filter(user=user).delete()
        responses, _by_model = IdempotencyRecord.objects.filter(user=user).delete()
        notices = notifications.forget_user(user)
        audit.record(
            actor=None,
            action="user.anonymise",
            obj=user,
            city_id=None,
            after={
                "cleared": ["username", "first_name", "last_name", "email", "password"],
                "api_tokens_deleted": tokens,
                "stored_api_responses_deleted": responses,
                "notices_deleted": notices,
            },
        )
    report.accounts.append(pk)


# --- The person's own data ----------------------------------------------------------------------------------


def export_personal_data(*, actor: User) -> dict[str, Any]:
    """Everything the service holds about the person, for them alone (PIPL art. 45): their account, institutions,
    their institutions' applications with the files' details, the notices the portal showed them, the reviews and
    milestone reports they wrote, their API tokens' names (never the secrets) and the actions recorded as theirs.
    The download itself is audited. A fixed number of queries, however much there is."""
    memberships = list(
        InstitutionMember.objects.filter(user=actor).select_related("institution__city").order_by("pk")
    )
    applications = list(
        Application.objects.filter(institution__memberships__user=actor)
        .select_related("pool__programme__city", "institution")
        .prefetch_related("attachments")
        .order_by("pk")
    )
    reviews = Review.objects.filter(reviewer=actor).select_related("application").order_by("pk")
    reports = (
        MilestoneReport.objects.filter(submitted_by=actor).select_related("tranche__award").order_by("pk")
    )
    data: dict[str, Any] = {
        "generated_at": timezone.now(),
        "account": {
            "id": actor.pk,
            "username": actor.get_username(),
            "first_name": actor.first_name,
            "last_name": actor.last_name,
            "email": actor.email,
            "date_joined": actor.date_joined,
            "last_login": actor.last_login,
            "is_active": actor.is_active,
        },
        "institutions": [
            {
                "id": m.institution.pk,
                "name_en": m.institution.name_en,
                "name_zh": m.institution.name_zh,
                "credit_code": m.institution.credit_code,
                "city": m.institution.city.code,
                "manages": m.is_admin,
                "joined_at": m.joined_at,
            }
            for m in memberships
        ],
        "applications": [_application(a, actor) for a in applications],
        "notices": _notices(applications),
        # What the notices page and the e-mails told the person, and their choices of e-mail and language.
        "notifications": notifications.personal_data(actor),
        "reviews_written": [
            {
                "application": r.application.reference or r.application.pk,
                "assigned_at": r.assigned_at,
                "submitted_at": r.submitted_at,
                "technical_merit": r.technical_merit,
                "feasibility": r.feasibility,
                "impact": r.impact,
                "recommendation": r.recommendation,
                "recommended_amount": r.recommended_amount,
                "comment": r.comment,
            }
            for r in reviews
        ],
        "milestone_reports_submitted": [
            {
                "award": r.tranche.award.reference,
                "tranche": r.tranche.sequence,
                "submitted_at": r.submitted_at,
                "summary": r.summary,
                "file": r.attachment.name.rsplit("/", 1)[-1] if r.attachment else "",
                "status": r.status,
            }
            for r in reports
        ],
        "api_tokens": list(
            ApiToken.objects.filter(user=actor)
            .order_by("pk")
            .values("name", "prefix", "created_at", "last_used_at", "revoked_at")
        ),
        "recorded_actions": list(
            AuditEvent.objects.filter(actor=actor)
            .order_by("pk")
            .values("created_at", "action", "object_type", "object_id", "object_repr", "remote_addr")
        ),
    }
    audit.record(
        actor=actor,
        action="user.download_data",
        obj=actor,
        city_id=None,
        after={
            section: len(value)
            for section, value in data.items()
            if isinstance(value, list)  # the counts, not the data itself
        },
    )
    return data


def _application(application: Application, actor: User) -> dict[str, Any]:
    return {
        "id": application.pk,
        "reference": application.reference,
        "institution": application.institution.name_en,
        "call": f"{application.pool.programme.city.code}-{application.pool.programme.code}-"
        f"{application.pool.code}",
        "title": application.title,
        "summary": application.summary,
        "status": application.status,
        "eligible_cost": application.eligible_cost,
        "requested_amount": application.requested_amount,
        "duration_years": application.duration_years,
        "proposed_start": application.proposed_start,
        "created_by_you": application.created_by_id == actor.pk,
        "created_at": application.created_at,
        "submitted_at": application.submitted_at,
        "decided_at": application.decided_at,
        "decision_note": application.decision_note,
        "anonymised_at": application.anonymised_at,
        "attachments": [
            {
                "name": a.original_name,
                "content_type": a.content_type,
                "size": a.size,
                "uploaded_at": a.uploaded_at,
                "uploaded_by_you": a.uploaded_by_id == actor.pk,
            }
            for a in application.attachments.all()
        ],
    }


def _notices(applications: list[Application]) -> list[dict[str, Any]]:
    """What the portal's timelines told the person about these applications, their awards, tranches and milestone
    reports: the same events and labels as grants.portal.selectors.timeline, in five queries for all of them."""
    if not applications:
        return []
    owner: dict[tuple[str, str], Application] = {("application", str(a.pk)): a for a in applications}
    by_pk = {a.pk: a for a in applications}
    awards = dict(
        Award.objects.filter(application__in=[a for a in applications if a.status == S.APPROVED]).values_list(
            "pk", "application_id"
        )
    )
    for award_id, application_id in awards.items():
        owner[("award", str(award_id))] = by_pk[application_id]
    for tranche_id, award_id in Tranche.objects.filter(award_id__in=awards).values_list("pk", "award_id"):
        owner[("tranche", str(tranche_id))] = by_pk[awards[award_id]]
    for report_id, award_id in MilestoneReport.objects.filter(tranche__award_id__in=awards).values_list(
        "pk", "tranche__award_id"
    ):
        owner[("milestonereport", str(report_id))] = by_pk[awards[award_id]]
    members: dict[int, set[int]] = {}
    for institution_id, user_id in InstitutionMember.objects.filter(
        institution_id__in={a.institution_id for a in applications}
    ).values_list("institution_id", "user_id"):
        members.setdefault(institution_id, set()).add(user_id)
    kinds: dict[str, list[str]] = {}
    for kind, object_id in owner:
        kinds.setdefault(kind, []).append(object_id)
    where = reduce(or_, (Q(object_type=kind, object_id__in=ids) for kind, ids in kinds.items()))
    events = (
        AuditEvent.objects.filter(where, action__in=TIMELINE_LABELS).select_related("actor").order_by("pk")
    )
    notices = []
    for event in events:
        application = owner[(event.object_type, event.object_id)]
        if event.actor is not None and event.actor_id in members.get(application.institution_id, set()):
            by = event.actor.get_username()
        else:
            by = _("the city's grant office")
        note = ""
        if isinstance(event.after, dict):
            note = str(event.after.get("note") or event.after.get("name") or "")
        notices.append(
            {
                "at": event.created_at,
                "application": application.reference or application.pk,
                "what": str(TIMELINE_LABELS[event.action]),
                "by": by,
                "note": note,
            }
        )
    return notices
