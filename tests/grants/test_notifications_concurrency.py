"""Notices under concurrency on PostgreSQL (issue #16): two reminder runs at once send each reminder once; two
sends of one e-mail at once (the task's retry beside beat's sweep) reach the relay once."""

from datetime import timedelta

import pytest
from django.core import mail

from grants import tasks
from grants.models import Notification, NotificationEmail, Reminder
from grants.services import notifications, reminders
from grants.services.notifications import Event
from tests import factories as f
from tests.grants.test_concurrency import in_parallel

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

RUNS = 6


@pytest.fixture(autouse=True)
def _nothing_queued(monkeypatch, settings):
    """The e-mails stay in the outbox: each test sends them itself."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    monkeypatch.setattr(tasks, "queue_notice_emails", lambda email_ids: None)


def test_reminder_runs_at_once_send_each_reminder_once(sh_pool, carols_startup, carol, alice, rita):
    f.report_requirements(sh_pool)
    award = f.award(sh_pool, carols_startup, carol, alice, rita, requested="3000000", years=3)
    first = award.reporting_duties.order_by("due_date", "pk")[0]
    today = first.due_date - timedelta(days=7)
    before = Notification.objects.filter(user=carol).count()

    results = in_parallel([lambda: reminders.send_reminders(today=today) for _ in range(RUNS)])

    assert all(status == "ok" for status, _ in results), results
    sent = sum(counts[Reminder.Kind.DUE_7] for _, counts in results)
    assert sent == Reminder.objects.filter(kind=Reminder.Kind.DUE_7).count() >= 1
    assert Reminder.objects.filter(item_id=first.pk, kind=Reminder.Kind.DUE_7).count() == 1
    reminded = Notification.objects.filter(user=carol, event=Event.REPORT_DUE).count()
    assert reminded == sent and Notification.objects.filter(user=carol).count() == before + sent


def test_one_email_sent_at_once_by_several_runs_reaches_the_relay_once(sh_pool, carols_startup, carol):
    application = f.application(sh_pool, carols_startup, carol)
    notifications.notify(Event.APPLICATION_SUBMITTED, obj=application, users=[carol])
    email = NotificationEmail.objects.get()
    mail.outbox = []

    results = in_parallel([lambda: notifications.send_email(email.pk) for _ in range(RUNS)])

    outcomes = sorted(result for _status, result in results)
    assert outcomes.count("sent") == 1 and set(outcomes) <= {"sent", "busy", "done"}, outcomes
    assert len(mail.outbox) == 1
    email.refresh_from_db()
    assert email.sent_at is not None and email.attempts == 1
