"""Personal data past its retention is anonymised by a daily run, on the demo data with the clock moved past
retention: what goes (names, e-mails, free text, files) and what stays (ledger, awards, audit events); every run
audited, a second run a no-op, the dry run changing nothing, staff and anyone still owing something kept."""

import io
import threading
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from grants import services, tasks
from grants.api.authentication import create_token
from grants.models import (
    ApiToken,
    Application,
    Attachment,
    AuditEvent,
    Award,
    FundingPool,
    LedgerEntry,
    MilestoneReport,
    Review,
    Tranche,
)
from grants.services import attachments as attachment_service
from grants.services import retention
from tests import factories as f
from tests.grants.invariants import assert_invariants

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def pdf(name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, PDF, content_type="application/pdf")


def later(days: int) -> Any:
    return timezone.now() + timedelta(days=days)


# Every default retention (3 years, 1 year, 3 years) has passed.
YEARS_LATER = 4 * 365


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def demo(db) -> dict[str, Any]:
    """The demo data, plus what the demo lacks to show every rule: a withdrawn draft with a file, a returned
    application with a file, a milestone report with a file, Beijing's award terminated (its applicant then owes
    nothing), an account signed up and never used, API tokens, a reviewer's comment on the rejected application."""
    call_command("load_demo", stdout=io.StringIO())
    u = {user.username: user for user in User.objects.all()}
    terminated = Award.objects.get(institution__city__code="BJ")
    services.terminate_award(award=terminated, actor=u["bj_officer"], reason="The project was abandoned.")
    withdrawn_draft = Application.objects.get(title="Multilingual corpus licences (draft)")
    attachment_service.add_attachment(
        application=withdrawn_draft, actor=u["applicant3"], upload=pdf("licence.pdf")
    )
    services.withdraw_application(application=withdrawn_draft, actor=u["applicant3"])
    returned = Application.objects.get(title="Annotated street-scene data")
    kept_file = attachment_service.add_attachment(
        application=returned, actor=u["applicant5"], upload=pdf("terms.pdf")
    )
    gated = Tranche.objects.filter(requires_milestone=True, award__institution__city__code="SH").first()
    assert gated is not None
    report = services.submit_milestone_report(
        tranche=gated,
        actor=gated.award.institution.members.get(),
        summary="Cluster live.",
        attachment=pdf("m.pdf"),
    )
    rejected = Application.objects.get(status=Application.Status.REJECTED)
    Review.objects.filter(application=rejected).update(
        comment="Spoke to Zhang Wei, 138 0013 8000: no licence."
    )
    drifter = User.objects.create_user("drifter", "drifter@example.cn", "a long unused password")
    create_token(user=u["applicant10"], actor=u["applicant10"], name="Haidian ERP")
    create_token(user=u["applicant1"], actor=u["applicant1"], name="Huangpu ERP")
    return {
        "users": u,
        "drifter": drifter,
        "rejected": rejected,
        "withdrawn": Application.objects.get(title="Third-party model API credits"),
        "withdrawn_draft": withdrawn_draft,
        "returned": returned,
        "kept_file": kept_file,
        "milestone_report": report,
        "terminated": terminated,
    }


def money_records() -> dict[str, list[tuple[Any, ...]]]:
    """Every financial record, column by column: none of it may change."""
    return {
        "ledger": list(LedgerEntry.objects.order_by("pk").values_list()),
        "awards": list(Award.objects.order_by("pk").values_list()),
        "tranches": list(Tranche.objects.order_by("pk").values_list()),
        "pools": list(FundingPool.objects.order_by("pk").values_list("pk", "cap", "committed", "disbursed")),
        "milestone_reports": list(MilestoneReport.objects.order_by("pk").values_list()),
    }


def audit_log() -> list[tuple[Any, ...]]:
    return list(AuditEvent.objects.order_by("pk").values_list())


