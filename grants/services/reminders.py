"""Reminders of things an award holder owes by a date (issue #16): 30 days before, 7 days before, and once overdue.

Each reminder is sent once per item and kind: a Reminder row, unique on (item type, item id, kind), is written in
the same transaction as the notices, so a second run of the daily job (or two at once: the second insert waits
for the first and fails) sends nothing. A job that missed some days sends only the latest kind that applies: a
duty found 5 days before its date gets the 7-day reminder, not a stale 30-day one too.

What is reminded of is a list of sources (`SOURCES`): the reporting duties of grants.models.ReportingDuty
(progress and financial reports; a report that gates a tranche is a duty too, so milestone reports are covered), and
vouchers with something left to spend before they expire (grants.services.vouchers; no "overdue" reminder: an
expired voucher's balance has lapsed).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from grants import selectors
from grants.models import Reminder, ReportingDuty, Voucher
from grants.services import notifications, vouchers
from grants.services.notifications import Event

# Days before the due date at which each early reminder goes, latest first.
EARLY = ((Reminder.Kind.DUE_7, 7), (Reminder.Kind.DUE_30, 30))


@dataclass(frozen=True)
class Source:
    """Items owed by a date: `outstanding(due_by)` those still owed due on or before `due_by`, with `due_date`;
    `notice(item)` the notify() arguments for one of them."""

    item_type: str
    outstanding: Callable[[date], QuerySet[Any]]
    notice: Callable[[Any], dict[str, Any]]
    # The events of the early reminders and of the overdue one (None: no reminder once the date has passed).
    due_event: str = Event.REPORT_DUE
    overdue_event: str | None = Event.REPORT_OVERDUE


def _duty_notice(duty: ReportingDuty) -> dict[str, Any]:
    award = duty.award
    return {
        "obj": duty,
        "users": notifications.applicants(award.institution_id),
        "context": {
            "reference": award.reference,
            "title": award.application.title,
            "application_id": award.application_id,
            "report": duty.requirement,
            "kind": duty.kind,
            "sequence": duty.sequence,
            "due_date": duty.due_date,
        },
    }


def _voucher_notice(voucher: Voucher) -> dict[str, Any]:
    return {
        "obj": voucher,
        "users": notifications.applicants(voucher.institution_id),
        "context": {"due_date": voucher.valid_until, "balance": voucher.balance},
    }


SOURCES: list[Source] = [
    Source(
        item_type="reportingduty",
        outstanding=lambda due_by: selectors.outstanding_duties(due_by=due_by).select_related(
            "award__application", "requirement"
        ),
        notice=_duty_notice,
    ),
    Source(
        item_type="voucher",
        outstanding=lambda due_by: vouchers.expiring(due_by).annotate(due_date=F("valid_until")),
        notice=_voucher_notice,
        due_event=Event.VOUCHER_EXPIRING,
        overdue_event=None,
    ),
]


def _kind_for(due: date, today: date) -> tuple[str, int] | None:
    """Which reminder an item due on `due` gets today, and the days left (negative: overdue)."""
    days = (due - today).days
    if days < 0:
        return Reminder.Kind.OVERDUE, days
    for kind, within in EARLY:
        if days <= within:
            return kind, days
    return None


def send_reminders(*, today: date | None = None) -> dict[str, int]:
    """Send every reminder due today, once each. Each item in its own transaction: one failure costs only it."""
    today = today or timezone.localdate()
    sent = dict.fromkeys(Reminder.Kind.values, 0)
    horizon = today + timedelta(days=max(within for _kind, within in EARLY))
    for source in SOURCES:
        items = list(source.outstanding(horizon))
        done = set(
            Reminder.objects.filter(
                item_type=source.item_type, item_id__in=[i.pk for i in items]
            ).values_list("item_id", "kind")
        )
        for item in items:
            found = _kind_for(item.due_date, today)
            if found is None or (item.pk, found[0]) in done:
                continue
            if found[0] == Reminder.Kind.OVERDUE and source.overdue_event is None:
                continue
            kind, days = found
            if _send_one(source, item, kind, days):
                sent[kind] += 1
    return sent


def _send_one(source: Source, item: Any, kind: str, days: int) -> bool:
    try:
        with transaction.atomic():
            Reminder.objects.create(item_type=source.item_type, item_id=item.pk, kind=kind)
            notice = source.notice(item)
            event = source.overdue_event if kind == Reminder.Kind.OVERDUE else source.due_event
            assert event is not None
            notifications.notify(
                event,
                obj=notice["obj"],
                users=notice["users"],
                context={**notice["context"], "days": abs(days), "reminder": kind},
            )
    except IntegrityError:
        # Another run sent this reminder between our look and our insert.
        return False
    return True
