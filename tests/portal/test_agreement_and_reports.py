"""The award agreement and the reports in the applicant portal."""

import io
from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pypdf import PdfReader

from grants.models import AuditEvent, AwardAgreement, ReportingDuty
from grants.services import reporting
from tests import factories as f
from tests.portal.conftest import PDF

D = ReportingDuty.Status


@pytest.fixture
def award(sh_pool, carols_startup, carol, alice, rita):
    f.report_requirements(sh_pool)
    return f.award(
        sh_pool, carols_startup, carol, alice, rita, years=2, start=date(2025, 3, 1), accepted=False
    )


def page(client, award) -> str:
    return client.get(reverse("portal:application", args=[award.application_id])).content.decode()


def test_the_application_page_asks_for_the_agreement_and_lists_the_reports(carol_client, award):
    html = page(carol_client, award)
    assert "Awaiting your acceptance" in html
    assert reverse("portal:agreement", args=[award.application_id]) in html
    assert reverse("portal:agreement_pdf", args=[award.application_id]) in html
    assert html.count('id="duty-') == 5
    assert "2025-09-01" in html and "overdue" in html
    assert "unlocks tranche 2" in html


def test_the_applicant_downloads_the_agreement(carol_client, award, carol):
    response = carol_client.get(reverse("portal:agreement_pdf", args=[award.application_id]))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    assert "卡罗尔智能实验室" in text and award.institution.credit_code in text
    assert AuditEvent.objects.filter(action="agreement.download", actor=carol).exists()


def test_accepting_needs_the_box_ticked_and_is_audited_with_the_address(carol_client, award, carol):
    url = reverse("portal:agreement", args=[award.application_id])
    form = carol_client.get(url)
    assert form.status_code == 200 and b'id="agreement-accept"' in form.content
    unticked = carol_client.post(url, {})
    assert unticked.status_code == 400 and b"Tick the box" in unticked.content
    assert AwardAgreement.objects.get(award=award).status == "issued"
    accepted = carol_client.post(url, {"confirm": "on"}, REMOTE_ADDR="192.0.2.44")
    assert accepted.status_code == 302
    agreement = AwardAgreement.objects.get(award=award)
    assert agreement.status == "accepted" and agreement.accepted_by == carol
    assert agreement.accepted_from == "192.0.2.44"
    event = AuditEvent.objects.get(action="agreement.accept")
    assert event.actor == carol and event.remote_addr == "192.0.2.44"
    html = page(carol_client, award)
    assert "Award agreement accepted" in html  # the history
    assert 'id="agreement-review"' not in html
    again = carol_client.post(url, {"confirm": "on"})
    assert again.status_code == 400 and b'id="agreement-accept"' not in again.content
    assert AuditEvent.objects.filter(action="agreement.accept").count() == 1


def test_another_institution_sees_no_agreement(mallory_client, mallorys_firm, award):
    for name in ("agreement", "agreement_pdf"):
        assert mallory_client.get(reverse(f"portal:{name}", args=[award.application_id])).status_code == 404
    assert (
        mallory_client.post(
            reverse("portal:agreement", args=[award.application_id]), {"confirm": "on"}
        ).status_code
        == 404
    )
    assert AwardAgreement.objects.get(award=award).status == "issued"


def test_a_report_is_filled_in_returned_and_submitted_again(carol_client, award, alice):
    duty = award.reporting_duties.filter(kind="progress").order_by("due_date").first()
    url = reverse("portal:report", args=[award.application_id, duty.pk])
    form = carol_client.get(url).content.decode()
    assert "Progress made" in form and "GPU hours used" in form
    bad = carol_client.post(url, {"progress": "Done.", "gpu_hours": "a lot"})
    assert bad.status_code == 400 and "Enter a number." in bad.content.decode()
    ok = carol_client.post(url, {"progress": "Base model trained.", "gpu_hours": "1200"})
    assert ok.status_code == 302
    duty.refresh_from_db()
    assert duty.status == D.SUBMITTED and duty.answers["gpu_hours"] == "1200"
    reporting.decide_report(duty=duty, actor=alice, accept=False, comment="Name the benchmarks.")
    again = carol_client.get(url).content.decode()
    assert "Name the benchmarks." in again and "Base model trained." in again
    assert carol_client.post(url, {"progress": "MMLU 71."}).status_code == 302
    duty.refresh_from_db()
    assert duty.status == D.SUBMITTED


def test_a_financial_report_takes_its_document(carol_client, award):
    duty = award.reporting_duties.get(kind="financial")
    url = reverse("portal:report", args=[award.application_id, duty.pk])
    missing = carol_client.post(url, {"spent": "480000"})
    assert missing.status_code == 400 and b"supporting document" in missing.content
    disguised = SimpleUploadedFile("costs.pdf", b"MZ\x90\x00" + b"\x00" * 100)
    assert carol_client.post(url, {"spent": "480000", "file": disguised}).status_code == 400
    upload = SimpleUploadedFile("costs.pdf", PDF, content_type="application/pdf")
    assert carol_client.post(url, {"spent": "480000", "file": upload}).status_code == 302
    (attachment,) = ReportingDuty.objects.get(pk=duty.pk).attachments.all()
    file_url = reverse("portal:report_file", args=[award.application_id, duty.pk, attachment.pk])
    assert b"".join(carol_client.get(file_url).streaming_content) == PDF


def test_another_institution_cannot_report(mallory_client, mallorys_firm, award):
    duty = award.reporting_duties.first()
    url = reverse("portal:report", args=[award.application_id, duty.pk])
    assert mallory_client.post(url, {"progress": "x"}).status_code == 404
    assert ReportingDuty.objects.get(pk=duty.pk).status == D.DUE


def test_the_page_in_chinese(carol_client, award):
    html = carol_client.get(f"/zh-hans/applications/{award.application_id}/").content.decode()
    assert "资助协议" in html
    assert "进展报告" in html


def test_the_reports_do_not_query_per_row(carol_client, award, sh_pool, carols_startup, carol, alice, rita):
    url = reverse("portal:application", args=[award.application_id])
    carol_client.get(url)
    with CaptureQueriesContext(connection) as five:
        carol_client.get(url)
    duty = award.reporting_duties.first()
    for n in range(2, 5):
        ReportingDuty.objects.create(
            award=award,
            pool=sh_pool,
            requirement=duty.requirement,
            kind=duty.kind,
            sequence=50 + n,
            due_date=date(2027, n, 1),
        )
    with CaptureQueriesContext(connection) as eight:
        carol_client.get(url)
    assert len(eight) == len(five)