def personal_data() -> dict[str, list[tuple[Any, ...]]]:
    return {
        "users": list(User.objects.order_by("pk").values_list()),
        "applications": list(Application.objects.order_by("pk").values_list()),
        "reviews": list(Review.objects.order_by("pk").values_list("pk", "comment")),
        "attachments": list(Attachment.objects.order_by("pk").values_list()),
        "tokens": list(ApiToken.objects.order_by("pk").values_list()),
    }


def test_past_retention_names_emails_text_and_files_are_anonymised_and_every_money_record_is_kept(demo):
    u = demo["users"]
    money, events = money_records(), audit_log()
    draft_file = Attachment.objects.get(application=demo["withdrawn_draft"]).file.name
    assert default_storage.exists(draft_file)

    report = retention.apply_retention(now=later(YEARS_LATER))

    # Rejected and withdrawn applications: free text replaced, figures and history kept.
    closed = sorted(a.pk for a in (demo["rejected"], demo["withdrawn"], demo["withdrawn_draft"]))
    assert report.applications == closed
    for application in Application.objects.filter(pk__in=closed):
        assert application.title == f"Anonymised application #{application.pk}"
        assert application.summary == application.decision_note == ""
        assert application.anonymised_at is not None
    rejected = Application.objects.get(pk=demo["rejected"].pk)
    assert (rejected.status, rejected.reference, rejected.requested_amount) == (
        "rejected",
        demo["rejected"].reference,
        Decimal("1000000.00"),
    )
    review = Review.objects.get(application=rejected)
    assert review.comment == "" and (review.technical_merit, review.recommendation) == (4, "fund")
    # Files: the withdrawn draft's go from storage and database; open applications' and milestone files stay.
    assert len(report.attachments) == 1
    assert not Attachment.objects.filter(application=demo["withdrawn_draft"]).exists()
    assert not default_storage.exists(draft_file)
    assert default_storage.exists(Attachment.objects.get(pk=demo["kept_file"].pk).file.name)
    assert default_storage.exists(MilestoneReport.objects.get(pk=demo["milestone_report"].pk).attachment.name)
    # Accounts: the never-used one, Pudong's applicant (its one-year award completed when paid) and Beijing's
    # (its award terminated): nothing owed any more. Tokens gone, no way to log in.
    applicant10 = u["applicant10"]
    gone = ("applicant2", "applicant10", "drifter")
    assert report.accounts == sorted([demo["drifter"].pk, u["applicant2"].pk, applicant10.pk])
    assert Award.objects.get(institution__name_en__startswith="Pudong").status == Award.Status.COMPLETED
    for pk in report.accounts:
        user = User.objects.get(pk=pk)
        assert user.username == f"Anonymised person #{pk}"
        assert user.email == f"anonymised-{pk}@anonymised.invalid"
        assert (user.first_name, user.last_name, user.is_active, user.has_usable_password()) == (
            "",
            "",
            False,
            False,
        )
        assert not ApiToken.objects.filter(user=user).exists()
    assert not Client().login(username="applicant10", password="anything")
    # Everyone else is untouched: staff, and applicants whose institutions have live awards or open applications.
    others = User.objects.exclude(pk__in=report.accounts)
    assert sorted(others.values_list("username", flat=True)) == sorted(n for n in u if n not in gone)
    assert ApiToken.objects.filter(user=u["applicant1"], name="Huangpu ERP").exists()

    # Kept: every ledger entry, award, tranche, pool counter and milestone report, column for column.
    assert money_records() == money
    assert_invariants()
    terminated = Award.objects.get(pk=demo["terminated"].pk)
    assert terminated.application.created_by_id == applicant10.pk  # the record names an anonymised person
    assert LedgerEntry.objects.filter(award=terminated).count() == 2  # commit and de-commit
    # Audit events: the old ones exactly as they were; new ones per anonymised row, and one for the run.
    after = audit_log()
    assert after[: len(events)] == events
    new = AuditEvent.objects.filter(pk__gt=events[-1][0])
    assert sorted(new.values_list("action", flat=True)) == sorted(
        # An anonymised account is also switched off: a change of rights, audited as one.
        ["application.anonymise"] * 3 + ["user.anonymise"] * 3 + ["user.flags"] * 3 + ["retention.run"]
    )
    run = new.get(action="retention.run")
    assert isinstance(run.after, dict)
    assert run.after["counts"] == {"applications": 3, "attachments": 1, "accounts": 3, "sessions": 0}
    assert run.after["ids"]["accounts"] == report.accounts
    assert run.after["retention_days"] == {"applications": 1095, "attachments": 365, "accounts": 1095}
    # The events about anonymised rows hold no personal data of their own.
    for event in new.filter(action="user.anonymise"):
        assert event.object_repr.startswith("Anonymised person #")
        assert not any(name in str(event.after) for name in gone)


