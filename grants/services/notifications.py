"""Notices to people (issue #16): a row in the portal's list for each recipient and, if they want it, an e-mail.

`notify()` is called INSIDE the transaction of the service whose change it announces: the notices and their e-mail
outbox rows (grants.services.outbox.record_email) commit or roll back with that change. Nothing is sent inside the
transaction: after COMMIT the e-mails are queued (grants.services.after_commit.notice_emails) and a Celery task sends
each through Django's mail framework, retried with back-off; beat's sweep sends any whose message was lost.

Each notice is rendered when it is read or sent, in the reader's language (the portal's) or the recipient's
(`language_of`, stored on the user's profile), from templates/notifications/<language>/<event>/: subject.txt,
body.txt (the text part, also the portal's summary) and body.html. The context a notice keeps is plain JSON; money,
dates and bilingual names are stored tagged and shown in the language of whoever reads them (`display_context`).
"""

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import EmailMultiAlternatives
from django.db import models, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from cities.models import StaffScope
from grants.models import (
    Application,
    Award,
    InstitutionMember,
    Notification,
    NotificationEmail,
    Review,
    Tranche,
    UserProfile,
    Voucher,
    VoucherClaim,
)
from grants.money import format_money
from grants.roles import APPLICANT, Role
from grants.services import after_commit, outbox

logger = logging.getLogger(__name__)


class Event(models.TextChoices):
    """Every notice there is. The value names its templates (templates/notifications/<lang>/<value>/)."""

    # To the applicant institution's members.
    APPLICATION_SUBMITTED = "application_submitted", _("Your application was received")
    APPLICATION_RETURNED = "application_returned", _("Your application was returned for changes")
    APPLICATION_APPROVED = "application_approved", _("Your application was approved")
    APPLICATION_REJECTED = "application_rejected", _("Your application was rejected")
    AGREEMENT_READY = "agreement_ready", _("Your award agreement is ready to accept")
    TRANCHE_RELEASED = "tranche_released", _("A tranche of your award was released for payment")
    TRANCHE_PAID = "tranche_paid", _("A tranche of your award was paid")
    TRANCHE_RESCHEDULED = "tranche_rescheduled", _("A tranche of your award was rescheduled")
    REPORT_DUE = "report_due", _("A report is due soon")
    REPORT_OVERDUE = "report_overdue", _("A report is overdue")
    # To staff.
    REVIEWER_ASSIGNED = "reviewer_assigned", _("You were assigned an application to review")
    TRANCHE_PAYABLE = "tranche_payable", _("A tranche is ready to pay (finance)")
    APPROVAL_AWAITING_SECOND = "approval_awaiting_second", _("A proposed approval awaits a second officer")
    # Vouchers (grants.services.vouchers): to the holder's members (and a provider who claimed).
    VOUCHER_ISSUED = "voucher_issued", _("A voucher was issued to your institution")
    VOUCHER_EXPIRING = "voucher_expiring", _("A voucher of your institution expires soon")
    CLAIM_PAID = "claim_paid", _("A voucher claim was approved and paid")
    CLAIM_REJECTED = "claim_rejected", _("A voucher claim was rejected")
    # To finance.
    CLAIM_SUBMITTED = "claim_submitted", _("A voucher claim awaits verification (finance)")


# Who receives each event: the preferences form offers a user only the events of the roles they hold.
AUDIENCE: dict[str, str] = {
    Event.APPLICATION_SUBMITTED: APPLICANT,
    Event.APPLICATION_RETURNED: APPLICANT,
    Event.APPLICATION_APPROVED: APPLICANT,
    Event.APPLICATION_REJECTED: APPLICANT,
    Event.AGREEMENT_READY: APPLICANT,
    Event.TRANCHE_RELEASED: APPLICANT,
    Event.TRANCHE_PAID: APPLICANT,
    Event.TRANCHE_RESCHEDULED: APPLICANT,
    Event.REPORT_DUE: APPLICANT,
    Event.REPORT_OVERDUE: APPLICANT,
    Event.REVIEWER_ASSIGNED: Role.REVIEWER,
    Event.TRANCHE_PAYABLE: Role.FINANCE_OFFICER,
    Event.APPROVAL_AWAITING_SECOND: Role.PROGRAMME_OFFICER,
    Event.VOUCHER_ISSUED: APPLICANT,
    Event.VOUCHER_EXPIRING: APPLICANT,
    Event.CLAIM_PAID: APPLICANT,
    Event.CLAIM_REJECTED: APPLICANT,
    Event.CLAIM_SUBMITTED: Role.FINANCE_OFFICER,
}

