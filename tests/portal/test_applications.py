"""Open calls, drafts, submission with every failed rule at once, withdrawal, the timeline, the award."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from grants import services
from grants.models import Application, AuditEvent, FundingPool, MilestoneReport
from tests import factories as f
from tests.portal.conftest import PDF

pytestmark = pytest.mark.django_db


def draft_data(**overrides):
    return {
        "title": "GPU rental for a vision model",
        "summary": "Rent 64 GPUs for a year.",
        "eligible_cost": "10000000.00",
        "requested_amount": "3000000.00",
        "duration_years": "2",
        "proposed_start": "2025-09-01",
        **overrides,
    }


# --- calls ----------------------------------------------------------------------------------------------------


def test_open_calls_list_shows_open_pools_only(sh_pool, sh_programme):
    closed = f.pool(sh_programme, code="MDL", name_en="AI models", accepting_applications=False)
    later = f.pool(sh_programme, code="DAT", name_en="Datasets", opens_at=timezone.now() + timedelta(days=3))
    html = Client().get(reverse("portal:calls")).content.decode()
    assert "Computing power" in html
    assert closed.name_en not in html and later.name_en not in html
    assert Client().get(reverse("portal:call", args=[closed.pk])).status_code == 404


def test_a_call_shows_its_rules_and_deadline(sh_programme):
    pool = f.pool(
        sh_programme,
        code="RIN",
        name_en="Research institutions",
        max_rate=Decimal("0.50"),
        rate_by_type={"startup": "0.60"},
        max_per_award=Decimal("5000000"),
        min_duration_years=3,
        max_duration_years=5,
        eligible_types=["research", "university"],
        closes_at=timezone.now() + timedelta(days=10),
    )
    html = Client().get(reverse("portal:call", args=[pool.pk])).content.decode()
    assert "50% of the eligible project cost" in html
    assert "60% for: startup" in html
    assert "CNY 5,000,000.00" in html
    assert "3 to 5 years" in html
    assert "research institute, university" in html
    assert timezone.localtime(pool.closes_at).strftime("%Y-%m-%d %H:%M") in html


# --- drafts ---------------------------------------------------------------------------------------------------


def test_a_member_creates_a_draft(carol_client, carols_startup, sh_pool):
    response = carol_client.post(
        reverse("portal:application_create", args=[sh_pool.pk]), draft_data(institution=carols_startup.pk)
    )
    application = Application.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "portal:application", args=[application.pk]
    )
    assert application.status == "draft" and application.requested_amount == Decimal("3000000.00")
    assert application.institution == carols_startup and application.reference is None


def test_a_draft_form_with_bad_amounts_shows_errors_next_to_the_fields(carol_client, carols_startup, sh_pool):
    response = carol_client.post(
        reverse("portal:application_create", args=[sh_pool.pk]),
        draft_data(institution=carols_startup.pk, requested_amount="-5", eligible_cost="lots", title=""),
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert set(errors) == {"requested_amount", "eligible_cost", "title"}
    html = response.content.decode()
    assert 'id="id_requested_amount-error"' in html and 'href="#id_requested_amount"' in html
    assert not Application.objects.exists()


def test_one_cannot_apply_for_another_institution(carol_client, carols_startup, mallorys_firm, sh_pool):
    response = carol_client.post(
        reverse("portal:application_create", args=[sh_pool.pk]), draft_data(institution=mallorys_firm.pk)
    )
    assert response.status_code == 400
    assert "institution" in response.context["form"].errors
    assert not Application.objects.exists()


def test_without_an_institution_the_user_is_sent_to_register_one(mallory_client, sh_pool):
    response = mallory_client.get(reverse("portal:application_create", args=[sh_pool.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("portal:institution_create")


def test_editing_a_draft(carol_client, draft):
    url = reverse("portal:application_edit", args=[draft.pk])
    assert carol_client.get(url).context["form"].initial["title"] == draft.title
    response = carol_client.post(url, draft_data(title="Bigger cluster", requested_amount="2500000"))
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.title == "Bigger cluster" and draft.requested_amount == Decimal("2500000")


def test_a_submitted_application_cannot_be_edited(carol_client, draft, carol):
    services.submit_application(application=draft, actor=carol)
    response = carol_client.post(
        reverse("portal:application_edit", args=[draft.pk]), draft_data(title="Changed")
    )
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.title != "Changed"


def test_deleting_a_draft_asks_first(carol_client, draft):
    url = reverse("portal:application_delete", args=[draft.pk])
    assert "Delete this draft?" in carol_client.get(url).content.decode()
    assert Application.objects.filter(pk=draft.pk).exists()
    assert carol_client.post(url).status_code == 302
    assert not Application.objects.filter(pk=draft.pk).exists()


def test_a_submitted_application_cannot_be_deleted(carol_client, draft, carol):
    services.submit_application(application=draft, actor=carol)
    response = carol_client.post(reverse("portal:application_delete", args=[draft.pk]))
    assert response.status_code == 400
    assert "withdraw it instead" in response.content.decode()
    assert Application.objects.filter(pk=draft.pk).exists()


# --- another institution's application is 404 everywhere -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("portal:application", "get"),
        ("portal:application_edit", "get"),
        ("portal:application_edit", "post"),
        ("portal:application_delete", "post"),
        ("portal:application_submit", "post"),
        ("portal:application_withdraw", "post"),
        ("portal:attachment_add", "post"),
    ],
)
def test_another_institutions_application_is_not_found(mallory_client, mallorys_firm, draft, name, method):
    response = getattr(mallory_client, method)(reverse(name, args=[draft.pk]), draft_data())
    assert response.status_code == 404
    draft.refresh_from_db()
    assert draft.status == "draft" and draft.title == "GPU rental for model training"


def test_another_institutions_application_is_not_listed(mallory_client, mallorys_firm, draft):
    assert draft.title not in mallory_client.get(reverse("portal:applications")).content.decode()


# --- submission -----------------------------------------------------------------------------------------------


def test_submitting_gives_a_reference_and_the_status(carol_client, draft):
    response = carol_client.post(reverse("portal:application_submit", args=[draft.pk]), follow=True)
    draft.refresh_from_db()
    assert draft.status == "submitted" and draft.reference == "SH-2025-CMP-00001"
    html = response.content.decode()
    assert "Its reference is SH-2025-CMP-00001" in html
    assert '<strong class="status status--submitted" id="application-status">submitted</strong>' in html


def test_every_failed_rule_is_shown_at_once_next_to_its_field(carol_client, carols_startup, carol, sh_pool):
    sh_pool.max_per_award = Decimal("2000000")
    sh_pool.eligible_types = ["university"]
    sh_pool.save()
    application = f.application(sh_pool, carols_startup, carol, requested="4000000", cost="10000000", years=7)
    response = carol_client.post(reverse("portal:application_submit", args=[application.pk]))
    assert response.status_code == 400
    application.refresh_from_db()
    assert application.status == "draft" and application.reference is None
    failures = response.context["failures"]
    assert set(failures) == {"institution", "requested_amount", "duration_years"}
    assert failures["institution"] == ["Institutions of this type are not eligible for this call."]
    rate_message, per_award_message = failures["requested_amount"]
    # The service words the rate "30.0000%" (it formats numeric(5,4) with :g); the figure that matters is the cap.
    assert rate_message.endswith("of the eligible cost may be requested: CNY 3,000,000.00.")
    assert per_award_message == "At most CNY 2,000,000.00 may be requested per award."
    assert failures["duration_years"] == ["The duration must be between 1 and 5 years."]
    html = response.content.decode()
    assert "The application does not meet 4 eligibility rule(s)." in html
    for row in ("institution", "requested_amount", "duration_years"):
        assert f'href="#row-{row}"' in html  # the summary links to the row
        assert f'id="error-{row}"' in html  # the message sits in the row
    row = html[html.index('id="row-requested_amount"') :]
    row = row[: row.index("</tr>")]
    assert "of the eligible cost may be requested" in row and "may be requested per award" in row
    assert "<title>Error:" in html


def test_a_closed_window_is_shown_against_the_call(carol_client, draft, sh_pool):
    sh_pool.accepting_applications = False
    sh_pool.save()
    response = carol_client.post(reverse("portal:application_submit", args=[draft.pk]))
    assert response.status_code == 400
    assert response.context["failures"] == {"pool": ["This call is not open for applications now."]}


def test_a_second_open_application_to_the_same_call_is_refused(
    carol_client, draft, carol, sh_pool, carols_startup
):
    services.submit_application(application=draft, actor=carol)
    second = f.application(sh_pool, carols_startup, carol)
    response = carol_client.post(reverse("portal:application_submit", args=[second.pk]))
    assert response.status_code == 400
    assert response.context["failures"] == {
        "pool": ["The institution already has an open application to this pool."]
    }


def test_submission_needs_a_post(carol_client, draft):
    assert carol_client.get(reverse("portal:application_submit", args=[draft.pk])).status_code == 405


def test_withdrawing_asks_first_then_withdraws(carol_client, draft, carol):
    services.submit_application(application=draft, actor=carol)
    url = reverse("portal:application_withdraw", args=[draft.pk])
    assert "Withdraw this application?" in carol_client.get(url).content.decode()
    assert carol_client.post(url).status_code == 302
    draft.refresh_from_db()
    assert draft.status == "withdrawn"
    assert carol_client.post(url).status_code == 400  # a withdrawn application cannot be withdrawn again


def test_the_timeline_tells_the_story_without_naming_officers(carol_client, draft, carol, alice, rita):
    services.submit_application(application=draft, actor=carol)
    services.assign_reviewers(application=draft, actor=alice, reviewers=[rita])
    services.return_application(application=draft, actor=alice, note="Add the GPU quote.")
    page = carol_client.get(reverse("portal:application", args=[draft.pk])).content.decode()
    html = page[page.index('<ol class="timeline">') :]
    labels = ["Draft created", "Submitted", "Under review", "Returned for changes"]
    positions = [html.index(label) for label in labels]
    assert positions == sorted(positions)
    assert "Add the GPU quote." in html
    assert "the city&#x27;s grant office" in html
    assert "alice" not in page and "rita" not in page


def test_a_returned_application_is_edited_and_submitted_again(carol_client, draft, carol, alice):
    services.submit_application(application=draft, actor=carol)
    services.return_application(application=draft, actor=alice, note="Lower the amount.")
    response = carol_client.post(
        reverse("portal:application_edit", args=[draft.pk]), draft_data(requested_amount="900000")
    )
    assert response.status_code == 302
    carol_client.post(reverse("portal:application_submit", args=[draft.pk]))
    draft.refresh_from_db()
    assert draft.status == "submitted" and draft.reference == "SH-2025-CMP-00001"


# --- award, tranches, milestone reports ----------------------------------------------------------------------


@pytest.fixture
def award(sh_pool, carols_startup, carol, alice, rita):
    return f.award(sh_pool, carols_startup, carol, alice, rita, requested="3000000", years=3)


def test_the_award_and_its_tranche_schedule_are_shown(carol_client, award):
    html = carol_client.get(reverse("portal:application", args=[award.application_id])).content.decode()
    assert award.reference in html
    assert "Payment schedule" in html
    for tranche in award.tranches.all():
        assert f'<th scope="row"><span class="stack-label">Tranche </span>{tranche.sequence}</th>' in html
    assert html.count("CNY 1,000,000.00") == 3
    assert "Approved: award made" in html


def test_a_milestone_report_is_submitted_for_a_tranche_that_needs_one(carol_client, award):
    tranche = award.tranches.filter(requires_milestone=True).order_by("sequence").first()
    assert tranche is not None
    url = reverse("portal:milestone_report", args=[award.application_id, tranche.pk])
    prefix = f"tranche-{tranche.pk}"
    empty = carol_client.post(url, {f"{prefix}-summary": ""})
    assert empty.status_code == 400 and not MilestoneReport.objects.exists()
    upload = SimpleUploadedFile("evidence.pdf", PDF, content_type="application/pdf")
    response = carol_client.post(
        url, {f"{prefix}-summary": "Cluster running.", f"{prefix}-attachment": upload}
    )
    assert response.status_code == 302
    report = MilestoneReport.objects.get(tranche=tranche)
    assert report.summary == "Cluster running." and report.attachment
    file_url = reverse("portal:milestone_file", args=[award.application_id, report.pk])
    assert b"".join(carol_client.get(file_url).streaming_content) == PDF
    html = carol_client.get(reverse("portal:application", args=[award.application_id])).content.decode()
    assert "Milestone report submitted" in html
    assert f'id="report-{tranche.pk}"' not in html  # no second form while the report waits


def test_a_milestone_report_with_a_disguised_file_is_refused(carol_client, award):
    tranche = award.tranches.filter(requires_milestone=True).first()
    prefix = f"tranche-{tranche.pk}"
    upload = SimpleUploadedFile("evidence.pdf", b"MZ\x90\x00" + b"\x00" * 100, content_type="application/pdf")
    response = carol_client.post(
        reverse("portal:milestone_report", args=[award.application_id, tranche.pk]),
        {f"{prefix}-summary": "Done.", f"{prefix}-attachment": upload},
    )
    assert response.status_code == 400
    assert not MilestoneReport.objects.exists()


def test_another_institution_cannot_report_on_an_award(mallory_client, mallorys_firm, award):
    tranche = award.tranches.first()
    response = mallory_client.post(
        reverse("portal:milestone_report", args=[award.application_id, tranche.pk]),
        {f"tranche-{tranche.pk}-summary": "x"},
    )
    assert response.status_code == 404


def test_the_application_page_does_not_query_per_row(carol_client, award):
    url = reverse("portal:application", args=[award.application_id])
    carol_client.get(url)
    with CaptureQueriesContext(connection) as small:
        carol_client.get(url)
    for _ in range(3):
        AuditEvent.objects.create(
            action="tranche.pay", object_type="award", object_id=str(award.pk), object_repr="x"
        )
    with CaptureQueriesContext(connection) as bigger:
        carol_client.get(url)
    assert len(bigger) == len(small)
    assert FundingPool.objects.count() == 1