def test_a_second_run_with_nothing_newly_due_changes_nothing_but_records_itself(demo):
    retention.apply_retention(now=later(YEARS_LATER))
    data, money, events = personal_data(), money_records(), audit_log()

    report = retention.apply_retention(now=later(YEARS_LATER))

    assert report.counts() == {"applications": 0, "attachments": 0, "accounts": 0, "sessions": 0}
    assert (personal_data(), money_records()) == (data, money)
    assert audit_log()[:-1] == events
    assert AuditEvent.objects.latest("pk").action == "retention.run"


def test_nothing_is_touched_before_its_retention_and_each_kind_waits_for_its_own(demo):
    data, money = personal_data(), money_records()
    assert retention.apply_retention(now=later(364)).counts() == {
        "applications": 0,
        "attachments": 0,
        "accounts": 0,
        "sessions": 0,
    }
    assert personal_data() == data

    # A year on, the withdrawn draft's file is past its retention; its text and every account are not yet.
    report = retention.apply_retention(now=later(366))
    assert (report.applications, len(report.attachments), report.accounts) == ([], 1, [])
    assert not Attachment.objects.filter(application=demo["withdrawn_draft"]).exists()
    assert (
        Application.objects.get(pk=demo["withdrawn_draft"].pk).title == "Multilingual corpus licences (draft)"
    )
    assert AuditEvent.objects.filter(action="application.remove_attachments").count() == 1
    assert money_records() == money


def test_a_draft_left_untouched_loses_its_files_but_not_while_someone_works_on_it(draft, carol):
    first = attachment_service.add_attachment(application=draft, actor=carol, upload=pdf("quote.pdf"))
    second = attachment_service.add_attachment(application=draft, actor=carol, upload=pdf("plan.pdf"))
    year_on = later(366)
    recently = year_on - timedelta(days=30)

    Application.objects.filter(pk=draft.pk).update(updated_at=recently)  # edited a month ago
    assert retention.apply_retention(now=year_on).attachments == []
    Application.objects.filter(pk=draft.pk).update(updated_at=timezone.now())
    Attachment.objects.filter(pk=second.pk).update(uploaded_at=recently)  # a file given a month ago
    assert retention.apply_retention(now=year_on).attachments == []

    Attachment.objects.filter(pk=second.pk).update(uploaded_at=timezone.now())
    assert retention.apply_retention(now=year_on).attachments == [first.pk, second.pk]
    assert not default_storage.exists(first.file.name) and not default_storage.exists(second.file.name)
    kept = Application.objects.get(pk=draft.pk)
    assert (kept.status, kept.title, kept.anonymised_at) == ("draft", draft.title, None)
    event = AuditEvent.objects.get(action="application.remove_attachments")
    assert event.after == {"attachments_deleted": [first.pk, second.pk]} and event.actor is None


