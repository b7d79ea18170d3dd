"""Award agreements and reporting duties through the API: the award's agreement fields, the PDF, acceptance, the
release gate, and the duties' listing and steps (happy path, bad input, another city, a retry, query counts)."""

import io
from datetime import date

import pytest
from pypdf import PdfReader

from grants.models import AuditEvent, AwardAgreement, ReportingDuty, Tranche
from tests import factories as f
from tests.api.conftest import error_shape

D = ReportingDuty.Status


@pytest.fixture
def award(sh_pool, carols_startup, carol, alice, rita):
    """Two years from 1 March 2025 with the pool's reports; the agreement awaits acceptance."""
    f.report_requirements(sh_pool)
    return f.award(
        sh_pool, carols_startup, carol, alice, rita, years=2, start=date(2025, 3, 1), accepted=False
    )


@pytest.fixture
def hz_award(hangzhou, bob):
    programme = f.programme(hangzhou, code="2025H")
    pool = f.pool(programme, code="CMP")
    f.report_requirements(pool)
    henry = f.user("henry")
    harriet = f.user("harriet", roles=("reviewer",), cities=(hangzhou,))
    return f.award(pool, f.institution(hangzhou, henry), henry, bob, harriet, accepted=False)


def test_the_award_says_whether_its_agreement_is_accepted(api, award, carol):
    body = api(carol).get(f"/api/v1/awards/{award.pk}/").json()
    assert body["agreement"]["status"] == "issued"
    assert body["agreement"]["accepted_at"] is None
    assert body["agreement"]["terms_sha256"] == award.agreement.terms_sha256


