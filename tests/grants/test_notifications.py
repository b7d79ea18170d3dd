"""Notices (issue #16): each one through the service that announces it, the e-mail sent after COMMIT in the
recipient's language, the person's choices, nothing on rollback, retries on a failing relay, reminders once each.

The e-mails go through Celery run eagerly (the task is the production one) into Django's locmem outbox."""

import smtplib
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.utils import timezone

from config.celery import app as celery_app
from grants import services, tasks
from grants.errors import BudgetExceeded
from grants.models import FundingPool, Notification, NotificationEmail, Reminder, ReportingDuty, Tranche
from grants.roles import Role
from grants.services import notifications, outbox, reminders
from grants.services.notifications import Event
from tests import factories as f
from tests.grants.invariants import refused

D = Decimal


@pytest.fixture(autouse=True)
def _mail_sent_by_the_worker(settings, tmp_path):
    """The send task runs in-process when queued after a commit; the mail lands in mail.outbox."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SITE_URL = "https://grants.example.cn"
    settings.REDIS_URL = ""
    settings.CELERY_DATA_DIR = tmp_path / "celery"
    old = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = old


def events_of(user) -> list[str]:
    return list(Notification.objects.filter(user=user).order_by("pk").values_list("event", flat=True))


def mail_to(user) -> list[Any]:
    return [m for m in mail.outbox if m.to == [user.email]]


def html_of(message) -> str:
    (html, mimetype) = message.alternatives[0]
    assert mimetype == "text/html"
    return html


# --- Each notice through its service -------------------------------------------------------------------------


def test_submission_tells_the_applicant_after_commit(draft, carol, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.submit_application(application=draft, actor=carol)
    # Written in the transaction; nothing sent inside it.
    assert events_of(carol) == [Event.APPLICATION_SUBMITTED]
    assert NotificationEmail.objects.filter(sent_at__isnull=True).count() == 1
    assert mail.outbox == []
    for callback in callbacks:
        callback()
    (message,) = mail.outbox
    draft.refresh_from_db()
    assert message.to == ["carol@example.cn"]
    assert message.subject == f"Application {draft.reference} received"
    assert "“GPU rental for model training”, to Computing power, asking for CNY 1,000,000.00" in message.body
    assert f"https://grants.example.cn/applications/{draft.pk}/" in message.body
    assert "https://grants.example.cn/notices/preferences/" in message.body
    html = html_of(message)
    assert f'href="https://grants.example.cn/applications/{draft.pk}/"' in html and "<h1" in html
    assert NotificationEmail.objects.get().sent_at is not None


def test_an_applicant_who_reads_chinese_gets_chinese(draft, carol, django_capture_on_commit_callbacks):
    notifications.set_language(user=carol, language="zh-hans")
    with django_capture_on_commit_callbacks(execute=True):
        services.submit_application(application=draft, actor=carol)
    (message,) = mail.outbox
    draft.refresh_from_db()
    assert message.subject == f"已收到申请 {draft.reference}"
    assert "“算力”" in message.body and "申请金额 100 万元" in message.body
    assert f"https://grants.example.cn/zh-hans/applications/{draft.pk}/" in message.body
    assert '<html lang="zh-Hans">' in html_of(message)


def test_return_carries_the_officers_note(ready, carol, alice, django_capture_on_commit_callbacks):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.return_application(application=ready, actor=alice, note="Add the GPU quotes & invoices.")
    (returned,) = mail_to(carol)
    assert returned.subject == f"Application {ready.reference} returned for changes"
    # The text part is not HTML-escaped; the HTML part is.
    assert "The programme officer wrote: Add the GPU quotes & invoices." in returned.body
    assert "Add the GPU quotes &amp; invoices." in html_of(returned)
    assert events_of(carol) == [Event.APPLICATION_SUBMITTED, Event.APPLICATION_RETURNED]


def test_rejection_carries_the_officers_note(ready, carol, alice, django_capture_on_commit_callbacks):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.reject_application(application=ready, actor=alice, note="Out of scope <b>sadly</b>")
    (rejected,) = mail_to(carol)
    assert rejected.subject == f"Application {ready.reference} was not approved"
    assert "Out of scope <b>sadly</b>" in rejected.body
    assert "Out of scope &lt;b&gt;sadly&lt;/b&gt;" in html_of(rejected)
    assert events_of(carol) == [Event.APPLICATION_SUBMITTED, Event.APPLICATION_REJECTED]


def test_the_reviewer_is_told_of_the_assignment(
    draft, carol, alice, rita, django_capture_on_commit_callbacks
):
    services.submit_application(application=draft, actor=carol)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        (review,) = services.assign_reviewers(application=draft, actor=alice, reviewers=[rita])
    (message,) = mail.outbox
    draft.refresh_from_db()
    assert message.to == ["rita@example.cn"]
    assert message.subject == f"Please review application {draft.reference}"
    # Staff follow the link to the review in the administration.
    assert f"https://grants.example.cn/admin/grants/review/{review.pk}/change/" in message.body
    assert events_of(alice) == [] and events_of(carol) == [Event.APPLICATION_SUBMITTED]


def test_approval_tells_the_applicant_the_amount_and_schedule(
    ready, carol, alice, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        award = services.approve_application(
            application=ready, actor=alice, amount=D("800000"), note="Welcome aboard."
        )
    approved = [m for m in mail_to(carol) if "approved" in m.subject]
    (message,) = approved
    assert message.subject == f"Application {award.reference} approved: CNY 800,000.00"
    assert "award " + award.reference + " of CNY 800,000.00, paid in 1 tranche." in message.body
    assert "The programme officer wrote: Welcome aboard." in message.body


def test_a_refused_approval_leaves_no_notice_and_sends_nothing(
    ready, carol, alice, sh_pool, django_capture_on_commit_callbacks
):
    FundingPool.objects.filter(pk=sh_pool.pk).update(cap=D("900000"))
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True) as callbacks, refused(BudgetExceeded):
        services.approve_application(application=ready, actor=alice)
    assert callbacks == [] and mail.outbox == []
    assert Event.APPLICATION_APPROVED not in events_of(carol)


def test_a_notice_rolled_back_with_its_transaction_is_never_sent(
    draft, carol, django_capture_on_commit_callbacks
):
    from django.db import transaction

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.submit_application(application=draft, actor=carol)
        raise RuntimeError("the caller's transaction fails after the notice was written")
    assert callbacks == [] and mail.outbox == []
    assert not Notification.objects.exists() and not NotificationEmail.objects.exists()


@pytest.fixture
def award(sh_pool, carols_startup, carol, alice, rita):
    return f.award(sh_pool, carols_startup, carol, alice, rita, requested="3000000", years=3)


def test_release_tells_the_applicant_and_the_citys_finance_officers(
    award, carol, dave, django_capture_on_commit_callbacks
):
    other_city_finance = f.user("harry", roles=(Role.FINANCE_OFFICER,), cities=(f.city("HZ"),))
    first = award.tranches.get(sequence=1)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.release_tranche(tranche=first, actor=dave)
    (to_carol,) = mail_to(carol)
    assert to_carol.subject == f"Tranche 1 of award {award.reference} released for payment"
    assert "CNY 1,000,000.00 (scheduled for 2025-03-01)" in to_carol.body
    (to_dave,) = mail_to(dave)
    assert to_dave.subject == f"Ready to pay: tranche 1 of award {award.reference}, CNY 1,000,000.00"
    assert "(Carol AI Lab)" in to_dave.body
    assert f"/admin/grants/tranche/{first.pk}/change/" in to_dave.body
    assert mail_to(other_city_finance) == []


def test_the_daily_release_announces_each_tranche_it_releases(
    award, carol, dave, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        released = services.release_due_tranches()
    assert released == [award.tranches.get(sequence=1).pk]
    assert events_of(carol)[-1] == Event.TRANCHE_RELEASED and events_of(dave) == [Event.TRANCHE_PAYABLE]
    assert len(mail_to(carol)) == 1 and len(mail_to(dave)) == 1


def test_payment_tells_the_applicant(award, carol, dave, django_capture_on_commit_callbacks):
    first = award.tranches.get(sequence=1)
    services.release_due_tranches()  # released by the daily job: dave may pay it (separation of duties)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.pay_tranche(tranche=first, actor=dave, payment_reference="PAY-1", paid_on=date(2026, 4, 1))
    (message,) = mail_to(carol)
    assert message.subject == f"Tranche 1 of award {award.reference} paid: CNY 1,000,000.00"
    assert "was paid on 2026-04-01 (payment reference PAY-1)." in message.body
    assert mail_to(dave) == []


# --- Choices -------------------------------------------------------------------------------------------------


def test_a_notice_turned_off_is_listed_but_not_mailed(draft, carol, django_capture_on_commit_callbacks):
    notifications.set_email_choices(
        user=carol, wanted=set(notifications.events_for(carol)) - {Event.APPLICATION_SUBMITTED}
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.submit_application(application=draft, actor=carol)
    assert events_of(carol) == [Event.APPLICATION_SUBMITTED]
    assert mail.outbox == [] and not NotificationEmail.objects.exists()


def test_the_choices_offered_follow_the_roles(carol, carols_startup, dave, rita, alice):
    assert Event.APPLICATION_APPROVED in notifications.events_for(carol)
    assert Event.REVIEWER_ASSIGNED not in notifications.events_for(carol)
    assert notifications.events_for(dave) == [Event.TRANCHE_PAYABLE, Event.CLAIM_SUBMITTED]
    assert notifications.events_for(rita) == [Event.REVIEWER_ASSIGNED]
    assert notifications.events_for(alice) == [Event.APPROVAL_AWAITING_SECOND]
    with pytest.raises(ValueError):
        notifications.set_email_choices(user=carol, wanted=["no_such_event"])


def test_inactive_people_and_those_without_an_address_get_no_mail(
    draft, carol, carols_startup, django_capture_on_commit_callbacks
):
    silent = f.user("sam")
    silent.email = ""
    silent.save()
    gone = f.user("gina")
    gone.is_active = False
    gone.save()
    for member in (silent, gone):
        carols_startup.memberships.create(user=member)
    with django_capture_on_commit_callbacks(execute=True):
        services.submit_application(application=draft, actor=carol)
    assert events_of(silent) == [Event.APPLICATION_SUBMITTED] and events_of(gone) == []
    assert [m.to for m in mail.outbox] == [["carol@example.cn"]]


# --- Sending: retries, the sweep -----------------------------------------------------------------------------


class FlakyBackend(LocmemBackend):
    """Refuses the first `failures` sends (as a relay that dropped the connection would), then delivers."""

    failures = 0
    calls = 0

    def send_messages(self, messages: Any) -> int:
        FlakyBackend.calls += 1
        if FlakyBackend.calls <= FlakyBackend.failures:
            raise smtplib.SMTPServerDisconnected("relay went away")
        return super().send_messages(messages)


@pytest.fixture
def flaky(settings):
    """The relay fails; the eager task then retries as a worker would (propagating stops eager retries)."""
    settings.EMAIL_BACKEND = f"{__name__}.FlakyBackend"
    FlakyBackend.calls = 0
    old = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    yield FlakyBackend
    celery_app.conf.task_eager_propagates = old


def test_a_relay_that_fails_then_recovers_gets_the_mail_once(
    draft, carol, flaky, django_capture_on_commit_callbacks
):
    flaky.failures = 2
    with django_capture_on_commit_callbacks(execute=True):
        services.submit_application(application=draft, actor=carol)
    assert flaky.calls == 3 and len(mail.outbox) == 1
    email = NotificationEmail.objects.get()
    assert email.attempts == 3 and email.sent_at is not None and email.failed_at is None


def test_a_relay_that_never_answers_is_given_up_after_the_attempts_allowed(
    draft, carol, flaky, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFY_EMAIL_MAX_ATTEMPTS = 3
    flaky.failures = 100
    with django_capture_on_commit_callbacks(execute=True):
        services.submit_application(application=draft, actor=carol)
    email = NotificationEmail.objects.get()
    assert email.attempts == 3 and email.failed_at is not None and email.sent_at is None
    assert "SMTPServerDisconnected: relay went away" in email.last_error
    assert flaky.calls == 3 and mail.outbox == []
    assert outbox.emails_due(now=timezone.now() + timedelta(days=1), limit=10) == []


def test_the_sweep_sends_what_the_lost_task_did_not(draft, carol, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):  # the broker was down at the commit
        services.submit_application(application=draft, actor=carol)
    assert tasks.sweep_notice_emails() == 0  # within the grace the prompt task may still come
    email = NotificationEmail.objects.get()
    NotificationEmail.objects.filter(pk=email.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=5)
    )
    assert tasks.sweep_notice_emails() == 1
    assert len(mail.outbox) == 1
    assert tasks.sweep_notice_emails() == 0
    # A second run of the send task (a redelivered message) sends nothing more.
    assert notifications.send_email(email.pk) == "done" and len(mail.outbox) == 1


def test_a_send_in_progress_is_not_sent_twice(draft, carol, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        services.submit_application(application=draft, actor=carol)
    email = NotificationEmail.objects.get()
    NotificationEmail.objects.filter(pk=email.pk).update(claimed_until=timezone.now() + timedelta(minutes=1))
    assert notifications.send_email(email.pk) == "busy" and mail.outbox == []


# --- Reminders -----------------------------------------------------------------------------------------------


@pytest.fixture
def duties(sh_pool, carols_startup, carol, alice, rita):
    f.report_requirements(sh_pool)
    awarded = f.award(sh_pool, carols_startup, carol, alice, rita, requested="3000000", years=3)
    return list(awarded.reporting_duties.order_by("due_date", "pk"))


def test_reminders_go_30_and_7_days_before_and_once_overdue_each_once(
    duties, carol, django_capture_on_commit_callbacks
):
    first = duties[0]
    due = first.due_date
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        sent = reminders.send_reminders(today=due - timedelta(days=30))
        again = reminders.send_reminders(today=due - timedelta(days=30))
    assert sent[Reminder.Kind.DUE_30] >= 1 and sum(again.values()) == 0
    reminded = [m for m in mail_to(carol) if "due on" in m.subject]
    assert any(
        m.subject == f"Progress report for award {first.award.reference} due on {due}" for m in reminded
    )
    assert any("in 30 days" in m.body for m in reminded)

    with django_capture_on_commit_callbacks(execute=True):
        sent = reminders.send_reminders(today=due - timedelta(days=7))
        again = reminders.send_reminders(today=due - timedelta(days=6))
    assert sent[Reminder.Kind.DUE_7] >= 1 and again[Reminder.Kind.DUE_7] == 0

    with django_capture_on_commit_callbacks(execute=True):
        sent = reminders.send_reminders(today=due + timedelta(days=1))
        again = reminders.send_reminders(today=due + timedelta(days=2))
    assert sent[Reminder.Kind.OVERDUE] >= 1 and again[Reminder.Kind.OVERDUE] == 0
    assert Reminder.objects.filter(item_id=first.pk).count() == 3
    overdue = [m for m in mail_to(carol) if "overdue" in m.subject]
    assert overdue[0].subject == f"Progress report for award {first.award.reference} is overdue"


def test_a_submitted_report_is_not_reminded(duties, carol, django_capture_on_commit_callbacks):
    first = duties[0]
    ReportingDuty.objects.filter(pk=first.pk).update(
        status=ReportingDuty.Status.SUBMITTED, submitted_by=carol, submitted_at=timezone.now()
    )
    reminders.send_reminders(today=first.due_date + timedelta(days=1))
    assert not Reminder.objects.filter(item_id=first.pk).exists()


def test_a_late_first_run_sends_only_the_latest_reminder(duties, carol):
    first = duties[0]
    reminders.send_reminders(today=first.due_date - timedelta(days=3))
    kinds = set(Reminder.objects.filter(item_id=first.pk).values_list("kind", flat=True))
    assert kinds == {Reminder.Kind.DUE_7}


def test_reminders_read_in_chinese(duties, carol, django_capture_on_commit_callbacks):
    notifications.set_language(user=carol, language="zh-hans")
    first = duties[0]
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        reminders.send_reminders(today=first.due_date - timedelta(days=7))
    subjects = [m.subject for m in mail_to(carol)]
    assert f"资助 {first.award.reference} 的进展报告将于 {first.due_date} 到期" in subjects


# --- Reading -------------------------------------------------------------------------------------------------


def test_a_notice_reads_in_the_readers_language_whatever_it_was_written_in(draft, carol):
    services.submit_application(application=draft, actor=carol)
    notice = Notification.objects.get()
    assert notifications.render(notice, "zh-hans").subject.startswith("已收到申请")
    assert notifications.render(notice, "en").subject.startswith("Application")
    assert notifications.unread_count(carol) == 1
    assert notifications.mark_read(user=carol) == 1 and notifications.unread_count(carol) == 0


def test_every_event_has_its_templates_in_both_languages(draft, carol):
    services.submit_application(application=draft, actor=carol)
    notice = Notification.objects.get()
    for event in Event.values:
        notice.event = event
        for language in ("en", "zh-hans"):
            shown = notifications.render(notice, language)
            assert shown.subject and shown.text and "<html" in shown.html, (event, language)


def test_unknown_events_are_refused(draft, carol):
    with pytest.raises(ValueError):
        notifications.notify("no_such_event", obj=draft, users=[carol])


def test_the_tranche_of_a_notice_is_the_one_announced(award, dave):
    first = award.tranches.get(sequence=1)
    services.release_tranche(tranche=first, actor=dave)
    notice = Notification.objects.get(user=dave)
    assert (notice.object_type, notice.object_id) == ("tranche", first.pk)
    assert Tranche.objects.get(pk=first.pk).status == Tranche.Status.PAYABLE


# --- Personal data -------------------------------------------------------------------------------------------


def test_anonymising_an_application_clears_its_text_from_the_notices(ready, carol, alice):
    services.reject_application(application=ready, actor=alice, note="Not for us.")
    ready.title = f"Anonymised application #{ready.pk}"
    # Carol's submission and rejection, rita's assignment.
    assert notifications.forget_application(ready) == 3
    for notice in Notification.objects.all():
        shown = notifications.render(notice, "en")
        assert "GPU rental" not in shown.text + shown.subject and "Not for us" not in shown.text
    rejected = Notification.objects.get(event=Event.APPLICATION_REJECTED)
    assert f"“Anonymised application #{ready.pk}”" in notifications.render(rejected, "en").text


def test_anonymising_an_account_deletes_its_notices(draft, carol):
    services.submit_application(application=draft, actor=carol)
    assert notifications.forget_user(carol) == 2  # the notice and its e-mail
    assert not Notification.objects.exists() and not NotificationEmail.objects.exists()


def test_the_persons_download_has_their_notices_and_choices(draft, carol):
    notifications.set_language(user=carol, language="zh-hans")
    notifications.set_email_choices(user=carol, wanted=[Event.APPLICATION_APPROVED])
    services.submit_application(application=draft, actor=carol)
    data = notifications.personal_data(carol)
    assert data["language"] == "zh-hans" and Event.APPLICATION_SUBMITTED in data["email_muted"]
    (notice,) = data["notices"]
    assert notice["event"] == Event.APPLICATION_SUBMITTED and notice["subject"].startswith("已收到申请")


def test_the_whole_journey_reads_in_chinese_for_those_who_read_chinese(
    sh_pool, carols_startup, carol, alice, rita, dave, django_capture_on_commit_callbacks
):
    for person in (carol, rita, dave):
        notifications.set_language(user=person, language="zh-hans")
    with django_capture_on_commit_callbacks(execute=True):
        award = f.award(sh_pool, carols_startup, carol, alice, rita, requested="3000000", years=3)
    first = award.tranches.get(sequence=1)
    with django_capture_on_commit_callbacks(execute=True):
        services.release_due_tranches()
    with django_capture_on_commit_callbacks(execute=True):
        services.pay_tranche(tranche=first, actor=dave, payment_reference="PAY-1", paid_on=date(2026, 4, 1))
    ref = award.reference
    assert [m.subject for m in mail_to(carol)] == [
        f"已收到申请 {ref}",
        f"申请 {ref} 已获批准：300 万元",  # noqa: RUF001
        f"资助协议 {ref} 待您确认",
        f"资助 {ref} 第 1 期已发放待付",
        f"资助 {ref} 第 1 期已支付：100 万元",  # noqa: RUF001
    ]
    assert [m.subject for m in mail_to(rita)] == [f"请评审申请 {ref}"]
    assert [m.subject for m in mail_to(dave)] == [f"待支付：资助 {ref} 第 1 期，100 万元"]  # noqa: RUF001
    assert "（卡罗尔智能实验室）" in mail_to(dave)[0].body  # noqa: RUF001
    assert "支付日期 2026-04-01，支付凭证号 PAY-1" in mail_to(carol)[-1].body  # noqa: RUF001
