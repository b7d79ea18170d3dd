"""Happy paths of every action through the API, each calling the same service as every other entry point."""

from datetime import date
from decimal import Decimal

from grants.models import Application, AuditEvent, Award, FundingPool, LedgerEntry, Review, Tranche
from tests import factories as f


def assigned_review(app_id, reviewer):
    return Review.objects.get(application_id=app_id, reviewer=reviewer).pk


def test_applicant_drafts_submits_and_officer_approves(api, sh_pool, carols_startup, carol, alice, rita):
    draft = {
        "institution": carols_startup.pk,
        "pool": sh_pool.pk,
        "title": "GPU rental",
        "eligible_cost": "10000000.00",
        "requested_amount": "2000000.00",
        "duration_years": 2,
        "proposed_start": "2025-03-01",
    }
    created = api(carol).post("/api/v1/applications/", draft, format="json")
    assert created.status_code == 201, created.json()
    app_id = created.json()["id"]
    assert created.json()["requested_amount"] == "2000000.00"
    assert created.json()["status"] == "draft"

    edited = api(carol).patch(f"/api/v1/applications/{app_id}/", {"summary": "H100 hours"}, format="json")
    assert edited.status_code == 200 and edited.json()["summary"] == "H100 hours"

    submitted = api(carol).post(f"/api/v1/applications/{app_id}/submit/")
    assert submitted.status_code == 200, submitted.json()
    assert submitted.json()["reference"].startswith("SH-2025-CMP-")

    assigned = api(alice).post(
        f"/api/v1/applications/{app_id}/assign-reviewers/", {"reviewers": [rita.pk]}, format="json"
    )
    assert assigned.status_code == 200 and assigned.json()["status"] == "under_review"

    review_id = assigned_review(app_id, rita)
    declared = api(rita).post(f"/api/v1/reviews/{review_id}/declare/", {"conflict": False}, format="json")
    assert declared.status_code == 200 and declared.json()["declaration"] == "no_conflict", declared.json()
    review = {"technical_merit": 4, "feasibility": 5, "impact": 4, "recommendation": "fund"}
    reviewed = api(rita).post(f"/api/v1/applications/{app_id}/review/", review, format="json")
    assert reviewed.status_code == 200, reviewed.json()
    assert reviewed.json()["submitted_at"]

    approved = api(alice).post(
        f"/api/v1/applications/{app_id}/approve/", {"first_share": "0.6"}, format="json"
    )
    assert approved.status_code == 201, approved.json()
    award = approved.json()
    assert award["amount"] == "2000000.00" and award["status"] == "active"
    assert [t.amount for t in Tranche.objects.filter(award_id=award["id"]).order_by("sequence")] == [
        Decimal("1200000.00"),
        Decimal("800000.00"),
    ]
    sh_pool.refresh_from_db()
    assert sh_pool.committed == Decimal("2000000.00")


def test_officer_rejects_and_returns(api, sh_pool, carols_startup, carol, alice, rita):
    app = f.application(sh_pool, carols_startup, carol)
    f.reviewed(app, carol, alice, rita)
    returned = api(alice).post(
        f"/api/v1/applications/{app.pk}/return/", {"note": "Add quotes."}, format="json"
    )
    assert returned.status_code == 200 and returned.json()["status"] == "returned"
    redraft = api(carol).patch(f"/api/v1/applications/{app.pk}/", {"title": "GPU rental v2"}, format="json")
    assert redraft.json()["status"] == "draft"
    assert api(carol).post(f"/api/v1/applications/{app.pk}/submit/").status_code == 200
    rejected = api(alice).post(
        f"/api/v1/applications/{app.pk}/reject/", {"note": "Out of scope."}, format="json"
    )
    assert rejected.status_code == 409  # submitted, not under review: reject is not a transition from there
    assert rejected.json()["code"] == "invalid_transition"
    withdrawn = api(carol).post(f"/api/v1/applications/{app.pk}/withdraw/")
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"


