"""Reporting duties (§16.3): the progress and financial reports a pool asks of every award, scheduled at approval,
submitted by the institution on the pool's form, accepted or returned with comments by a programme officer.

The schedule: each of the pool's `ReportRequirement`s is due every `every_months` months after the award starts
(while before its end) and/or at its end (start + duration). A requirement that `gates_milestones` stands for the
milestone report of a tranche that needs one: each such tranche is linked to the latest of its duties due on or
before the tranche's date, and accepting that duty releases the tranche when it is otherwise due (the same rule,
`payments.is_due`, as an accepted MilestoneReport: duties extend milestone reports, they do not replace them).

Locks: the award, then its tranche (the order of budget.py), then the duty.
"""

import calendar
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from grants import audit, workflow
from grants.errors import InvalidInput
from grants.models import (
    Award,
    ReportAttachment,
    ReportField,
    ReportingDuty,
    ReportRequirement,
    Tranche,
)
from grants.money import to_money
from grants.services.attachments import Kind, check_upload, safe_name
from grants.services.payments import release_if_due

D = ReportingDuty.Status
DUTY_FIELDS = ("status", "answers", "submitted_at", "decided_at", "comment")


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the month's last day where it has none (31 August + 6 = 28/29 February)."""
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    month += 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def end_of(award: Award) -> date:
    return add_months(award.start_date, 12 * award.duration_years)


def due_dates(requirement: ReportRequirement, *, start: date, end: date) -> list[date]:
    """When a requirement is due for an award running from `start` to `end`."""
    dates: list[date] = []
    if requirement.every_months:
        n = 1
        while (due := add_months(start, n * requirement.every_months)) < end:
            dates.append(due)
            n += 1
    if requirement.at_end:
        dates.append(end)
    return sorted(set(dates))


def schedule_duties(*, award: Award) -> list[ReportingDuty]:
    """Create the award's duties from its pool's requirements and link the milestone tranches to the gating ones.
    Called by approval in its transaction, after the tranches exist; the award is new, so nothing else holds it."""
    requirements = list(ReportRequirement.objects.filter(pool_id=award.pool_id).order_by("id"))
    end = end_of(award)
    duties = [
        ReportingDuty(
            award=award,
            pool_id=award.pool_id,
            requirement=requirement,
            kind=requirement.kind,
            sequence=n,
            due_date=due,
        )
        for requirement in requirements
        for n, due in enumerate(due_dates(requirement, start=award.start_date, end=end), start=1)
    ]
    gating = sorted(
        (d for d in duties if d.requirement.gates_milestones), key=lambda d: (d.due_date, d.requirement.pk)
    )
    for tranche in Tranche.objects.filter(award=award, requires_milestone=True).order_by("sequence"):
        candidates = [d for d in gating if d.tranche is None and d.due_date <= tranche.scheduled_date]
        if candidates:
            candidates[-1].tranche = tranche
    ReportingDuty.objects.bulk_create(duties)
    return list(award.reporting_duties.select_related("requirement", "tranche").order_by("due_date", "id"))


# --- The form -----------------------------------------------------------------------------------------------


def _clean_value(field: ReportField, raw: Any) -> Any:
    """One answer in its stored form (text, a number or an amount as a string, an ISO date), or ValueError."""
    text = "" if raw is None else str(raw).strip()
    if field.type == ReportField.Type.TEXT:
        if len(text) > 10000:
            raise ValueError(_("At most 10,000 characters."))
        return text
    if field.type == ReportField.Type.DATE:
        return date.fromisoformat(text).isoformat()
    try:
        number = Decimal(text.replace(",", ""))
    except InvalidOperation:
        raise ValueError(_("Enter a number.")) from None
    if not number.is_finite():
        raise ValueError(_("Enter a number."))
    if field.type == ReportField.Type.MONEY:
        if number < 0:
            raise ValueError(_("Enter an amount of zero or more."))
        return str(to_money(number))
    return str(number)


def clean_answers(requirement: ReportRequirement, answers: Mapping[str, Any]) -> dict[str, Any]:
    """The answers the requirement's form asks for, checked and in stored form; every problem at once, by field.
    Answers to fields the form does not have are refused (a typo would otherwise be lost silently)."""
    fields = list(requirement.fields.all())
    known = {f.name for f in fields}
    problems: dict[str, list[str]] = {
        name: [_("This report has no such field.")] for name in answers if name not in known
    }
    cleaned: dict[str, Any] = {}
    for field in fields:
        raw = answers.get(field.name)
        if raw is None or str(raw).strip() == "":
            if field.required:
                problems[field.name] = [_("Required.")]
            continue
        try:
            cleaned[field.name] = _clean_value(field, raw)
        except ValueError as error:
            message = str(error) if field.type != ReportField.Type.DATE else _("Enter a date as 2025-05-31.")
            problems[field.name] = [message]
    if problems:
        raise InvalidInput(
            _("The report is incomplete: %(n)d field(s) need attention.") % {"n": len(problems)},
            fields=problems,
        )
    return cleaned


