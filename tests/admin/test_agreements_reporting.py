"""Award agreements, report requirements and reporting duties in the admin."""

import io
from datetime import date

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from pypdf import PdfReader

from grants.models import ReportField, ReportingDuty, ReportRequirement
from grants.services import agreements, reporting
from tests import factories as f

D = ReportingDuty.Status
pytestmark = pytest.mark.django_db


@pytest.fixture
def award(sh_pool, carols_startup, carol, alice, rita):
    f.report_requirements(sh_pool)
    return f.award(
        sh_pool, carols_startup, carol, alice, rita, years=2, start=date(2025, 3, 1), accepted=False
    )


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_an_officer_configures_a_pools_report_and_its_form(client, alice, sh_pool):
    client.force_login(alice)
    url = reverse("admin:grants_reportrequirement_add")
    assert client.get(url).status_code == 200
    data = {
        "pool": sh_pool.pk,
        "kind": "financial",
        "name_en": "Annual financial statement",
        "name_zh": "年度财务报表",
        "every_months": "12",
        "at_end": "on",
        "fields-TOTAL_FORMS": "1",
        "fields-INITIAL_FORMS": "0",
        "fields-MIN_NUM_FORMS": "0",
        "fields-MAX_NUM_FORMS": "1000",
        "fields-0-position": "1",
        "fields-0-name": "audited_spend",
        "fields-0-label_en": "Audited spend",
        "fields-0-label_zh": "审计支出",
        "fields-0-type": "money",
        "fields-0-required": "on",
    }
    response = client.post(url, data, follow=True)
    assert response.status_code == 200, response.content[:2000]
    requirement = ReportRequirement.objects.get(name_en="Annual financial statement")
    assert requirement.every_months == 12 and requirement.pool == sh_pool
    assert list(ReportField.objects.filter(requirement=requirement).values_list("name", "type")) == [
        ("audited_spend", "money")
    ]


def test_another_citys_officer_cannot_see_the_requirements(client, bob, sh_pool):
    progress, _financial = f.report_requirements(sh_pool)
    client.force_login(bob)
    assert client.get(reverse("admin:grants_reportrequirement_change", args=[progress.pk])).status_code == 404


def test_the_overdue_filter_lists_reports_still_owed(client, alice, award):
    client.force_login(alice)
    url = reverse("admin:grants_reportingduty_changelist")
    response = client.get(url, {"overdue": "yes"})
    assert response.status_code == 200
    shown = {d.pk for d in response.context["cl"].result_list}
    assert shown and all(ReportingDuty.objects.get(pk=pk).due_date < date.today() for pk in shown)
    assert client.get(url, {"overdue": "no"}).status_code == 200


def test_an_officer_returns_then_accepts_a_report(client, alice, carol, award):
    duty = award.reporting_duties.filter(kind="progress").order_by("due_date").first()
    reporting.submit_report(duty=duty, actor=carol, answers={"progress": "Base model trained."})
    client.force_login(alice)
    page = client.get(reverse("admin:grants_reportingduty_change", args=[duty.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Base model trained." in html and "Progress made" in html
    assert reverse("admin:grants_reportingduty_op", args=[duty.pk, "accept"]) in html
    op_return = reverse("admin:grants_reportingduty_op", args=[duty.pk, "return"])
    empty = client.post(op_return, {"note": ""})
    assert empty.status_code == 200 and ReportingDuty.objects.get(pk=duty.pk).status == D.SUBMITTED
    client.post(op_return, {"note": "Name the benchmarks."}, follow=True)
    duty.refresh_from_db()
    assert duty.status == D.RETURNED and duty.comment == "Name the benchmarks."
    reporting.submit_report(duty=duty, actor=carol, answers={"progress": "MMLU 71."})
    done = client.post(
        reverse("admin:grants_reportingduty_op", args=[duty.pk, "accept"]), {"note": ""}, follow=True
    )
    assert ReportingDuty.objects.get(pk=duty.pk).status == D.ACCEPTED
    assert any("done" in m for m in messages_of(done))


def test_finance_sees_reports_but_takes_no_decision(client, dave, carol, award):
    duty = award.reporting_duties.filter(kind="progress").order_by("due_date").first()
    reporting.submit_report(duty=duty, actor=carol, answers={"progress": "Done."})
    client.force_login(dave)
    page = client.get(reverse("admin:grants_reportingduty_change", args=[duty.pk]))
    assert page.status_code == 200
    assert reverse("admin:grants_reportingduty_op", args=[duty.pk, "accept"]) not in page.content.decode()
    refused = client.post(reverse("admin:grants_reportingduty_op", args=[duty.pk, "accept"]), {})
    assert refused.status_code == 403
    assert ReportingDuty.objects.get(pk=duty.pk).status == D.SUBMITTED


def test_the_award_page_shows_the_agreement_and_its_acceptance(client, alice, carol, erin, bob, award):
    client.force_login(alice)
    award_url = reverse("admin:grants_award_change", args=[award.pk])
    assert "awaiting acceptance" in client.get(award_url).content.decode()
    agreements.accept_agreement(agreement=award.agreement, actor=carol)
    html = client.get(award_url).content.decode()
    assert "accepted" in html and "carol" in html
    agreement_url = reverse("admin:grants_awardagreement_change", args=[award.agreement.pk])
    assert agreement_url in html
    pdf = client.get(reverse("admin:grants_awardagreement_pdf", args=[award.agreement.pk]))
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert "资助协议" in PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    client.force_login(erin)
    assert client.get(agreement_url).status_code == 200
    client.force_login(bob)
    assert client.get(agreement_url).status_code == 404
    assert (
        client.get(reverse("admin:grants_awardagreement_pdf", args=[award.agreement.pk])).status_code == 404
    )


def test_the_agreement_list_shows_which_wait_for_acceptance(client, alice, award):
    client.force_login(alice)
    response = client.get(reverse("admin:grants_awardagreement_changelist"), {"status__exact": "issued"})
    assert response.status_code == 200
    assert [a.pk for a in response.context["cl"].result_list] == [award.agreement.pk]
