"""Applications from draft to decision (§3, §8): every transition, every refusal, and that a refusal changes
nothing."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from grants import services
from grants.errors import ConflictOfInterest, Ineligible, InvalidInput, InvalidTransition, NotPermitted
from grants.models import Application, InstitutionMember, Review
from grants.roles import Role
from grants.services.reviews import declare_conflict
from tests import factories as f
from tests.grants.invariants import audit_actions, refused

S = Application.Status


# --- Draft ----------------------------------------------------------------------------------------------------


def test_a_member_drafts_an_application(draft, carol):
    assert draft.status == S.DRAFT
    assert draft.reference is None
    assert draft.created_by == carol
    assert audit_actions(draft) == ["application.create"]


def test_a_non_member_cannot_draft_for_an_institution(sh_pool, carols_startup, alice):
    with refused(NotPermitted):
        f.application(sh_pool, carols_startup, alice)


def test_bad_fields_are_all_reported_and_nothing_is_created(sh_pool, carols_startup, carol):
    with refused(InvalidInput) as info:
        services.create_application(
            actor=carol,
            institution=carols_startup,
            pool=sh_pool,
            title="  ",
            eligible_cost=Decimal("-1"),
            requested_amount="lots",  # type: ignore[arg-type]
            duration_years=0,
            proposed_start="tomorrow",  # type: ignore[arg-type]
        )
    assert set(info.value.fields) == {
        "title",
        "eligible_cost",
        "requested_amount",
        "duration_years",
        "proposed_start",
    }


def test_a_draft_is_edited_by_its_institution_only(draft, carol, alice):
    services.update_application(application=draft, actor=carol, requested_amount="900000")
    draft.refresh_from_db()
    assert draft.requested_amount == Decimal("900000.00")
    assert audit_actions(draft)[-1] == "application.update"
    with refused(NotPermitted):
        services.update_application(application=draft, actor=alice, title="Mine now")
    with refused(InvalidInput):
        services.update_application(application=draft, actor=carol, status="approved")


def test_only_a_never_submitted_draft_is_deleted(sh_pool, carols_startup, carol, draft):
    services.delete_draft(application=draft, actor=carol)
    assert not Application.objects.filter(pk=draft.pk).exists()
    other = f.application(sh_pool, carols_startup, carol)
    services.submit_application(application=other, actor=carol)
    with refused(InvalidInput):
        services.delete_draft(application=other, actor=carol)


# --- Submission and eligibility (§8) ----------------------------------------------------------------------------


def test_submission_assigns_a_reference(draft, carol):
    app = services.submit_application(application=draft, actor=carol)
    assert app.status == S.SUBMITTED
    assert app.reference == "SH-2025-CMP-00001"
    assert app.submitted_at is not None
    assert audit_actions(app) == ["application.create", "application.submit"]


def test_references_count_up_within_a_pool(sh_pool, carol, shanghai):
    refs = []
    for _ in range(3):
        inst = f.institution(shanghai, carol)
        app = f.application(sh_pool, inst, carol)
        refs.append(services.submit_application(application=app, actor=carol).reference)
    assert refs == ["SH-2025-CMP-00001", "SH-2025-CMP-00002", "SH-2025-CMP-00003"]


def test_a_non_member_cannot_submit(draft, alice):
    with refused(NotPermitted):
        services.submit_application(application=draft, actor=alice)


ALL_RULES = {
    "window_closed",
    "institution_type",
    "not_registered_in_city",
    "institution_debarred",
    "over_cost_share",
    "over_per_award",
    "duration_not_allowed",
    "open_application_exists",
}


def test_every_failed_eligibility_rule_is_reported_at_once(sh_programme, hangzhou, carol):
    pool = f.pool(
        sh_programme,
        code="MDL",
        max_rate=Decimal("0.50"),
        max_per_award=Decimal("5000000"),
        eligible_types=["university"],
        accepting_applications=False,
        max_duration_years=2,
    )
    inst = f.institution(hangzhou, carol, type="startup", debarred_until=date(2099, 1, 1))
    # An open application of the same institution to the same pool, made while the call was open.
    pool.accepting_applications = True
    pool.eligible_types = []
    pool.registration_required = False
    pool.save()
    inst.debarred_until = None
    inst.save()
    services.submit_application(application=f.application(pool, inst, carol), actor=carol)
    pool.accepting_applications = False
    pool.eligible_types = ["university"]
    pool.registration_required = True
    pool.save()
    inst.debarred_until = date(2099, 1, 1)
    inst.save()

    app = f.application(pool, inst, carol, requested="6000000", cost="10000000", years=3)
    with refused(Ineligible) as info:
        services.submit_application(application=app, actor=carol)
    assert {rule["code"] for rule in info.value.details["rules"]} == ALL_RULES
    assert {code for code, _field, _msg in info.value.failures} == ALL_RULES
    assert set(info.value.fields) == {"pool", "institution", "requested_amount", "duration_years"}
    assert info.value.as_dict()["code"] == "ineligible"


@pytest.mark.parametrize(
    ("rule", "setup"),
    [
        ("window_closed", lambda pool, inst: pool.programme.__class__.objects.update(status="closed")),
        (
            "window_closed",
            lambda pool, inst: type(pool).objects.update(closes_at=timezone.now() - timedelta(seconds=1)),
        ),
        (
            "window_closed",
            lambda pool, inst: type(pool).objects.update(opens_at=timezone.now() + timedelta(days=1)),
        ),
        ("institution_type", lambda pool, inst: type(pool).objects.update(eligible_types=["university"])),
        (
            "institution_debarred",
            lambda pool, inst: type(inst).objects.update(debarred_until=timezone.localdate()),
        ),
        ("over_cost_share", lambda pool, inst: type(pool).objects.update(max_rate=Decimal("0.0999"))),
        ("over_per_award", lambda pool, inst: type(pool).objects.update(max_per_award=Decimal("999999.99"))),
        ("duration_not_allowed", lambda pool, inst: type(pool).objects.update(min_duration_years=2)),
    ],
)
def test_each_eligibility_rule_refuses_alone(draft, carol, sh_pool, carols_startup, rule, setup):
    setup(sh_pool, carols_startup)
    with refused(Ineligible) as info:
        services.submit_application(application=draft, actor=carol)
    assert [r["code"] for r in info.value.details["rules"]] == [rule]


def test_the_cost_share_rate_may_be_set_per_institution_type(sh_pool, carols_startup, carol):
    sh_pool.rate_by_type = {"startup": "0.60"}
    sh_pool.save()
    app = f.application(sh_pool, carols_startup, carol, requested="6000000", cost="10000000")
    assert services.submit_application(application=app, actor=carol).status == S.SUBMITTED


def test_registration_in_the_city_is_required_only_where_the_pool_says_so(sh_pool, hangzhou, carol):
    inst = f.institution(hangzhou, carol)
    app = f.application(sh_pool, inst, carol)
    with refused(Ineligible) as info:
        services.submit_application(application=app, actor=carol)
    assert [r["code"] for r in info.value.details["rules"]] == ["not_registered_in_city"]
    sh_pool.registration_required = False
    sh_pool.save()
    assert services.submit_application(application=app, actor=carol).status == S.SUBMITTED


def test_a_second_open_application_to_the_same_pool_is_refused(draft, sh_pool, carols_startup, carol):
    services.submit_application(application=draft, actor=carol)
    second = f.application(sh_pool, carols_startup, carol)
    with refused(Ineligible) as info:
        services.submit_application(application=second, actor=carol)
    assert [r["code"] for r in info.value.details["rules"]] == ["open_application_exists"]
    services.withdraw_application(application=draft, actor=carol)
    assert services.submit_application(application=second, actor=carol).status == S.SUBMITTED


def test_a_submitted_application_cannot_be_submitted_again(draft, carol):
    services.submit_application(application=draft, actor=carol)
    with refused(InvalidTransition):
        services.submit_application(application=draft, actor=carol)


# --- Withdraw, return, edit, resubmit ---------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["draft", "submitted", "under_review"])
def test_the_applicant_withdraws_until_a_decision(stage, draft, carol, alice, rita):
    if stage != S.DRAFT:
        services.submit_application(application=draft, actor=carol)
    if stage == S.UNDER_REVIEW:
        services.assign_reviewers(application=draft, actor=alice, reviewers=[rita])
    app = draft
    app.refresh_from_db()
    assert app.status == stage
    services.withdraw_application(application=app, actor=carol)
    app.refresh_from_db()
    assert app.status == S.WITHDRAWN
    assert audit_actions(app)[-1] == "application.withdraw"


def test_a_decided_application_cannot_be_withdrawn(ready, carol, alice):
    services.reject_application(application=ready, actor=alice, note="Out of scope")
    with refused(InvalidTransition):
        services.withdraw_application(application=ready, actor=carol)


def test_only_the_institution_withdraws(draft, alice):
    with refused(NotPermitted):
        services.withdraw_application(application=draft, actor=alice)


def test_returned_edited_and_resubmitted_keeps_its_reference(ready, carol, alice):
    reference = ready.reference
    with refused(InvalidInput):
        services.return_application(application=ready, actor=alice, note="  ")
    services.return_application(application=ready, actor=alice, note="Attach the GPU quotes.")
    ready.refresh_from_db()
    assert ready.status == S.RETURNED
    assert ready.decision_note == "Attach the GPU quotes."
    with refused(InvalidTransition):
        services.submit_application(application=ready, actor=carol)
    services.update_application(application=ready, actor=carol, summary="Quotes attached.")
    ready.refresh_from_db()
    assert ready.status == S.DRAFT
    app = services.submit_application(application=ready, actor=carol)
    assert app.status == S.SUBMITTED
    assert app.reference == reference
    assert audit_actions(app)[-3:] == ["application.return", "application.update", "application.submit"]


def test_a_draft_cannot_be_returned(draft, alice):
    with refused(InvalidTransition):
        services.return_application(application=draft, actor=alice, note="Why?")


def test_an_officer_of_another_city_cannot_return_or_reject(ready, bob, carol):
    with refused(NotPermitted):
        services.return_application(application=ready, actor=bob, note="Not yours")
    with refused(NotPermitted):
        services.reject_application(application=ready, actor=bob)
    with refused(NotPermitted):
        services.reject_application(application=ready, actor=carol)


def test_rejection_is_final(ready, alice):
    services.reject_application(application=ready, actor=alice, note="Weak plan")
    ready.refresh_from_db()
    assert ready.status == S.REJECTED
    assert ready.decided_at is not None
    assert audit_actions(ready)[-1] == "application.reject"
    with refused(InvalidTransition):
        services.return_application(application=ready, actor=alice, note="Try again")


def test_a_draft_cannot_be_rejected(draft, alice):
    with refused(InvalidTransition):
        services.reject_application(application=draft, actor=alice)


# --- Reviewers and reviews --------------------------------------------------------------------------------------


def test_assigning_a_reviewer_puts_the_application_under_review(draft, carol, alice, rita):
    services.submit_application(application=draft, actor=carol)
    (review,) = services.assign_reviewers(application=draft, actor=alice, reviewers=[rita])
    draft.refresh_from_db()
    assert draft.status == S.UNDER_REVIEW
    assert review.reviewer == rita
    assert review.submitted_at is None
    assert audit_actions(draft)[-1] == "application.assign_reviewers"
    # Assigning again adds only the new reviewers.
    second = f.user("sam", roles=(Role.REVIEWER,), cities=(draft.pool.programme.city,))
    assert [
        r.reviewer
        for r in services.assign_reviewers(application=draft, actor=alice, reviewers=[rita, second])
    ] == [second]
    assert Review.objects.filter(application=draft).count() == 2


def test_a_member_of_the_applicant_cannot_review_it(draft, carol, alice, rita, carols_startup):
    services.submit_application(application=draft, actor=carol)
    InstitutionMember.objects.create(institution=carols_startup, user=rita)
    with refused(ConflictOfInterest) as info:
        services.assign_reviewers(application=draft, actor=alice, reviewers=[rita])
    assert info.value.details["reviewers"] == [rita.pk]


def test_only_reviewers_can_be_assigned(draft, carol, alice, dave):
    services.submit_application(application=draft, actor=carol)
    with refused(InvalidInput):
        services.assign_reviewers(application=draft, actor=alice, reviewers=[dave])
    with refused(InvalidInput):
        services.assign_reviewers(application=draft, actor=alice, reviewers=[])


def test_reviewers_are_assigned_by_an_officer_of_the_city_to_a_submitted_application(
    draft, carol, alice, bob, rita
):
    with refused(InvalidInput):
        services.assign_reviewers(application=draft, actor=alice, reviewers=[rita])
    services.submit_application(application=draft, actor=carol)
    with refused(NotPermitted):
        services.assign_reviewers(application=draft, actor=bob, reviewers=[rita])
    with refused(NotPermitted):
        services.assign_reviewers(application=draft, actor=rita, reviewers=[rita])


def _assigned(draft, carol, alice, rita):
    services.submit_application(application=draft, actor=carol)
    (review,) = services.assign_reviewers(application=draft, actor=alice, reviewers=[rita])
    declare_conflict(review=review, actor=rita, conflict=False)
    return review


def test_a_reviewer_submits_one_review(draft, carol, alice, rita):
    review = _assigned(draft, carol, alice, rita)
    services.submit_review(
        review=review,
        actor=rita,
        technical_merit=5,
        feasibility=1,
        impact=3,
        recommendation="revise",
        recommended_amount=Decimal("800000"),
        comment="Solid team.",
    )
    review.refresh_from_db()
    assert (review.technical_merit, review.feasibility, review.impact) == (5, 1, 3)
    assert review.recommended_amount == Decimal("800000.00")
    assert audit_actions(review) == ["review.declare_no_conflict", "review.submit"]
    with refused(InvalidInput):
        services.submit_review(
            review=review, actor=rita, technical_merit=1, feasibility=1, impact=1, recommendation="fund"
        )


@pytest.mark.parametrize(
    "scores",
    [
        {"technical_merit": 0, "feasibility": 3, "impact": 3},
        {"technical_merit": 3, "feasibility": 6, "impact": 3},
        {"technical_merit": 3, "feasibility": 3, "impact": -1},
        {"technical_merit": 3, "feasibility": 3, "impact": "5"},
    ],
)
def test_scores_are_from_one_to_five(draft, carol, alice, rita, scores):
    review = _assigned(draft, carol, alice, rita)
    with refused(InvalidInput) as info:
        services.submit_review(review=review, actor=rita, recommendation="fund", **scores)
    assert set(info.value.fields) == {k for k, v in scores.items() if v not in (1, 2, 3, 4, 5)}


def test_a_review_needs_a_known_recommendation_and_a_positive_amount(draft, carol, alice, rita):
    review = _assigned(draft, carol, alice, rita)
    with refused(InvalidInput) as info:
        services.submit_review(
            review=review,
            actor=rita,
            technical_merit=3,
            feasibility=3,
            impact=3,
            recommendation="maybe",
            recommended_amount=Decimal("0"),
        )
    assert set(info.value.fields) == {"recommendation", "recommended_amount"}


def test_only_the_assigned_reviewer_reviews(draft, carol, alice, rita):
    review = _assigned(draft, carol, alice, rita)
    other = f.user("sam", roles=(Role.REVIEWER,), cities=(draft.pool.programme.city,))
    with refused(NotPermitted):
        services.submit_review(
            review=review, actor=other, technical_merit=3, feasibility=3, impact=3, recommendation="fund"
        )


def test_no_review_once_the_application_left_review(draft, carol, alice, rita):
    review = _assigned(draft, carol, alice, rita)
    services.withdraw_application(application=draft, actor=carol)
    with refused(InvalidInput):
        services.submit_review(
            review=review, actor=rita, technical_merit=3, feasibility=3, impact=3, recommendation="fund"
        )
