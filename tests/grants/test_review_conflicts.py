"""Conflict of interest (issue #14.5) and the ranking of reviewed applications (issue #16.4), through the services
and the selectors: a reviewer declares before seeing the application; a recusal never counts toward the minimum."""

import itertools
from decimal import Decimal as D
from typing import Any

import pytest
from django.http import Http404

from grants import selectors, services
from grants.errors import ConflictOfInterest, InvalidInput, NotPermitted
from grants.models import Attachment, AuditEvent, FundingPool, InstitutionMember, Review
from grants.portal import selectors as portal_selectors
from grants.roles import Role
from grants.services.approval import ReviewsMissing
from grants.services.reviews import AlreadyDeclared, ConflictNotDeclared, declare_conflict
from tests import factories as f
from tests.grants.invariants import refused

SCORES: dict[str, Any] = {"technical_merit": 4, "feasibility": 3, "impact": 5, "recommendation": "fund"}


@pytest.fixture
def assigned(draft, carol, alice, rita):
    services.submit_application(application=draft, actor=carol)
    (review,) = services.assign_reviewers(application=draft, actor=alice, reviewers=[rita])
    return review


def test_the_content_is_hidden_until_the_reviewer_declares_no_conflict(assigned, rita, carol):
    application = assigned.application
    attachment = Attachment.objects.create(
        application=application,
        file="attachments/x/plan.pdf",
        original_name="plan.pdf",
        content_type="application/pdf",
        size=10,
        uploaded_by=carol,
    )
    assert not selectors.applications(rita).filter(pk=application.pk).exists()
    with pytest.raises(Http404):
        portal_selectors.attachment_for(rita, application.pk, attachment.pk)
    # Who applied is visible through the review itself, so the reviewer can tell whether they are conflicted.
    review = selectors.reviews(rita).get(pk=assigned.pk)
    assert review.application.institution.credit_code == application.institution.credit_code

    declare_conflict(review=assigned, actor=rita, conflict=False)
    assert selectors.applications(rita).filter(pk=application.pk).exists()
    assert portal_selectors.attachment_for(rita, application.pk, attachment.pk) == attachment
    event = AuditEvent.objects.get(action="review.declare_no_conflict")
    assert (event.after or {})["declaration"] == "no_conflict" and event.actor == rita


def test_a_review_cannot_be_submitted_before_the_declaration(assigned, rita):
    with refused(ConflictNotDeclared) as info:
        services.submit_review(review=assigned, actor=rita, **SCORES)
    assert info.value.code == "conflict_not_declared" and info.value.status == 409


def test_a_recusal_needs_a_reason_and_is_never_submitted(assigned, rita):
    with refused(InvalidInput) as info:
        declare_conflict(review=assigned, actor=rita, conflict=True, reason=" ")
    assert "reason" in info.value.fields
    declare_conflict(review=assigned, actor=rita, conflict=True, reason="I advised the firm in 2024.")
    assigned.refresh_from_db()
    assert assigned.declaration == Review.Declaration.RECUSED and assigned.declared_at is not None
    assert (AuditEvent.objects.get(action="review.recuse").after or {})[
        "recusal_reason"
    ] == "I advised the firm in 2024."
    with refused(ConflictNotDeclared):
        services.submit_review(review=assigned, actor=rita, **SCORES)
    assert not selectors.applications(rita).filter(pk=assigned.application_id).exists()


def test_a_recused_review_does_not_count_toward_the_minimum(assigned, rita, alice, shanghai):
    declare_conflict(review=assigned, actor=rita, conflict=True, reason="Former employer.")
    application = assigned.application
    with refused(ReviewsMissing) as info:
        services.approve_application(application=application, actor=alice)
    assert info.value.details == {"needed": 1, "submitted": 0}
    assert "Assign 1 more reviewer" in info.value.message  # the recused reviewer is not waited for
    other = f.user("rhea", roles=(Role.REVIEWER,), cities=(shanghai,))
    (review,) = services.assign_reviewers(application=application, actor=alice, reviewers=[other])
    declare_conflict(review=review, actor=other, conflict=False)
    services.submit_review(review=review, actor=other, **SCORES)
    assert services.approve_application(application=application, actor=alice).amount == D("1000000.00")


