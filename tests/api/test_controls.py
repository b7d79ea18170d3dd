"""The controls of issue #14 through the API: duplicate-funding flags in the application's output, their listing
and acknowledgement, approval refused until they are acknowledged, the yearly maximum on submission; the
reviewer's conflict-of-interest declaration before the application's content."""

from datetime import date
from decimal import Decimal as D

import pytest

from grants import services
from grants.models import AuditEvent, DuplicateFlag, FundingPool, Review
from grants.roles import Role
from tests import controls as c
from tests import factories as f
from tests.api.conftest import error_shape

FLAG_KEYS = {
    "id",
    "reference",
    "city",
    "status",
    "amount",
    "similarity",
    "found_on",
    "acknowledged",
    "acknowledged_at",
}


@pytest.fixture
def dup(sh_pool, hangzhou, carols_startup, carol, alice, bob, rita):
    return c.cross_city(
        sh_pool=sh_pool,
        hangzhou=hangzhou,
        institution=carols_startup,
        applicant=carol,
        alice=alice,
        bob=bob,
        rita=rita,
    )


def test_the_application_shows_its_flags_with_the_other_programmes_reference_city_status_and_amount(
    api, dup, bob
):
    body = api(bob).get(f"/api/v1/applications/{dup.hz_app.pk}/").json()
    (flag,) = body["duplicate_flags"]
    assert set(flag) == FLAG_KEYS  # no title, summary or files of the other city's application
    assert (flag["reference"], flag["city"], flag["status"], flag["amount"]) == (
        dup.sh_award.reference,
        "SH",
        "award_active",
        "3000000.00",
    )
    assert flag["acknowledged"] is False
    listed = api(bob).get("/api/v1/applications/").json()["results"]
    assert [a["duplicate_flags"][0]["reference"] for a in listed if a["id"] == dup.hz_app.pk] == [
        dup.sh_award.reference
    ]


def test_the_application_list_reads_the_flags_in_one_query_per_page(
    api, dup, bob, carol, carols_startup, django_assert_max_num_queries
):
    url = "/api/v1/applications/"
    api(bob).get(url)
    with django_assert_max_num_queries(12) as counted:
        api(bob).get(url)
    base = len(counted.captured_queries)
    for code in ("C2", "C3", "C4"):  # three more flagged applications, each with several flags
        app = c.apply(
            f.pool(dup.hz_pool.programme, code=code, registration_required=False),
            carols_startup,
            carol,
            c.HZ_PROJECT,
        )
        services.submit_application(application=app, actor=carol)
    assert DuplicateFlag.objects.count() > 6
    with django_assert_max_num_queries(base):
        rows = api(bob).get(url).json()["results"]
    assert len(rows) == 4 and all(row["duplicate_flags"] for row in rows)