def test_the_dry_run_command_says_what_it_would_do_and_changes_nothing(demo):
    # The clock moved past retention: everything the demo holds dates from four years ago.
    past = timezone.now() - timedelta(days=YEARS_LATER)
    Application.objects.update(updated_at=past, decided_at=past)
    Attachment.objects.update(uploaded_at=past)
    User.objects.update(date_joined=past)
    data, money, events = personal_data(), money_records(), audit_log()
    out = io.StringIO()

    call_command("apply_retention", "--dry-run", stdout=out)

    lines = out.getvalue().splitlines()
    assert (
        lines[1].startswith("  rejected or withdrawn applications")
        and ": 3 would be anonymised (ids" in lines[1]
    )
    assert (
        lines[2].startswith("  files of applications without an award") and ": 1 would be deleted" in lines[2]
    )
    assert lines[3].startswith("  inactive applicant accounts") and ": 3 would be anonymised (ids" in lines[3]
    assert lines[-1] == "Dry run: nothing was changed."
    assert (personal_data(), money_records(), audit_log()) == (data, money, events)

    out = io.StringIO()
    call_command("apply_retention", stdout=out)
    assert "3 anonymised" in out.getvalue() and "retention.run" in out.getvalue()
    assert User.objects.filter(username__startswith="Anonymised person #").count() == 3
    assert money_records() == money


def test_the_daily_job_runs_the_service_and_beat_schedules_it(demo, settings):
    assert settings.CELERY_BEAT_SCHEDULE["apply-retention"]["task"] == "grants.apply_retention"
    assert tasks.apply_retention() == {"applications": 0, "attachments": 0, "accounts": 0, "sessions": 0}
    assert AuditEvent.objects.filter(action="retention.run").count() == 1


# --- Who counts as inactive ------------------------------------------------------------------------------------


def test_an_applicant_account_is_kept_while_its_institution_owes_something(
    settings, sh_pool, carols_startup, carol, alice, rita, dave, frank, erin
):
    cutoff = later(YEARS_LATER) - timedelta(days=settings.RETENTION_INACTIVE_ACCOUNT_DAYS)

    def due() -> set[int]:
        return set(retention.inactive_accounts_due(cutoff).values_list("pk", flat=True))

    application = f.application(sh_pool, carols_startup, carol)
    services.submit_application(application=application, actor=carol)
    assert carol.pk not in due()  # an open application
    services.withdraw_application(application=application, actor=carol)
    assert carol.pk in due()

    award = f.award(sh_pool, carols_startup, carol, alice, rita, years=2, milestone_gated=False)
    assert carol.pk not in due()  # a live award
    first = award.tranches.order_by("sequence")[0]
    services.release_tranche(tranche=first, actor=dave, today=first.scheduled_date)
    services.pay_tranche(
        tranche=first, actor=frank, payment_reference="SH-RET-1", paid_on=first.scheduled_date
    )
    services.terminate_award(award=award, actor=alice, reason="Stopped.")
    assert carol.pk in due()
    services.demand_recovery(
        award=award, actor=dave, amount=Decimal("1000.00"), due_date=date(2030, 1, 1), reason="Unspent."
    )
    assert carol.pk not in due()  # an open recovery

    # Staff are never due, even never logged in: who approved and paid is part of the financial record.
    assert not {alice.pk, rita.pk, dave.pk, frank.pk, erin.pk} & due()


def test_a_log_in_within_the_retention_keeps_the_account(carol):
    User.objects.filter(pk=carol.pk).update(last_login=later(YEARS_LATER - 10))
    assert retention.apply_retention(now=later(YEARS_LATER)).accounts == []
    assert User.objects.get(pk=carol.pk).username == "carol"
    assert retention.apply_retention(now=later(YEARS_LATER + 1095)).accounts == [carol.pk]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_anonymise_each_row_once(demo):
    reports: list[retention.RetentionReport] = []
    now = later(YEARS_LATER)
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        try:
            reports.append(retention.apply_retention(now=now))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(reports) == 2
    assert sorted(reports[0].applications + reports[1].applications) == sorted(
        a.pk for a in (demo["rejected"], demo["withdrawn"], demo["withdrawn_draft"])
    )
    assert len(reports[0].accounts + reports[1].accounts) == 3
    assert AuditEvent.objects.filter(action="application.anonymise").count() == 3
    assert AuditEvent.objects.filter(action="user.anonymise").count() == 3
    assert AuditEvent.objects.filter(action="retention.run").count() == 2
    assert_invariants()