# Template directories per language code (a directory name cannot hold every code's characters usefully).
TEMPLATE_LANGUAGE = {"en": "en", "zh-hans": "zh_hans"}


# --- Recipients ---------------------------------------------------------------------------------------------


def applicants(institution_id: int) -> list[User]:
    """The active members of an institution: who hears about its applications and awards."""
    return list(
        User.objects.filter(
            is_active=True,
            pk__in=InstitutionMember.objects.filter(institution_id=institution_id).values("user_id"),
        ).order_by("pk")
    )


def applicants_of(institution_ids: Iterable[int]) -> dict[int, list[User]]:
    """`applicants` of many institutions in one read (a bulk issue of vouchers tells each holder)."""
    found: dict[int, list[User]] = {}
    members = (
        InstitutionMember.objects.filter(institution_id__in=set(institution_ids), user__is_active=True)
        .select_related("user")
        .order_by("user_id")
    )
    for member in members:
        found.setdefault(member.institution_id, []).append(member.user)
    return found


def staff(role: str, city_id: int) -> list[User]:
    """The active members of a staff role whose scope covers the city (superusers are not notified: they hold
    every role everywhere and would hear about everything)."""
    in_scope = StaffScope.objects.filter(Q(all_cities=True) | Q(cities=city_id)).values("user_id")
    return list(
        User.objects.filter(is_active=True, groups__name=role, pk__in=in_scope).distinct().order_by("pk")
    )


# --- Language and preferences -------------------------------------------------------------------------------


def _language_code(language: str | None) -> str:
    code = (language or "").lower()
    if code.startswith("zh"):
        return "zh-hans"
    return "en" if code.startswith("en") or not code else settings.LANGUAGE_CODE


def profile_of(user: User) -> UserProfile:
    profile, _created = UserProfile.objects.get_or_create(
        user=user, defaults={"language": settings.LANGUAGE_CODE}
    )
    return profile


def language_of(user: User) -> str:
    """The language the user reads the site in, for e-mails sent when they are not there."""
    language = UserProfile.objects.filter(user=user).values_list("language", flat=True).first()
    return _language_code(language or settings.LANGUAGE_CODE)


def set_language(*, user: User, language: str) -> None:
    """Remember the language the user signed up in or switched to (the portal calls this)."""
    code = _language_code(language)
    updated = UserProfile.objects.filter(user=user).exclude(language=code).update(language=code)
    if not updated:
        UserProfile.objects.get_or_create(user=user, defaults={"language": code})


def events_for(user: User) -> list[str]:
    """The events the user can receive, by the roles they hold: the choices of the preferences form."""
    groups = set(user.groups.values_list("name", flat=True))
    is_applicant = InstitutionMember.objects.filter(user=user).exists()
    return [
        event
        for event in Event.values
        if user.is_superuser or AUDIENCE[event] in groups or (AUDIENCE[event] == APPLICANT and is_applicant)
    ]


def email_muted(user: User) -> set[str]:
    muted = UserProfile.objects.filter(user=user).values_list("email_muted", flat=True).first()
    return set(muted or [])


def set_email_choices(*, user: User, wanted: Iterable[str]) -> None:
    """Record which notices the user wants by e-mail. Stored as the ones they turned off, so an event added
    later reaches everyone by default. The portal list shows every notice whatever the choice."""
    wanted_set = set(wanted)
    unknown = wanted_set - set(Event.values)
    if unknown:
        raise ValueError(f"unknown events: {sorted(unknown)}")
    muted = sorted(set(events_for(user)) - wanted_set)
    profile = profile_of(user)
    profile.email_muted = muted
    profile.save(update_fields=["email_muted"])


# --- Writing notices ----------------------------------------------------------------------------------------