def test_approval_is_refused_until_the_flag_is_acknowledged(api, dup, bob, alice, dave):
    approve = f"/api/v1/applications/{dup.hz_app.pk}/approve/"
    refused = api(bob).post(approve, {}, format="json")
    assert refused.status_code == 409 and error_shape(refused.json())
    assert refused.json()["code"] == "duplicate_funding_unacknowledged"
    assert refused.json()["details"]["flags"][0]["reference"] == dup.sh_award.reference

    flag = DuplicateFlag.objects.get(application=dup.hz_app)
    url = f"/api/v1/duplicate-flags/{flag.pk}/acknowledge/"
    missing = api(bob).post(url, {}, format="json")
    assert missing.status_code == 400 and "reason" in missing.json()["fields"]
    assert api(alice).post(url, {"reason": "r"}, format="json").status_code == 404  # another city's flag
    done = api(bob).post(
        url, {"reason": "Hangzhou pays fine-tuning only."}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert done.status_code == 200, done.json()
    assert (
        done.json()["acknowledged_by"] == bob.pk
        and done.json()["reason"] == "Hangzhou pays fine-tuning only."
    )
    assert done.json()["other"]["reference"] == dup.sh_award.reference
    replay = api(bob).post(
        url, {"reason": "Hangzhou pays fine-tuning only."}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert replay.status_code == 200 and replay.json() == done.json()
    again = api(bob).post(url, {"reason": "again"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "duplicate_flag_already_acknowledged"
    assert AuditEvent.objects.filter(action="duplicate_flag.acknowledge").count() == 1

    approved = api(bob).post(approve, {}, format="json")
    assert approved.status_code == 201, approved.json()


def test_flags_are_listed_for_the_staff_of_the_applications_city(api, dup, alice, bob, carol, erin, rita):
    flag = DuplicateFlag.objects.get(application=dup.hz_app)
    seen = {
        name: [row["id"] for row in api(user).get("/api/v1/duplicate-flags/").json()["results"]]
        for name, user in {"alice": alice, "bob": bob, "carol": carol, "erin": erin, "rita": rita}.items()
    }
    assert seen == {"alice": [], "bob": [flag.pk], "carol": [], "erin": [flag.pk], "rita": []}
    assert (
        api(erin).post(f"/api/v1/duplicate-flags/{flag.pk}/acknowledge/", {"reason": "r"}).status_code == 403
    )


def test_submission_refuses_beyond_the_institutions_yearly_maximum(
    api, sh_pool, carols_startup, carol, alice, rita
):
    FundingPool.objects.filter(pk=sh_pool.pk).update(max_per_institution_year=D("1500000"))
    first = f.application(sh_pool, carols_startup, carol, requested="1000000", start=date(2025, 3, 1))
    f.reviewed(first, carol, alice, rita)
    assert api(alice).post(f"/api/v1/applications/{first.pk}/approve/", {}, format="json").status_code == 201
    second = f.application(sh_pool, carols_startup, carol, requested="1000000", start=date(2025, 6, 1))
    response = api(carol).post(f"/api/v1/applications/{second.pk}/submit/")
    assert response.status_code == 400 and response.json()["code"] == "ineligible"
    assert [r["code"] for r in response.json()["details"]["rules"]] == ["over_institution_year"]


# --- Conflict of interest -------------------------------------------------------------------------------------


@pytest.fixture
def assigned(sh_pool, carols_startup, carol, alice, rita, api):
    draft = f.application(sh_pool, carols_startup, carol)
    api(carol).post(f"/api/v1/applications/{draft.pk}/submit/")
    api(alice).post(
        f"/api/v1/applications/{draft.pk}/assign-reviewers/", {"reviewers": [rita.pk]}, format="json"
    )
    return Review.objects.get(application=draft, reviewer=rita)


def test_a_reviewer_declares_before_reading_the_application(api, assigned, rita):
    app_url = f"/api/v1/applications/{assigned.application_id}/"
    assert api(rita).get(app_url).status_code == 404
    before = api(rita).get(f"/api/v1/reviews/{assigned.pk}/").json()
    # Who applied, so the reviewer can tell; not what they applied with.
    assert before["institution_credit_code"] == assigned.application.institution.credit_code
    assert before["declaration"] == "" and "title" not in before
    review = {"technical_merit": 4, "feasibility": 4, "impact": 4, "recommendation": "fund"}
    early = api(rita).post(f"/api/v1/applications/{assigned.application_id}/review/", review, format="json")
    assert early.status_code == 404  # the application is not in their scope yet

    url = f"/api/v1/reviews/{assigned.pk}/declare/"
    assert api(rita).post(url, {}, format="json").status_code == 400
    declared = api(rita).post(url, {"conflict": False}, format="json", HTTP_IDEMPOTENCY_KEY="d1")
    assert declared.status_code == 200 and declared.json()["declaration"] == "no_conflict"
    replay = api(rita).post(url, {"conflict": False}, format="json", HTTP_IDEMPOTENCY_KEY="d1")
    assert replay.status_code == 200 and replay.json() == declared.json()
    twice = api(rita).post(url, {"conflict": True, "reason": "x"}, format="json")
    assert twice.status_code == 409 and twice.json()["code"] == "conflict_already_declared"
    assert api(rita).get(app_url).status_code == 200
    done = api(rita).post(f"/api/v1/applications/{assigned.application_id}/review/", review, format="json")
    assert done.status_code == 200, done.json()


def test_a_recusal_through_the_api(api, assigned, rita, alice):
    url = f"/api/v1/reviews/{assigned.pk}/declare/"
    no_reason = api(rita).post(url, {"conflict": True}, format="json")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["fields"]
    recused = api(rita).post(url, {"conflict": True, "reason": "I consulted for them."}, format="json")
    assert recused.status_code == 200 and recused.json()["declaration"] == "recused"
    approve = api(alice).post(f"/api/v1/applications/{assigned.application_id}/approve/", {}, format="json")
    assert approve.status_code == 409 and approve.json()["code"] == "reviews_missing"


def test_only_the_assigned_reviewer_declares(api, assigned, alice, bob, shanghai):
    url = f"/api/v1/reviews/{assigned.pk}/declare/"
    assert api(alice).post(url, {"conflict": False}, format="json").status_code == 403  # sees it, may not
    assert api(bob).post(url, {"conflict": False}, format="json").status_code == 404  # another city
    other = f.user("rhea", roles=(Role.REVIEWER,), cities=(shanghai,))
    assert api(other).post(url, {"conflict": False}, format="json").status_code == 404  # not theirs
    assigned.refresh_from_db()
    assert assigned.declaration == ""
