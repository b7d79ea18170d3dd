"""Every admin action calls its service; a refusal shows the service's message and changes nothing."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from grants import services
from grants.models import (
    Application,
    AuditEvent,
    Award,
    BudgetAlert,
    FundingPool,
    LedgerEntry,
    Recovery,
    Review,
    Tranche,
)
from tests import factories as f


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def op(client, model, obj, name, data=None):
    return client.post(reverse(f"admin:grants_{model}_op", args=[obj.pk, name]), data or {}, follow=True)


def approve_page(client, app):
    return client.get(reverse("admin:grants_application_approve", args=[app.pk]))


def confirm(client, app, page, **changes):
    form = page.context["form"]
    data = {
        "amount": str(form["amount"].value()),
        "start_date": str(form["start_date"].value()),
        "milestone_gated": "on",
        "key": form["key"].value(),
        "digest": page.context["digest"],
        "_confirm": "1",
        **changes,
    }
    return client.post(reverse("admin:grants_application_approve", args=[app.pk]), data, follow=True)


# --- Approval -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_approval_shows_the_schedule_then_commits_through_the_service(client, alice, sh_application, sh_pool):
    client.force_login(alice)
    page = approve_page(client, sh_application)
    assert page.status_code == 200
    assert [t.amount for t, _shown in page.context["schedule"]] == [Decimal("1000000.00")] * 3
    assert Award.objects.count() == 0  # looking at the schedule approves nothing

    response = confirm(client, sh_application, page)
    award = Award.objects.get(application=sh_application)
    assert award.amount == Decimal("3000000.00")
    assert award.tranches.count() == 3
    sh_pool.refresh_from_db()
    assert sh_pool.committed == Decimal("3000000.00")
    assert any("Approved" in m for m in messages_of(response))
    # The officer lands on the new award (issue 16, item 8), its tranches and its pool's utilisation.
    assert response.request["PATH_INFO"] == reverse("admin:grants_award_change", args=[award.pk])


@pytest.mark.django_db
def test_a_confirmation_for_a_schedule_not_shown_approves_nothing(client, alice, sh_application):
    client.force_login(alice)
    page = approve_page(client, sh_application)
    response = confirm(client, sh_application, page, amount="2400000.00")  # changed after the preview
    assert Award.objects.count() == 0
    assert any("review it and confirm again" in m for m in messages_of(response))
    assert response.context["schedule"][0][0].amount == Decimal("800000.00")


@pytest.mark.django_db
def test_an_approval_beyond_a_budget_level_shows_level_asked_and_left_and_changes_nothing(
    client, alice, sh_application, sh_pool
):
    FundingPool.objects.filter(pk=sh_pool.pk).update(max_per_award=Decimal("2000000"))
    client.force_login(alice)
    page = approve_page(client, sh_application)
    response = confirm(client, sh_application, page)
    (message,) = [m for m in messages_of(response) if "Refused" in m]
    assert "per-award maximum" in message
    assert "3,000,000.00" in message and "2,000,000.00" in message
    assert Award.objects.count() == 0
    assert LedgerEntry.objects.count() == 0
    sh_pool.refresh_from_db()
    assert sh_pool.committed == 0
    assert Application.objects.get(pk=sh_application.pk).status == Application.Status.UNDER_REVIEW


@pytest.mark.django_db
def test_the_approve_action_leads_to_the_approval_page(client, alice, sh_application):
    client.force_login(alice)
    response = client.post(
        reverse("admin:grants_application_changelist"),
        {"action": "approve", "_selected_action": [sh_application.pk]},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:grants_application_approve", args=[sh_application.pk])


# --- Decisions on applications ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_reject_calls_the_service(client, alice, sh_application):
    client.force_login(alice)
    op(client, "application", sh_application, "reject", {"note": "out of scope"})
    app = Application.objects.get(pk=sh_application.pk)
    assert app.status == Application.Status.REJECTED
    assert app.decision_note == "out of scope"
    assert AuditEvent.objects.filter(action="application.reject", object_id=str(app.pk)).exists()


@pytest.mark.django_db
def test_return_needs_a_note_and_changes_nothing_without_one(client, alice, sh_application):
    client.force_login(alice)
    response = op(client, "application", sh_application, "return", {"note": ""})
    assert response.context["form"].errors["note"]
    assert Application.objects.get(pk=sh_application.pk).status == Application.Status.UNDER_REVIEW
    op(client, "application", sh_application, "return", {"note": "add a budget table"})
    assert Application.objects.get(pk=sh_application.pk).status == Application.Status.RETURNED


@pytest.mark.django_db
def test_a_refused_transition_shows_the_services_message(client, alice, sh_application):
    client.force_login(alice)
    op(client, "application", sh_application, "reject", {"note": ""})
    response = op(client, "application", sh_application, "reject", {"note": "again"})
    # The form is not offered again: the page says why instead.
    assert response.status_code == 409 and b'id="operation-form"' not in response.content
    assert "This application is already rejected." in response.context["refusal"]


@pytest.mark.django_db
def test_assign_reviewers_calls_the_service(client, alice, shanghai, sh_pool, carol):
    applicant = f.user("sam")
    app = f.application(sh_pool, f.institution(shanghai, applicant), applicant)
    services.submit_application(application=app, actor=applicant)
    reviewer = f.user("rex", roles=("reviewer",), cities=(shanghai,))
    client.force_login(alice)
    op(client, "application", app, "assign", {"reviewers": [reviewer.pk]})
    assert Review.objects.filter(application=app, reviewer=reviewer).exists()
    assert Application.objects.get(pk=app.pk).status == Application.Status.UNDER_REVIEW


@pytest.mark.django_db
def test_bulk_reject_asks_for_the_note_first(client, alice, sh_application):
    client.force_login(alice)
    url = reverse("admin:grants_application_changelist")
    page = client.post(url, {"action": "op_reject", "_selected_action": [sh_application.pk]})
    assert page.status_code == 200 and b"apply" in page.content
    assert Application.objects.get(pk=sh_application.pk).status == Application.Status.UNDER_REVIEW
    client.post(
        url, {"action": "op_reject", "_selected_action": [sh_application.pk], "apply": "1", "note": "n"}
    )
    assert Application.objects.get(pk=sh_application.pk).status == Application.Status.REJECTED


@pytest.mark.django_db
def test_a_reviewer_submits_their_review_in_the_admin(client, shanghai, sh_pool, alice):
    applicant = f.user("sue")
    app = f.application(sh_pool, f.institution(shanghai, applicant), applicant)
    services.submit_application(application=app, actor=applicant)
    reviewer = f.user("rosa", roles=("reviewer",), cities=(shanghai,))
    (review,) = services.assign_reviewers(application=app, actor=alice, reviewers=[reviewer])
    client.force_login(reviewer)
    url = reverse("admin:grants_review_form", args=[review.pk])
    client.post(url, {"_declare": "1", "declaration": "no_conflict"})
    data = {"technical_merit": 5, "feasibility": 4, "impact": 3, "recommendation": "fund", "comment": "good"}
    client.post(url, {"_submit": "1", **data}, follow=True)
    review.refresh_from_db()
    assert review.submitted_at is not None and review.technical_merit == 5
    response = client.post(url, {"_submit": "1", **data})
    assert "already submitted" in response.content.decode()


# --- Money after approval -----------------------------------------------------------------------------------


@pytest.fixture
def award(sh_pool, carols_startup, carol, alice, rita):
    return f.award(
        sh_pool,
        carols_startup,
        carol,
        alice,
        rita,
        requested="2000000",
        years=2,
        start=date(2025, 1, 1),
        milestone_gated=False,
    )


@pytest.mark.django_db
def test_release_and_pay_through_the_services(client, dave, frank, award, sh_pool):
    """dave releases; the releaser may not pay (grants.workflow.separated), so frank, a second finance officer,
    pays."""
    first = award.tranches.get(sequence=1)
    client.force_login(dave)
    op(client, "tranche", first, "release")
    assert Tranche.objects.get(pk=first.pk).status == Tranche.Status.PAYABLE
    page = reverse("admin:grants_tranche_change", args=[first.pk])
    assert b"op/pay/" not in client.get(page).content  # no threshold here, and still not the releaser
    client.force_login(frank)
    assert b"op/pay/" in client.get(page).content
    op(client, "tranche", first, "pay", {"payment_reference": "TREAS-001"})
    first.refresh_from_db()
    assert first.status == Tranche.Status.PAID and first.payment_reference == "TREAS-001"
    assert (first.released_by, first.paid_by) == (dave, frank)
    sh_pool.refresh_from_db()
    assert sh_pool.disbursed == Decimal("1000000.00")


@pytest.mark.django_db
def test_a_duplicate_payment_reference_is_refused_and_nothing_moves(client, dave, frank, award, sh_pool):
    first, second = award.tranches.order_by("sequence")
    services.release_tranche(tranche=first, actor=dave)
    services.pay_tranche(tranche=first, actor=frank, payment_reference="TREAS-001")
    Tranche.objects.filter(pk=second.pk).update(scheduled_date=date(2025, 1, 2))
    services.release_tranche(tranche=second, actor=dave)
    entries = LedgerEntry.objects.count()
    client.force_login(frank)
    response = op(client, "tranche", second, "pay", {"payment_reference": "TREAS-001"})
    assert any("already used" in m for m in messages_of(response))
    assert Tranche.objects.get(pk=second.pk).status == Tranche.Status.PAYABLE
    assert LedgerEntry.objects.count() == entries


@pytest.mark.django_db
def test_a_programme_officer_cannot_pay(client, alice, award):
    client.force_login(alice)
    first = award.tranches.get(sequence=1)
    url = reverse("admin:grants_tranche_op", args=[first.pk, "pay"])
    assert client.post(url, {"payment_reference": "X"}).status_code == 403


@pytest.mark.django_db
def test_withhold_lift_and_cancel(client, dave, award, sh_pool):
    second = award.tranches.get(sequence=2)
    client.force_login(dave)
    response = op(client, "tranche", second, "withhold", {"reason": ""})
    assert response.context["form"].errors["reason"]
    op(client, "tranche", second, "withhold", {"reason": "audit pending"})
    assert Tranche.objects.get(pk=second.pk).status == Tranche.Status.WITHHELD
    op(client, "tranche", second, "unwithhold")
    # Back to planned, or payable when its date has come (2026-01-01).
    assert Tranche.objects.get(pk=second.pk).status in (Tranche.Status.PLANNED, Tranche.Status.PAYABLE)
    op(client, "tranche", second, "cancel", {"reason": "project ended early"})
    assert Tranche.objects.get(pk=second.pk).status == Tranche.Status.CANCELLED
    sh_pool.refresh_from_db()
    assert sh_pool.committed == Decimal("1000000.00")


@pytest.mark.django_db
def test_suspend_resume_terminate(client, alice, award, sh_pool):
    client.force_login(alice)
    op(client, "award", award, "suspend", {"reason": "investigation"})
    assert Award.objects.get(pk=award.pk).status == Award.Status.SUSPENDED
    op(client, "award", award, "resume")
    assert Award.objects.get(pk=award.pk).status == Award.Status.ACTIVE
    op(client, "award", award, "terminate", {"reason": "breach"})
    assert Award.objects.get(pk=award.pk).status == Award.Status.TERMINATED
    sh_pool.refresh_from_db()
    assert sh_pool.committed == 0


@pytest.mark.django_db
def test_recovery_demand_and_receipt(client, dave, frank, award, sh_pool):
    first = award.tranches.get(sequence=1)
    services.release_tranche(tranche=first, actor=dave)
    services.pay_tranche(tranche=first, actor=frank, payment_reference="TREAS-9")
    client.force_login(dave)
    response = op(
        client,
        "award",
        award,
        "recovery",
        {"amount": "5000000", "due_date": "2026-01-31", "reason": "misuse"},
    )
    assert any("At most" in m for m in messages_of(response))
    assert not Recovery.objects.exists()
    op(client, "award", award, "recovery", {"amount": "400000", "due_date": "2026-01-31", "reason": "misuse"})
    recovery = Recovery.objects.get()
    op(client, "recovery", recovery, "receipt", {"amount": "400000"})
    recovery.refresh_from_db()
    assert recovery.status == Recovery.Status.RECEIVED
    sh_pool.refresh_from_db()
    assert sh_pool.disbursed == Decimal("600000.00")


@pytest.mark.django_db
def test_an_alert_is_acknowledged_from_the_dashboard(client, alice, sh_pool):
    alert = BudgetAlert.objects.create(
        pool=sh_pool, kind="threshold", severity="warning", subject=80, message="80% of the cap committed"
    )
    client.force_login(alice)
    client.post(reverse("admin:dashboard"), {"alert": alert.pk})
    alert.refresh_from_db()
    assert alert.acknowledged_by == alice


# --- Budgets: caps and allotments ---------------------------------------------------------------------------


def pool_form(pool, **changes):
    data = {
        "name_en": pool.name_en,
        "name_zh": pool.name_zh,
        "category": pool.category,
        "cap": str(pool.cap),
        "max_rate": "0.3",
        "min_duration_years": 1,
        "max_duration_years": 5,
        "registration_required": "on",
        "min_reviews": 1,
        "alert_thresholds": "",
        "accepting_applications": "on",
        "allotments-TOTAL_FORMS": "0",
        "allotments-INITIAL_FORMS": "0",
        "allotments-MIN_NUM_FORMS": "0",
        "allotments-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return data


@pytest.mark.django_db
def test_a_cap_beyond_the_programme_total_is_refused(client, alice, sh_pool, sh_programme):
    client.force_login(alice)
    url = reverse("admin:grants_fundingpool_change", args=[sh_pool.pk])
    response = client.post(url, pool_form(sh_pool, cap="1200000000"))
    assert response.status_code == 200
    assert "more than the programme total" in str(response.context["adminform"].form.errors["cap"])
    sh_pool.refresh_from_db()
    assert sh_pool.cap == Decimal("600000000")


@pytest.mark.django_db
def test_a_cap_change_goes_through_the_service_and_is_audited(client, alice, sh_pool):
    client.force_login(alice)
    url = reverse("admin:grants_fundingpool_change", args=[sh_pool.pk])
    response = client.post(url, pool_form(sh_pool, cap="700000000"))
    assert response.status_code == 302
    sh_pool.refresh_from_db()
    assert sh_pool.cap == Decimal("700000000")
    assert AuditEvent.objects.filter(action="pool.set_cap", object_id=str(sh_pool.pk)).exists()


@pytest.mark.django_db
def test_allotments_are_set_through_the_service_and_refused_beyond_the_cap(client, alice, sh_pool):
    client.force_login(alice)
    url = reverse("admin:grants_fundingpool_change", args=[sh_pool.pk])
    rows = {
        "allotments-TOTAL_FORMS": "2",
        "allotments-0-fiscal_year": "2025",
        "allotments-0-amount": "400000000",
        "allotments-1-fiscal_year": "2026",
        "allotments-1-amount": "300000000",
    }
    response = client.post(url, pool_form(sh_pool, **rows))
    assert response.status_code == 200
    assert "more than the pool cap" in str(
        response.context["inline_admin_formsets"][0].formset.non_form_errors()
    )
    assert not sh_pool.allotments.exists()
    rows["allotments-1-amount"] = "200000000"
    assert client.post(url, pool_form(sh_pool, **rows)).status_code == 302
    assert sorted(sh_pool.allotments.values_list("fiscal_year", "amount")) == [
        (2025, Decimal("400000000")),
        (2026, Decimal("200000000")),
    ]


@pytest.mark.django_db
def test_a_programme_total_below_its_pools_caps_is_refused(client, alice, sh_programme, sh_pool):
    client.force_login(alice)
    url = reverse("admin:grants_programme_change", args=[sh_programme.pk])
    page = client.get(url)
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data.update(
        {
            "total_budget": "500000000",
            "opens_at_0": sh_programme.opens_at.date().isoformat(),
            "opens_at_1": "00:00:00",
            "closes_at_0": sh_programme.closes_at.date().isoformat(),
            "closes_at_1": "00:00:00",
            "pools-TOTAL_FORMS": "1",
            "pools-INITIAL_FORMS": "1",
            "pools-MIN_NUM_FORMS": "0",
            "pools-MAX_NUM_FORMS": "1000",
            "pools-0-id": sh_pool.pk,
            "pools-0-programme": sh_programme.pk,
        }
    )
    data = {k: v for k, v in data.items() if v is not None}
    response = client.post(url, data)
    assert response.status_code == 200
    assert "cannot be less" in str(response.context["adminform"].form.errors)


@pytest.mark.django_db
def test_a_cap_and_its_allotments_shrink_together_in_one_save(client, alice, sh_pool):
    services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2025, amount=Decimal("400000000"))
    allotment = sh_pool.allotments.get()
    client.force_login(alice)
    url = reverse("admin:grants_fundingpool_change", args=[sh_pool.pk])
    rows = {
        "allotments-TOTAL_FORMS": "1",
        "allotments-INITIAL_FORMS": "1",
        "allotments-0-id": allotment.pk,
        "allotments-0-pool": sh_pool.pk,
        "allotments-0-fiscal_year": "2025",
        "allotments-0-amount": "300000000",
    }
    # The cap lowered alone below today's allotment is refused, on the allotments, and nothing changes...
    alone = pool_form(sh_pool, cap="300000000", **{**rows, "allotments-0-amount": "400000000"})
    response = client.post(url, alone)
    assert response.status_code == 200
    errors = " ".join(response.context["inline_admin_formsets"][0].formset.non_form_errors())
    assert "The cap cannot be less than the fiscal-year allotments (CNY 400,000,000.00)." in errors
    sh_pool.refresh_from_db()
    assert sh_pool.cap == Decimal("600000000")
    # ...lowered together with it, in one save, it passes.
    assert client.post(url, pool_form(sh_pool, cap="300000000", **rows)).status_code == 302
    sh_pool.refresh_from_db()
    assert sh_pool.cap == Decimal("300000000")
    assert list(sh_pool.allotments.values_list("amount", flat=True)) == [Decimal("300000000")]


@pytest.mark.django_db
def test_a_pool_is_created_in_the_admin_through_the_service(client, alice, sh_programme, sh_pool):
    client.force_login(alice)
    url = reverse("admin:grants_fundingpool_add")
    data = pool_form(
        sh_pool,
        programme=sh_programme.pk,
        code="MDL",
        cap="400000000.01",  # the other pool has 600M of the programme's 1,000M
        **{
            "allotments-TOTAL_FORMS": "1",
            "allotments-0-fiscal_year": "2025",
            "allotments-0-amount": "1000000",
        },
    )
    response = client.post(url, data)
    assert response.status_code == 200
    assert "more than the programme total" in str(response.context["adminform"].form.errors["cap"])
    data["allotments-0-fiscal_year"] = "2040"
    data["cap"] = "400000000"
    response = client.post(url, data)
    assert "outside the programme's years" in " ".join(
        response.context["inline_admin_formsets"][0].formset.non_form_errors()
    )
    assert FundingPool.objects.count() == 1
    data["allotments-0-fiscal_year"] = "2025"
    assert client.post(url, data).status_code == 302
    pool = FundingPool.objects.get(code="MDL")
    assert pool.cap == Decimal("400000000")
    assert list(pool.allotments.values_list("fiscal_year", "amount")) == [(2025, Decimal("1000000"))]
    assert AuditEvent.objects.filter(action="pool.create", object_id=str(pool.pk)).exists()
    assert AuditEvent.objects.filter(action="allotment.set").count() == 1