def test_the_pdf_is_served_to_those_who_see_the_award(api, award, carol, erin, bob):
    response = api(carol).get(f"/api/v1/awards/{award.pk}/agreement.pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert f"award-agreement-{award.reference}.pdf" in response["Content-Disposition"]
    text = PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    assert "资助协议" in text and "Award Agreement" in text and "CNY 1,000,000.00" in text
    assert AuditEvent.objects.filter(action="agreement.download", actor=carol).exists()
    assert api(erin).get(f"/api/v1/awards/{award.pk}/agreement.pdf").status_code == 200
    missing = api(bob).get(f"/api/v1/awards/{award.pk}/agreement.pdf")
    assert missing.status_code == 404 and error_shape(missing.json())


def test_the_first_tranche_waits_for_acceptance(api, award, carol, alice, dave, bob):
    first = award.tranches.get(sequence=1)
    refused = api(dave).post(f"/api/v1/tranches/{first.pk}/release/", {}, format="json")
    assert refused.status_code == 409
    assert refused.json()["code"] == "agreement_not_accepted"
    assert "accept it in the portal" in refused.json()["message"]
    assert Tranche.objects.get(pk=first.pk).status == Tranche.Status.PLANNED

    url = f"/api/v1/awards/{award.pk}/accept-agreement/"
    assert api(bob).post(url, {}, format="json").status_code == 404
    assert api(alice).post(url, {}, format="json").status_code == 403
    accepted = api(carol).post(
        url, {}, format="json", HTTP_IDEMPOTENCY_KEY="accept-1", REMOTE_ADDR="198.51.100.4"
    )
    assert accepted.status_code == 200
    assert accepted.json()["agreement"]["status"] == "accepted"
    assert accepted.json()["agreement"]["accepted_from"] == "198.51.100.4"
    replay = api(carol).post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="accept-1")
    assert replay.json() == accepted.json() and replay["Idempotent-Replayed"] == "true"
    again = api(carol).post(url, {}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
    assert AuditEvent.objects.filter(action="agreement.accept").count() == 1

    released = api(dave).post(f"/api/v1/tranches/{first.pk}/release/", {}, format="json")
    assert released.status_code == 200 and released.json()["status"] == "payable"


def test_an_award_without_agreement_has_nothing_to_accept(api, award, carol):
    AwardAgreement.objects.filter(award=award).delete()
    assert (
        api(carol).post(f"/api/v1/awards/{award.pk}/accept-agreement/", {}, format="json").status_code == 404
    )
    assert api(carol).get(f"/api/v1/awards/{award.pk}/").json()["agreement"] is None


def test_duties_are_listed_in_scope_with_their_form(api, award, hz_award, carol, alice, bob, erin):
    mine = api(carol).get("/api/v1/reporting-duties/").json()
    assert mine["count"] == 5
    first = mine["results"][0]
    assert first["award_reference"] == award.reference and first["due_date"] == "2025-09-01"
    assert [f["name"] for f in first["fields_asked"]] == ["progress", "gpu_hours"]
    assert first["fields_asked"][0]["label_zh"] == "取得的进展"
    assert first["overdue"] is True  # due on 1 September 2025, nothing submitted
    assert api(alice).get("/api/v1/reporting-duties/").json()["count"] == 5
    assert api(bob).get("/api/v1/reporting-duties/").json()["count"] == hz_award.reporting_duties.count()
    assert api(erin).get("/api/v1/reporting-duties/?city=SH&kind=financial").json()["count"] == 1
    assert api(bob).get(f"/api/v1/reporting-duties/{first['id']}/").status_code == 404


def test_the_overdue_filter(api, award, carol, alice):
    overdue = api(alice).get("/api/v1/reporting-duties/?overdue=true").json()
    due_dates = [row["due_date"] for row in overdue["results"]]
    assert due_dates and all(d < date.today().isoformat() for d in due_dates)
    rest = api(alice).get("/api/v1/reporting-duties/?overdue=false").json()
    assert overdue["count"] + rest["count"] == 5


def test_a_report_is_submitted_returned_and_accepted(api, award, carol, alice, bob):
    duty = award.reporting_duties.filter(kind="progress").order_by("due_date").first()
    url = f"/api/v1/reporting-duties/{duty.pk}"
    bad = api(carol).post(f"{url}/submit/", {"answers": {"gpu_hours": "lots"}}, format="json")
    assert bad.status_code == 400 and error_shape(bad.json())
    assert set(bad.json()["fields"]) == {"progress", "gpu_hours"}
    assert api(carol).post(f"{url}/submit/", {"answers": "x"}, format="json").status_code == 400
    assert api(alice).post(f"{url}/submit/", {"answers": {}}, format="json").status_code == 403
    assert api(bob).post(f"{url}/submit/", {"answers": {}}, format="json").status_code == 404

    body = {"answers": {"progress": "Pre-training done.", "gpu_hours": 1200}}
    submitted = api(carol).post(f"{url}/submit/", body, format="json", HTTP_IDEMPOTENCY_KEY="rep-1")
    assert submitted.status_code == 200 and submitted.json()["status"] == "submitted"
    assert submitted.json()["answers"] == {"progress": "Pre-training done.", "gpu_hours": "1200"}
    replay = api(carol).post(f"{url}/submit/", body, format="json", HTTP_IDEMPOTENCY_KEY="rep-1")
    assert replay.json() == submitted.json()

    assert api(carol).post(f"{url}/accept/", {}, format="json").status_code == 403
    no_comment = api(alice).post(f"{url}/return/", {}, format="json")
    assert no_comment.status_code == 400 and "note" in no_comment.json()["fields"]
    returned = api(alice).post(f"{url}/return/", {"note": "Add the benchmarks."}, format="json")
    assert returned.status_code == 200
    assert returned.json()["status"] == "returned" and returned.json()["comment"] == "Add the benchmarks."

    api(carol).post(f"{url}/submit/", {"answers": {"progress": "Benchmarks: MMLU 71."}}, format="json")
    accepted = api(alice).post(f"{url}/accept/", {"note": "Thank you."}, format="json")
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    twice = api(alice).post(f"{url}/accept/", {}, format="json")
    assert twice.status_code == 409 and twice.json()["code"] == "invalid_transition"


def test_the_duty_list_costs_the_same_for_more_rows(api, award, alice, django_assert_max_num_queries):
    api(alice).get("/api/v1/reporting-duties/")  # warm the per-user caches
    with django_assert_max_num_queries(12):
        response = api(alice).get("/api/v1/reporting-duties/")
    assert response.json()["count"] == 5