def test_one_declaration_by_the_assigned_reviewer_while_under_review(assigned, rita, alice, carol, shanghai):
    other = f.user("rhea", roles=(Role.REVIEWER,), cities=(shanghai,))
    for someone in (other, alice, carol):
        with refused(NotPermitted):
            declare_conflict(review=assigned, actor=someone, conflict=False)
    declare_conflict(review=assigned, actor=rita, conflict=False)
    with refused(AlreadyDeclared):
        declare_conflict(review=assigned, actor=rita, conflict=True, reason="Changed my mind.")


def test_no_declaration_once_the_application_left_review(assigned, rita, carol):
    services.withdraw_application(application=assigned.application, actor=carol)
    with refused(InvalidInput):
        declare_conflict(review=assigned, actor=rita, conflict=False)


def test_a_member_of_the_applicant_stays_blocked(assigned, rita):
    # Assignment already refuses members; one who joined the institution since cannot declare no conflict.
    InstitutionMember.objects.create(institution=assigned.application.institution, user=rita)
    with refused(ConflictOfInterest):
        declare_conflict(review=assigned, actor=rita, conflict=False)
    declare_conflict(review=assigned, actor=rita, conflict=True, reason="I joined the applicant.")


# --- Ranking --------------------------------------------------------------------------------------------------


_owners = itertools.count(1)


def _reviewed(pool, city, officer, scores_by_reviewer):
    owner = f.user(f"owner{next(_owners)}")
    app = f.application(pool, f.institution(city, owner), owner)
    services.submit_application(application=app, actor=owner)
    for i, scores in enumerate(scores_by_reviewer):
        reviewer = f.user(f"r{app.pk}-{i}", roles=(Role.REVIEWER,), cities=(city,))
        (review,) = services.assign_reviewers(application=app, actor=officer, reviewers=[reviewer])
        declare_conflict(review=review, actor=reviewer, conflict=False)
        tm, fe, im = scores
        services.submit_review(
            review=review,
            actor=reviewer,
            technical_merit=tm,
            feasibility=fe,
            impact=im,
            recommendation="fund",
        )
    return app


def test_applications_are_ranked_per_pool_by_average_with_the_spread(
    sh_pool, sh_programme, shanghai, alice, bob
):
    other_pool = f.pool(sh_programme, code="DAT")
    agreed = _reviewed(sh_pool, shanghai, alice, [(4, 4, 4), (4, 4, 4)])  # 4.00, spread 0
    split = _reviewed(sh_pool, shanghai, alice, [(5, 5, 5), (2, 2, 2)])  # 3.50, spread 3
    best = _reviewed(sh_pool, shanghai, alice, [(5, 5, 4)])  # 4.67
    alone = _reviewed(other_pool, shanghai, alice, [(1, 2, 3)])  # 2.00, another pool: rank 1 there
    # An application with no submitted review is not ranked.
    nobody = f.user("nobody")
    f.application(sh_pool, f.institution(shanghai, nobody), nobody)
    rows = selectors.review_ranking(alice)
    assert [(r.application.pk, r.rank, r.average, r.spread, r.reviews) for r in rows] == [
        (best.pk, 1, D("4.67"), D("0.00"), 1),
        (agreed.pk, 2, D("4.00"), D("0.00"), 2),
        (split.pk, 3, D("3.50"), D("3.00"), 2),
        (alone.pk, 1, D("2.00"), D("0.00"), 1),
    ]
    assert (rows[2].technical_merit, rows[2].feasibility, rows[2].impact) == (D("3.50"), D("3.50"), D("3.50"))
    assert [r.application.pk for r in selectors.review_ranking(alice, pool_id=other_pool.pk)] == [alone.pk]
    assert selectors.review_ranking(bob) == []  # another city's officer


def test_a_recused_or_unsubmitted_review_counts_for_nothing_in_the_ranking(assigned, rita, alice, shanghai):
    declare_conflict(review=assigned, actor=rita, conflict=True, reason="Former employer.")
    assert selectors.review_ranking(alice) == []
    FundingPool.objects.filter(pk=assigned.application.pool_id).update(min_reviews=1)
    other = f.user("rhea", roles=(Role.REVIEWER,), cities=(shanghai,))
    (review,) = services.assign_reviewers(application=assigned.application, actor=alice, reviewers=[other])
    declare_conflict(review=review, actor=other, conflict=False)
    services.submit_review(
        review=review, actor=other, technical_merit=3, feasibility=3, impact=3, recommendation="fund"
    )
    (row,) = selectors.review_ranking(alice)
    assert (row.reviews, row.average, row.fund) == (1, D("3.00"), 1)