# --- Steps --------------------------------------------------------------------------------------------------


def _lock(duty_id: int) -> tuple[ReportingDuty, int]:
    """Lock the duty's award, its tranche (if it gates one) and the duty; return the duty, joined, and its city."""
    award_id, tranche_id = ReportingDuty.objects.values_list("award_id", "tranche_id").get(pk=duty_id)
    award = Award.objects.select_for_update(of=("self",)).select_related("pool__programme").get(pk=award_id)
    tranche = Tranche.objects.select_for_update().get(pk=tranche_id) if tranche_id else None
    duty = ReportingDuty.objects.select_for_update(of=("self",)).select_related("requirement").get(pk=duty_id)
    duty.award = award
    if tranche is not None:
        tranche.award = award
        duty.tranche = tranche
    return duty, award.pool.programme.city_id


def submit_report(
    *,
    duty: ReportingDuty,
    actor: User,
    answers: Mapping[str, Any],
    uploads: Iterable[UploadedFile] = (),
) -> ReportingDuty:
    """The institution submits a due or returned report: its answers on the pool's form and any files (checked
    like an application's attachments). Files of an earlier, returned submission stay with the report."""
    uploads = list(uploads)
    kinds: list[Kind] = [check_upload(upload) for upload in uploads]  # before any lock: reads the files
    with transaction.atomic():
        duty, city_id = _lock(duty.pk)
        workflow.require(actor, duty, D.SUBMITTED)
        # A completed award (all paid) still owes its reports, the final ones above all; a terminated one does not.
        if duty.award.status == Award.Status.TERMINATED:
            raise InvalidInput(
                _("The award is %(s)s: it owes no more reports.") % {"s": duty.award.get_status_display()}
            )
        cleaned = clean_answers(duty.requirement, answers)
        if duty.requirement.attachment_required and not uploads and not duty.attachments.exists():
            message = _("Attach the report's supporting document (PDF, image or spreadsheet).")
            raise InvalidInput(message, fields={"file": [message]})
        stored: list[ReportAttachment] = []
        try:
            for upload, kind in zip(uploads, kinds, strict=True):
                attachment = ReportAttachment(
                    duty=duty,
                    original_name=safe_name(upload.name or ""),
                    content_type=kind.mime,
                    size=upload.size or 0,
                    uploaded_by=actor,
                )
                upload.seek(0)
                attachment.file.save(attachment.original_name, upload, save=False)
                stored.append(attachment)
                attachment.save()
            duty.submitted_by = actor
            audit.change(
                duty,
                actor=actor,
                action="report.submit",
                city_id=city_id,
                audited=DUTY_FIELDS,
                values={"status": D.SUBMITTED, "answers": cleaned, "submitted_at": timezone.now()},
                also_save=["submitted_by"],
                noted={"attachments": [a.original_name for a in stored]},
            )
        except Exception:
            for attachment in stored:
                attachment.file.delete(save=False)
            raise
    return duty


def decide_report(
    *, duty: ReportingDuty, actor: User, accept: bool, comment: str = "", today: date | None = None
) -> ReportingDuty:
    """A programme officer accepts a submitted report or returns it with comments (required) for the institution
    to submit again. Accepting a report that gates a tranche releases the tranche when it is otherwise due."""
    target = D.ACCEPTED if accept else D.RETURNED
    today = today or timezone.localdate()
    with transaction.atomic():
        duty, city_id = _lock(duty.pk)
        workflow.require(actor, duty, target)
        if not accept and not comment.strip():
            message = _("Say what the institution must change before it submits the report again.")
            raise InvalidInput(message, fields={"comment": [message]})
        duty.decided_by = actor
        audit.change(
            duty,
            actor=actor,
            action="report.accept" if accept else "report.return",
            city_id=city_id,
            audited=DUTY_FIELDS,
            values={"status": target, "decided_at": timezone.now(), "comment": comment.strip()},
            also_save=["decided_by"],
        )
        if accept and duty.tranche is not None:
            release_if_due(duty.tranche, duty.award, actor=actor, city_id=city_id, today=today)
    return duty
