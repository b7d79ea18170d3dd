"""Award agreements (§16.2) and reporting duties (§16.3) through the services."""

import io
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile
from pypdf import PdfReader

from grants import audit, selectors, services
from grants.errors import InvalidInput, InvalidTransition, NotPermitted
from grants.models import AuditEvent, AwardAgreement, ReportingDuty, Tranche
from grants.services import agreement_pdf, agreements, reporting
from grants.services.agreements import AgreementNotAccepted
from tests import factories as f
from tests.grants.invariants import refused

D = ReportingDuty.Status
T = Tranche.Status
START = date(2025, 3, 1)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def requirements(sh_pool):
    return f.report_requirements(sh_pool)


@pytest.fixture
def award(requirements, sh_pool, carols_startup, carol, alice, rita):
    """Two years from 1 March 2025: tranche 1 on the start, tranche 2 a year later needing a milestone report;
    the agreement not yet accepted."""
    return f.award(sh_pool, carols_startup, carol, alice, rita, years=2, start=START, accepted=False)


def pdf_text(body: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


# --- The schedule and the agreement -------------------------------------------------------------------------


def test_approval_schedules_the_pools_reports_and_links_the_milestone_tranche(award):
    duties = list(award.reporting_duties.order_by("due_date", "kind"))
    assert [(d.kind, d.due_date) for d in duties] == [
        ("progress", date(2025, 9, 1)),
        ("progress", date(2026, 3, 1)),
        ("progress", date(2026, 9, 1)),
        ("financial", date(2027, 3, 1)),
        ("progress", date(2027, 3, 1)),
    ]
    assert all(d.status == D.DUE and d.pool_id == award.pool_id for d in duties)
    second = award.tranches.get(sequence=2)
    assert second.requires_milestone
    # The progress report due on the tranche's date is the one that unlocks it.
    assert [d.due_date for d in duties if d.tranche_id == second.pk] == [date(2026, 3, 1)]


def test_months_are_added_to_the_last_day_of_short_months():
    assert reporting.add_months(date(2025, 8, 31), 6) == date(2026, 2, 28)
    assert reporting.add_months(date(2023, 8, 31), 6) == date(2024, 2, 29)
    assert reporting.add_months(date(2025, 3, 1), 24) == date(2027, 3, 1)


def test_approval_issues_an_agreement_awaiting_acceptance(award):
    agreement = award.agreement
    assert agreement.status == AwardAgreement.Status.ISSUED
    assert agreement.terms["amount"] == "1000000.00"
    assert agreement.terms["institution"]["credit_code"] == award.institution.credit_code
    assert [t["sequence"] for t in agreement.terms["tranches"]] == [1, 2]
    assert agreement.terms_sha256 == agreements.digest(agreement.terms)
    assert AuditEvent.objects.filter(action="agreement.issue", object_id=str(agreement.pk)).exists()


def test_the_agreement_pdf_says_everything_in_both_languages(award):
    body = agreements.document(award.agreement)
    assert body.startswith(b"%PDF")
    text = pdf_text(body)
    for expected in [
        "Award Agreement",
        "资助协议",
        # the parties, with their credit codes
        "Shanghai Economy Commission",
        "上海市经信委",
        "Carol AI Lab",
        "卡罗尔智能实验室",
        award.institution.credit_code,
        # the amount, in yuan and in 万元
        "CNY 1,000,000.00",
        "100 万元",
        # the schedule: two tranches of 500,000
        "2025-03-01",
        "2026-03-01",
        "CNY 500,000.00",
        "50 万元",
        # the conditions: the pool's cost-share rate, the reports and the milestone they unlock
        "30%",
        "Progress report",
        "进展报告",
        "财务报告",
        "2025-09-01",
        "2027-03-01",
        "协议条款",
        award.agreement.terms_sha256,
    ]:
        assert expected in text, expected


def test_the_pdf_embeds_its_cjk_font_and_is_the_same_bytes_each_time(award):
    body = agreements.document(award.agreement)
    assert agreements.document(award.agreement) == body
    fonts: set[str] = set()
    for page in PdfReader(io.BytesIO(body)).pages:
        resources: Any = page["/Resources"]
        fonts |= {str(font.get_object()["/BaseFont"]) for font in resources["/Font"].values()}
    assert any("AgreementFont" in name or "WenQuanYi" in name for name in fonts), fonts
    assert b"/FontFile2" in body  # the TrueType program is in the file: every reader shows the Chinese


def test_a_missing_font_says_what_to_install(award, settings):
    settings.AGREEMENT_FONT = "/nonexistent/font.ttc"
    agreement_pdf._register_font.cache_clear()
    try:
        with pytest.raises(ImproperlyConfigured, match="fonts-wqy-microhei"):
            agreements.document(award.agreement)
    finally:
        agreement_pdf._register_font.cache_clear()


# --- Acceptance and the release gate ------------------------------------------------------------------------


def test_no_tranche_is_released_before_the_agreement_is_accepted(award, dave):
    first = award.tranches.get(sequence=1)
    with refused(AgreementNotAccepted) as info:
        services.release_tranche(tranche=first, actor=dave, today=START)
    assert info.value.code == "agreement_not_accepted"
    assert "accept it in the portal" in info.value.message
    assert award.reference in info.value.message
    # The daily job leaves it alone too.
    assert services.release_due_tranches(today=START) == []
    first.refresh_from_db()
    assert first.status == T.PLANNED


def test_the_applicant_accepts_once_and_the_acceptance_is_audited(award, carol, dave):
    token = audit.remote_addr.set("203.0.113.7")
    try:
        agreement = agreements.accept_agreement(agreement=award.agreement, actor=carol)
    finally:
        audit.remote_addr.reset(token)
    agreement.refresh_from_db()
    assert agreement.status == AwardAgreement.Status.ACCEPTED
    assert agreement.accepted_by == carol
    assert agreement.accepted_from == "203.0.113.7"
    event = AuditEvent.objects.get(action="agreement.accept")
    assert event.actor == carol and event.remote_addr == "203.0.113.7"
    before, after = event.before or {}, event.after or {}
    assert after["terms_sha256"] == agreement.terms_sha256
    assert before["status"] == "issued" and after["status"] == "accepted"
    with refused(InvalidTransition):
        agreements.accept_agreement(agreement=agreement, actor=carol)
    # Now the first tranche is released.
    services.release_tranche(tranche=award.tranches.get(sequence=1), actor=dave, today=START)
    assert award.tranches.get(sequence=1).status == T.PAYABLE


@pytest.mark.parametrize("who", ["alice", "bob", "dave", "erin", "rita"])
def test_only_a_member_of_the_institution_accepts(award, who, request):
    user = request.getfixturevalue(who)
    with refused(NotPermitted):
        agreements.accept_agreement(agreement=award.agreement, actor=user)


# --- Reporting duties ---------------------------------------------------------------------------------------


def _first_progress(award):
    return award.reporting_duties.filter(kind="progress").order_by("due_date").first()


def _gating(award):
    return award.reporting_duties.get(tranche__sequence=2)


def test_a_report_must_answer_the_form(award, carol):
    duty = _first_progress(award)
    with refused(InvalidInput) as info:
        services_submit(duty, carol, {"gpu_hours": "many", "colour": "blue"})
    assert set(info.value.fields) == {"progress", "gpu_hours", "colour"}
    assert info.value.fields["progress"] == ["Required."]


def services_submit(duty, actor, answers, uploads=()):
    return reporting.submit_report(duty=duty, actor=actor, answers=answers, uploads=uploads)


def test_the_lifecycle_submit_return_resubmit_accept(award, carol, alice):
    duty = _first_progress(award)
    services_submit(duty, carol, {"progress": "Trained the base model.", "gpu_hours": "1,200"})
    duty.refresh_from_db()
    assert duty.status == D.SUBMITTED
    assert duty.answers == {"progress": "Trained the base model.", "gpu_hours": "1200"}
    assert duty.submitted_by == carol
    with refused(InvalidInput) as info:
        reporting.decide_report(duty=duty, actor=alice, accept=False, comment=" ")
    assert "comment" in info.value.fields
    reporting.decide_report(duty=duty, actor=alice, accept=False, comment="Say which benchmarks you ran.")
    duty.refresh_from_db()
    assert duty.status == D.RETURNED and duty.comment == "Say which benchmarks you ran."
    services_submit(duty, carol, {"progress": "Trained the base model; MMLU 71."})
    reporting.decide_report(duty=duty, actor=alice, accept=True)
    duty.refresh_from_db()
    assert duty.status == D.ACCEPTED and duty.decided_by == alice
    actions = list(
        AuditEvent.objects.filter(object_type="reportingduty", object_id=str(duty.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["report.submit", "report.return", "report.submit", "report.accept"]
    with refused(InvalidTransition):
        reporting.decide_report(duty=duty, actor=alice, accept=True)


@pytest.mark.parametrize(
    ("who", "step"),
    [("alice", "submit"), ("bob", "submit"), ("dave", "submit"), ("carol", "accept"), ("bob", "accept")],
)
def test_who_takes_each_step(award, carol, who, step, request):
    duty = _first_progress(award)
    user = request.getfixturevalue(who)
    if step == "accept":
        services_submit(duty, carol, {"progress": "Done."})
        with refused(NotPermitted):
            reporting.decide_report(duty=duty, actor=user, accept=True)
    else:
        with refused(NotPermitted):
            services_submit(duty, user, {"progress": "Done."})


def test_a_financial_report_needs_its_document_checked_like_an_attachment(award, carol):
    duty = award.reporting_duties.get(kind="financial")
    with refused(InvalidInput) as info:
        services_submit(duty, carol, {"spent": "480000"})
    assert "file" in info.value.fields
    with refused(InvalidInput):
        services_submit(
            duty, carol, {"spent": "480000"}, [SimpleUploadedFile("costs.pdf", b"MZ\x90\x00 not a pdf")]
        )
    services_submit(duty, carol, {"spent": "480,000"}, [SimpleUploadedFile("costs.pdf", PDF)])
    duty.refresh_from_db()
    assert duty.answers == {"spent": "480000.00"}
    (attachment,) = duty.attachments.all()
    assert attachment.original_name == "costs.pdf" and attachment.content_type == "application/pdf"
    attachment.file.delete(save=False)


def test_accepting_the_gating_report_releases_the_milestone_tranche(award, carol, alice, dave):
    agreements.accept_agreement(agreement=award.agreement, actor=carol)
    second = award.tranches.get(sequence=2)
    with refused(InvalidInput) as info:
        services.release_tranche(tranche=second, actor=dave, today=date(2026, 3, 2))
    assert "unlocked by the Progress report due 2026-03-01, which is due" in info.value.message
    duty = _gating(award)
    services_submit(duty, carol, {"progress": "Year one done."})
    reporting.decide_report(duty=duty, actor=alice, accept=True, today=date(2026, 3, 2))
    second.refresh_from_db()
    assert second.status == T.PAYABLE
    assert AuditEvent.objects.filter(action="tranche.release", object_id=str(second.pk), actor=alice).exists()


def test_the_daily_job_releases_a_tranche_whose_report_was_accepted_before_its_date(award, carol, alice):
    agreements.accept_agreement(agreement=award.agreement, actor=carol)
    duty = _gating(award)
    services_submit(duty, carol, {"progress": "Early."})
    reporting.decide_report(duty=duty, actor=alice, accept=True, today=date(2026, 1, 10))
    second = award.tranches.get(sequence=2)
    assert Tranche.objects.get(pk=second.pk).status == T.PLANNED  # not yet its date
    released = services.release_due_tranches(today=date(2026, 3, 1))
    assert second.pk in released


def test_milestone_reports_still_unlock_a_tranche(award, carol, alice, dave):
    """Duties extend milestone reports: a tranche needing one is unlocked by either."""
    agreements.accept_agreement(agreement=award.agreement, actor=carol)
    second = award.tranches.get(sequence=2)
    report = services.submit_milestone_report(tranche=second, actor=carol, summary="Year one done.")
    services.decide_milestone_report(report=report, actor=alice, accept=True, today=date(2026, 3, 1))
    second.refresh_from_db()
    assert second.status == T.PAYABLE


def test_overdue_duties_are_those_still_owed_after_their_date(award, carol, alice, erin, bob):
    today = date(2026, 3, 15)
    first, second = award.reporting_duties.filter(kind="progress").order_by("due_date")[:2]
    services_submit(second, carol, {"progress": "On time."})
    overdue = selectors.overdue_duties(selectors.reporting_duties(alice), today=today)
    assert list(overdue) == [first]
    assert selectors.is_overdue(first, today) and not selectors.is_overdue(first, first.due_date)
    # A returned report is owed again.
    reporting.decide_report(duty=second, actor=alice, accept=False, comment="Add the figures.")
    assert list(selectors.overdue_duties(selectors.reporting_duties(erin), today=today)) == [first, second]
    assert not selectors.overdue_duties(selectors.reporting_duties(bob), today=today).exists()
    # Reminders ask what falls due within a window.
    soon = selectors.outstanding_duties(due_by=date(2026, 9, 1) + timedelta(days=0))
    assert {d.due_date for d in soon} == {date(2025, 9, 1), date(2026, 3, 1), date(2026, 9, 1)}


def test_a_terminated_award_owes_no_more_reports(award, carol, alice):
    services.terminate_award(award=award, actor=alice, reason="Project abandoned.")
    assert not selectors.overdue_duties(today=date(2030, 1, 1)).exists()
    with refused(InvalidInput):
        services_submit(_first_progress(award), carol, {"progress": "Late."})


def test_a_pool_without_requirements_issues_an_agreement_without_reports(
    sh_pool, carols_startup, carol, alice, rita
):
    award = f.award(sh_pool, carols_startup, carol, alice, rita, accepted=False)
    assert not award.reporting_duties.exists()
    assert "本资金池不要求定期报告" in pdf_text(agreements.document(award.agreement))
    assert Decimal(award.agreement.terms["amount"]) == award.amount