def test_finance_pays_withholds_cancels(api, world, dave, alice):
    released = api(dave).post(
        f"/api/v1/tranches/{world.planned.pk}/withhold/", {"reason": "Audit"}, format="json"
    )
    assert released.status_code == 200 and released.json()["status"] == "withheld"
    back = api(dave).post(f"/api/v1/tranches/{world.planned.pk}/unwithhold/")
    assert back.status_code == 200 and back.json()["status"] in {"planned", "payable"}
    accepted = api(alice).post(f"/api/v1/milestone-reports/{world.report.pk}/accept/", {}, format="json")
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    assert Tranche.objects.get(pk=world.gated.pk).status == "payable"
    paid = api(dave).post(
        f"/api/v1/tranches/{world.gated.pk}/pay/", {"payment_reference": "SH-PAY-2"}, format="json"
    )
    assert paid.status_code == 200, paid.json()
    assert paid.json()["status"] == "paid" and paid.json()["payment_reference"] == "SH-PAY-2"
    cancelled = api(dave).post(
        f"/api/v1/tranches/{world.planned.pk}/cancel/", {"reason": "Ended"}, format="json"
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    pool = FundingPool.objects.get(pk=world.sh_pool.pk)
    assert pool.committed == Decimal("2000000.00") and pool.disbursed == Decimal("2000000.00")
    assert Award.objects.get(pk=world.award.pk).status == "completed"


def test_award_lifecycle(api, world, alice):
    base = f"/api/v1/awards/{world.award.pk}"
    assert (
        api(alice).post(f"{base}/suspend/", {"reason": "Inquiry"}, format="json").json()["status"]
        == "suspended"
    )
    assert api(alice).post(f"{base}/resume/").json()["status"] == "active"
    amended = api(alice).post(
        f"{base}/amend/", {"amount": "2500000.00", "reason": "Scope cut"}, format="json"
    )
    assert amended.status_code == 200 and amended.json()["amount"] == "2500000.00"
    terminated = api(alice).post(f"{base}/terminate/", {"reason": "Breach"}, format="json")
    assert terminated.json()["status"] == "terminated"
    assert not Tranche.objects.filter(award=world.award, status__in=["planned", "payable"]).exists()


def test_recovery_demand_and_receipt(api, world, dave):
    demanded = api(dave).post(
        "/api/v1/recoveries/",
        {"award": world.award.pk, "amount": "50000.00", "due_date": "2030-06-30", "reason": "Unused hours"},
        format="json",
    )
    assert demanded.status_code == 201, demanded.json()
    receipt = api(dave).post(
        f"/api/v1/recoveries/{world.recovery.pk}/receipt/", {"amount": "100000"}, format="json"
    )
    assert receipt.status_code == 200 and receipt.json()["status"] == "received"
    pool = FundingPool.objects.get(pk=world.sh_pool.pk)
    assert pool.disbursed == Decimal("900000.00")


def test_milestone_report_submit_and_reject(api, world, carol, alice):
    rejected = api(alice).post(
        f"/api/v1/milestone-reports/{world.report.pk}/reject/", {"note": "No evidence"}, format="json"
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    again = api(carol).post(
        "/api/v1/milestone-reports/", {"tranche": world.gated.pk, "summary": "Now with logs."}, format="json"
    )
    assert again.status_code == 201, again.json()


def test_institution_register_and_alert_acknowledge(api, carol, world, dave, shanghai):
    registered = api(carol).post(
        "/api/v1/institutions/",
        {"name_en": "Carol Robotics", "credit_code": f.credit_code(4242), "type": "startup", "city": "SH"},
        format="json",
    )
    assert registered.status_code == 201, registered.json()
    assert registered.json()["city"] == "SH"
    ack = api(dave).post(f"/api/v1/alerts/{world.alert.pk}/acknowledge/")
    assert ack.status_code == 200 and ack.json()["acknowledged_by"] == dave.pk
    assert AuditEvent.objects.filter(action="alert.acknowledge").count() == 1


def test_release_of_a_due_tranche(api, sh_pool, carols_startup, carol, alice, rita, dave):
    award = f.award(sh_pool, carols_startup, carol, alice, rita, start=date(2025, 1, 1))
    tranche = award.tranches.get()
    released = api(dave).post(f"/api/v1/tranches/{tranche.pk}/release/")
    assert released.status_code == 200 and released.json()["status"] == "payable"
    assert LedgerEntry.objects.filter(award=award).count() == 1
    assert Application.objects.get(pk=award.application_id).status == "approved"