def _tag(value: Any) -> Any:
    """A value as JSON, tagged so it can be shown in the reader's language."""
    if isinstance(value, Decimal):
        return {"money": str(value)}
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if hasattr(value, "name_en") and hasattr(value, "name_zh"):
        return {"en": value.name_en, "zh-hans": value.name_zh or value.name_en}
    if isinstance(value, Mapping):
        return {str(k): _tag(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_tag(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


@dataclass(frozen=True)
class Subject:
    """What a notice is about: its kind and id (for the link) and the context every notice of it carries."""

    object_type: str
    object_id: int
    context: dict[str, Any]


def subject_of(obj: Any) -> Subject:
    """The application, award, tranche or review a notice is about, with what its templates may show."""
    if isinstance(obj, Tranche):
        award = obj.award
        application = award.application
        return Subject(
            "tranche",
            obj.pk,
            {
                "reference": award.reference,
                "title": application.title,
                "pool": award.pool,
                "sequence": obj.sequence,
                "amount": obj.amount,
                "scheduled_date": obj.scheduled_date,
                "fiscal_year": str(obj.fiscal_year),
                "application_id": application.pk,
            },
        )
    if isinstance(obj, Award):
        application = obj.application
        return Subject(
            "award",
            obj.pk,
            {
                "reference": obj.reference,
                "title": application.title,
                "pool": obj.pool,
                "amount": obj.amount,
                "application_id": application.pk,
            },
        )
    if isinstance(obj, Review):
        application = obj.application
        return Subject(
            "review",
            obj.pk,
            {
                "reference": application.reference or "",
                "title": application.title,
                "pool": application.pool,
                "application_id": application.pk,
            },
        )
    if isinstance(obj, Application):
        return Subject(
            "application",
            obj.pk,
            {
                "reference": obj.reference or "",
                "title": obj.title,
                "pool": obj.pool,
                "amount": obj.requested_amount,
                "application_id": obj.pk,
            },
        )
    if isinstance(obj, Voucher):
        return Subject(
            "voucher",
            obj.pk,
            {
                "reference": obj.code,
                "pool": obj.pool,
                "amount": obj.face_value,
                "valid_until": obj.valid_until,
                "voucher_id": obj.pk,
            },
        )
    if isinstance(obj, VoucherClaim):
        return Subject(
            "voucherclaim",
            obj.pk,
            {
                "reference": obj.reference,
                "voucher": obj.voucher.code,
                "pool": obj.voucher.pool,
                "amount": obj.approved_amount if obj.approved_amount is not None else obj.amount,
                "claimed": obj.amount,
                "reason": obj.decision_reason,
                "voucher_id": obj.voucher_id,
                "claim_id": obj.pk,
            },
        )
    # Another helper's object (an agreement, a reporting duty): it names its application in the context.
    return Subject(obj._meta.model_name, obj.pk, {"reference": str(obj)})


def notify(
    event: str,
    *,
    obj: Any,
    users: Iterable[User],
    context: Mapping[str, Any] | None = None,
) -> list[Notification]:
    """Tell `users` about `event` concerning `obj`. Call it inside the transaction of the change it announces.

    One notice per distinct active user (in the portal's list whatever their choices); an e-mail outbox row for
    each who has an address and has not turned this event off. After COMMIT the e-mails are queued; on rollback
    nothing is left and nothing is sent. `context` adds to (or overrides) what `subject_of(obj)` provides:
    Decimal amounts, dates and objects with name_en/name_zh are shown in the reader's language.
    """
    if event not in Event.values:
        raise ValueError(f"unknown notice event {event!r}")
    subject = subject_of(obj)
    data = _tag({**subject.context, **(context or {})})
    recipients = {u.pk: u for u in users if u is not None and u.is_active}
    if not recipients:
        return []
    muted = dict(
        UserProfile.objects.filter(user_id__in=list(recipients)).values_list("user_id", "email_muted")
    )
    now = timezone.now()
    notices = Notification.objects.bulk_create(
        [
            Notification(
                user_id=pk,
                event=event,
                object_type=subject.object_type,
                object_id=subject.object_id,
                context=data,
                created_at=now,
            )
            for pk in sorted(recipients)
        ]
    )
    emails = [
        outbox.record_email(notice)
        for notice in notices
        if recipients[notice.user_id].email and event not in (muted.get(notice.user_id) or [])
    ]
    if emails:
        email_ids = [e.pk for e in emails]
        transaction.on_commit(lambda: after_commit.notice_emails(email_ids))
    return notices


# --- What the services announce (one call each, inside their transactions) --------------------------------

# The notice an application's new status gives its institution (approval is announced with its award).
APPLICATION_EVENTS = {
    Application.Status.SUBMITTED: Event.APPLICATION_SUBMITTED,
    Application.Status.RETURNED: Event.APPLICATION_RETURNED,
    Application.Status.REJECTED: Event.APPLICATION_REJECTED,
}


def application_changed(application: Application, *, note: str = "") -> list[Notification]:
    """The application's status just changed (submitted, returned, rejected): tell its institution."""
    event = APPLICATION_EVENTS.get(application.status)  # type: ignore[call-overload]
    if event is None:
        return []
    return notify(
        event, obj=application, users=applicants(application.institution_id), context={"note": note}
    )


def application_approved(award: Award, *, note: str = "") -> list[Notification]:
    return notify(
        Event.APPLICATION_APPROVED,
        obj=award,
        users=applicants(award.institution_id),
        context={"note": note, "tranches": award.tranches.count()},
    )


def reviewers_assigned(reviews: Iterable[Review]) -> list[Notification]:
    """Each newly assigned reviewer hears of their review."""
    notices: list[Notification] = []
    for review in reviews:
        notices += notify(Event.REVIEWER_ASSIGNED, obj=review, users=[review.reviewer])
    return notices


def tranche_changed(tranche: Tranche, *, action: str, city_id: int) -> list[Notification]:
    """A tranche was released (to the institution, and to the city's finance officers, §5.2) or paid."""
    award = tranche.award
    if action == "tranche.release":
        return notify(Event.TRANCHE_RELEASED, obj=tranche, users=applicants(award.institution_id)) + notify(
            Event.TRANCHE_PAYABLE,
            obj=tranche,
            users=staff(Role.FINANCE_OFFICER, city_id),
            context={"institution": award.institution},
        )
    if action == "tranche.pay":
        return notify(
            Event.TRANCHE_PAID,
            obj=tranche,
            users=applicants(award.institution_id),
            context={"paid_on": tranche.paid_on, "payment_reference": tranche.payment_reference or ""},
        )
    return []


# --- Reading notices ----------------------------------------------------------------------------------------


def display_context(context: Mapping[str, Any], language: str) -> dict[str, Any]:
    """The stored context with money, dates and bilingual names shown in `language`."""

    def show(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"money"}:
                return format_money(Decimal(value["money"]), language)
            if set(value) == {"date"}:
                return value["date"]
            if set(value) == {"datetime"}:
                moment = timezone.localtime(datetime.fromisoformat(value["datetime"]))
                return moment.strftime("%Y-%m-%d %H:%M")
            if set(value) == {"en", "zh-hans"}:
                return value["zh-hans"] if language == "zh-hans" else value["en"]
            return {k: show(v) for k, v in value.items()}
        if isinstance(value, list):
            return [show(v) for v in value]
        return value

    return {k: show(v) for k, v in context.items()}


def link_of(notice: Notification, language: str) -> str:
    """Where the notice leads, as a path in `language`: the portal's application page for applicants, the
    object's admin page for staff."""
    application_id = notice.context.get("application_id")
    voucher_id = notice.context.get("voucher_id")
    with translation.override(language):
        if AUDIENCE.get(notice.event) == APPLICANT and isinstance(application_id, int):
            return reverse("portal:application", args=[application_id])
        if AUDIENCE.get(notice.event) == APPLICANT and isinstance(voucher_id, int):
            try:
                return reverse("portal:voucher", args=[voucher_id])
            except NoReverseMatch:
                return reverse("portal:notifications")
        try:
            return reverse(f"admin:grants_{notice.object_type}_change", args=[notice.object_id])
        except NoReverseMatch:
            return reverse("portal:notifications")


def absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    link: str


def render(
    notice: Notification, language: str | None = None, *, parts: tuple[str, ...] = ("subject", "text", "html")
) -> Rendered:
    """The notice in `language` (the active one if not given), and its link: of subject, text and HTML the `parts`
    asked (the others empty; a list needs only subjects)."""
    code = _language_code(language or translation.get_language())
    folder = f"notifications/{TEMPLATE_LANGUAGE[code]}/{notice.event}"
    link = link_of(notice, code)
    shown = dict.fromkeys(("subject", "text", "html"), "")
    with translation.override(code):
        context = {
            **display_context(notice.context, code),
            "event": notice.event,
            "link": absolute(link),
            "preferences": absolute(reverse("portal:notification_preferences")),
            "site": settings.SITE_URL,
        }
        shown["subject"] = " ".join(render_to_string(f"{folder}/subject.txt", context).split())
        if "text" in parts:
            # A conditional paragraph left out (no note) leaves its blank lines behind.
            text = render_to_string(f"{folder}/body.txt", context).strip()
            shown["text"] = re.sub(r"\n{3,}", "\n\n", text)
        if "html" in parts:
            shown["html"] = render_to_string(f"{folder}/body.html", {**context, "subject": shown["subject"]})
    return Rendered(link=link, **shown)


def for_user(user: User) -> "models.QuerySet[Notification]":
    """The user's notices, newest first: the one scope of the portal list and the API."""
    return Notification.objects.filter(user=user).order_by("-pk")


def unread_count(user: User) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def mark_read(*, user: User, ids: Iterable[int] | None = None) -> int:
    """Mark the user's notices read (all of them when `ids` is None); other users' ids are ignored."""
    notices = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        notices = notices.filter(pk__in=list(ids))
    return notices.update(read_at=timezone.now())


# --- Personal data (grants.services.retention) --------------------------------------------------------------


def forget_application(application: Application) -> int:
    """The retention run anonymised the application: its notices lose the copies of its free text they keep
    (title, the officer's note), taking the anonymised title instead. Returns how many notices changed."""
    notices = list(Notification.objects.filter(context__application_id=application.pk).only("pk", "context"))
    for notice in notices:
        notice.context = {**notice.context, "title": application.title, "note": ""}
    Notification.objects.bulk_update(notices, ["context"])
    return len(notices)


def forget_user(user: User) -> int:
    """The retention run anonymised the account: its notices (and their e-mails) go. Returns how many."""
    deleted, _by_model = Notification.objects.filter(user=user).delete()
    return deleted


def personal_data(user: User) -> dict[str, Any]:
    """The person's notices and choices, for the download of their own data (PIPL art. 45). Two queries."""
    stored = UserProfile.objects.filter(user=user).values_list("language", "email_muted").first()
    language = _language_code(stored[0] if stored else settings.LANGUAGE_CODE)
    return {
        "language": language,
        "email_muted": sorted(stored[1] if stored else []),
        "notices": [
            {
                "created_at": notice.created_at,
                "event": notice.event,
                "subject": render(notice, language, parts=("subject",)).subject,
                "read_at": notice.read_at,
            }
            for notice in for_user(user)
        ],
    }


# --- Sending e-mails (the task in grants.tasks calls this) -------------------------------------------------


def send_email(email_id: int, *, now: datetime | None = None) -> str:
    """Send one outbox e-mail. Returns what happened ("sent", "busy", "done", "gone", "no address"); raises the
    mail backend's error after recording the attempt, so the task retries with back-off.

    The row is claimed first with a conditional UPDATE (a lease), outside any transaction of the send: two runs
    of the task (a retry beside the sweep's) never send at once, and a run that died mid-send leaves the lease to
    expire. Delivery is at least once: a worker killed between the SMTP answer and marking the row sent sends
    that e-mail again.
    """
    now = now or timezone.now()
    lease = now + timedelta(seconds=settings.NOTIFY_EMAIL_LEASE_SECONDS)
    claimed = (
        NotificationEmail.objects.filter(pk=email_id, sent_at__isnull=True, failed_at__isnull=True)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=lease, attempts=models.F("attempts") + 1)
    )
    if not claimed:
        exists = NotificationEmail.objects.filter(pk=email_id).values_list("sent_at", "failed_at").first()
        if exists is None:
            return "gone"
        return "done" if exists[0] or exists[1] else "busy"
    email = NotificationEmail.objects.select_related("notification__user").get(pk=email_id)
    user = email.notification.user
    if not user.email or not user.is_active:
        NotificationEmail.objects.filter(pk=email_id).update(
            failed_at=now, claimed_until=None, last_error="no address"
        )
        return "no address"
    rendered = render(email.notification, language_of(user))
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
        headers={"X-Grants-Notice": f"{email.notification.event}:{email.notification_id}"},
    )
    message.attach_alternative(rendered.html, "text/html")
    try:
        message.send()
    except Exception as exc:
        failed = email.attempts >= settings.NOTIFY_EMAIL_MAX_ATTEMPTS
        NotificationEmail.objects.filter(pk=email_id).update(
            claimed_until=None,
            last_error=f"{type(exc).__name__}: {exc}"[:500],
            next_attempt_at=now + retry_delay(email.attempts),
            failed_at=now if failed else None,
        )
        if failed:
            logger.error("notice e-mail %s failed %s times; giving up: %s", email_id, email.attempts, exc)
        raise
    NotificationEmail.objects.filter(pk=email_id).update(
        sent_at=timezone.now(), claimed_until=None, last_error=""
    )
    return "sent"


def retry_delay(attempts: int) -> timedelta:
    """How long the sweep waits after the `attempts`-th failed send: doubling from NOTIFY_EMAIL_RETRY_SECONDS, at
    most an hour. Always longer than the task's own short retries (grants.tasks.MAIL_RETRY), so the sweep takes
    over only when those ran out or their message was lost."""
    return timedelta(seconds=min(settings.NOTIFY_EMAIL_RETRY_SECONDS * 2 ** max(attempts - 1, 0), 3600))


def emails_due(*, now: datetime | None = None, limit: int = 200) -> list[int]:
    """Unsent e-mails whose queued task was lost (broker down at the commit, worker gone): for beat's sweep."""
    return outbox.emails_due(now=now or timezone.now(), limit=limit)
