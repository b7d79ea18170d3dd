"""Approval and amendment (§4): every level at once or none, the schedule, idempotency, roles."""

from datetime import date
from decimal import Decimal

import pytest

from grants import services
from grants.errors import BudgetExceeded, InstitutionDebarred, InvalidInput, InvalidTransition, NotPermitted
from grants.models import Application, Award, FundingPool, LedgerEntry, Programme, Tranche
from grants.services.approval import ReviewsMissing
from grants.services.budget import IdempotencyConflict
from tests import factories as f
from tests.grants.invariants import assert_invariants, audit_actions, refused

D = Decimal


def amounts(award: Award) -> list[Decimal]:
    return list(award.tranches.order_by("sequence").values_list("amount", flat=True))


def ready_app(pool, carol, alice, rita, *, requested="1000000", cost="10000000", years=1, inst=None):
    inst = inst or f.institution(pool.programme.city, carol)
    app = f.application(pool, inst, carol, requested=requested, cost=cost, years=years)
    return f.reviewed(app, carol, alice, rita)


# --- The happy path ---------------------------------------------------------------------------------------------


def test_approval_commits_the_amount_everywhere_at_once(ready, alice, sh_pool, sh_programme):
    award = services.approve_application(application=ready, actor=alice, note="Strong case")
    ready.refresh_from_db()
    sh_pool.refresh_from_db()
    sh_programme.refresh_from_db()
    assert ready.status == Application.Status.APPROVED
    assert ready.decided_at is not None
    assert award.amount == D("1000000.00")
    assert award.reference == ready.reference
    assert award.approved_by == alice
    assert sh_pool.committed == sh_programme.committed == D("1000000.00")
    assert sh_pool.disbursed == 0
    (entry,) = LedgerEntry.objects.all()
    assert (entry.kind, entry.amount, entry.fiscal_year, entry.award) == (
        "commit",
        D("1000000.00"),
        2025,
        award,
    )
    assert entry.actor == alice
    assert audit_actions(ready)[-1] == "application.approve"
    assert_invariants()


def test_an_officer_may_award_less_than_requested(ready, alice):
    award = services.approve_application(application=ready, actor=alice, amount=D("750000.50"))
    assert award.amount == D("750000.50")
    assert_invariants()


def test_default_schedule_splits_by_largest_remainder_over_the_years(sh_pool, carol, alice, rita):
    app = ready_app(sh_pool, carol, alice, rita, years=3)
    award = services.approve_application(application=app, actor=alice)
    tranches = list(award.tranches.order_by("sequence"))
    assert [t.amount for t in tranches] == [D("333333.34"), D("333333.33"), D("333333.33")]
    assert [t.fiscal_year for t in tranches] == [2025, 2026, 2027]
    assert [t.scheduled_date for t in tranches] == [date(2025, 3, 1), date(2026, 3, 1), date(2027, 3, 1)]
    assert [t.requires_milestone for t in tranches] == [False, True, True]
    assert list(LedgerEntry.objects.order_by("fiscal_year").values_list("fiscal_year", "amount")) == [
        (2025, D("333333.34")),
        (2026, D("333333.33")),
        (2027, D("333333.33")),
    ]
    assert_invariants()


def test_first_tranche_share_and_no_milestone_gating(sh_pool, carol, alice, rita):
    app = ready_app(sh_pool, carol, alice, rita, years=3)
    award = services.approve_application(
        application=app,
        actor=alice,
        first_share=D("0.40"),
        milestone_gated=False,
        start_date=date(2026, 1, 15),
    )
    assert amounts(award) == [D("400000.00"), D("300000.00"), D("300000.00")]
    assert not award.tranches.filter(requires_milestone=True).exists()
    assert list(award.tranches.values_list("fiscal_year", flat=True)) == [2026, 2027, 2028]
    assert award.start_date == date(2026, 1, 15)


def test_first_share_must_be_a_fraction(sh_pool, carol, alice, rita):
    app = ready_app(sh_pool, carol, alice, rita, years=3)
    for share in (D("0"), D("1"), D("1.5")):
        with refused(InvalidInput):
            services.approve_application(application=app, actor=alice, first_share=share)


def test_an_amount_too_small_to_split_is_refused(sh_pool, carol, alice, rita):
    app = ready_app(sh_pool, carol, alice, rita, years=3)
    with refused(InvalidInput):
        services.approve_application(application=app, actor=alice, amount=D("0.02"))
    with refused(InvalidInput):
        services.approve_application(application=app, actor=alice, amount=D("0"))


def test_a_custom_schedule_is_kept_as_given(sh_pool, carol, alice, rita):
    app = ready_app(sh_pool, carol, alice, rita, years=2)
    schedule = services.parse_schedule(
        [
            {"scheduled_date": date(2025, 6, 1), "amount": "100000"},
            {"scheduled_date": date(2025, 12, 1), "amount": "400000", "requires_milestone": True},
            {"scheduled_date": date(2026, 6, 1), "amount": "500000"},
        ]
    )
    award = services.approve_application(application=app, actor=alice, schedule=schedule)
    assert amounts(award) == [D("100000.00"), D("400000.00"), D("500000.00")]
    assert list(award.tranches.values_list("requires_milestone", flat=True)) == [False, True, False]
    by_year = dict(LedgerEntry.objects.values_list("fiscal_year", "amount"))
    assert by_year == {2025: D("500000.00"), 2026: D("500000.00")}
    assert_invariants()


@pytest.mark.parametrize(
    "rows",
    [
        [{"scheduled_date": date(2025, 6, 1), "amount": "999999.99"}],  # a fen short
        [{"scheduled_date": date(2025, 6, 1), "amount": "1000000.01"}],  # a fen over
        [
            {"scheduled_date": date(2025, 6, 1), "amount": "1000000"},
            {"scheduled_date": date(2026, 6, 1), "amount": "0"},
        ],
        [{"scheduled_date": date(2040, 6, 1), "amount": "1000000"}],  # outside the programme's years
        [],
    ],
)
def test_a_custom_schedule_must_sum_exactly_within_the_programme_years(ready, alice, rows):
    with refused(InvalidInput) as info:
        services.approve_application(application=ready, actor=alice, schedule=services.parse_schedule(rows))
    assert "schedule" in info.value.fields


def test_a_malformed_schedule_row_is_refused():
    with pytest.raises(InvalidInput):
        services.parse_schedule([{"amount": "5"}])
    with pytest.raises(InvalidInput):
        services.parse_schedule([{"scheduled_date": date(2025, 1, 1), "amount": 0.5}])


# --- Each of the six levels of §4 refuses, naming level, asked and left ------------------------------------------


def test_level_1_pool_cap(ready, alice, sh_pool):
    FundingPool.objects.filter(pk=sh_pool.pk).update(cap=D("900000"))
    with refused(BudgetExceeded, level="pool_cap", asked=D("1000000.00"), left=D("900000.00")) as info:
        services.approve_application(application=ready, actor=alice)
    assert info.value.status == 409
    assert "the pool cap" in info.value.message
    assert info.value.as_dict()["details"]["left"] == "900000.00"


def test_level_2_fiscal_year_allotment(sh_pool, carol, alice, rita):
    services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2025, amount=D("500000"))
    services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2026, amount=D("300000"))
    app = ready_app(sh_pool, carol, alice, rita, years=3)
    # 2025 fits, 2026 does not: nothing is committed in any year.
    with refused(
        BudgetExceeded,
        level="fiscal_year_allotment",
        asked=D("333333.33"),
        left=D("300000.00"),
        fiscal_year=2026,
    ):
        services.approve_application(application=app, actor=alice)


def test_a_year_without_allotment_has_nothing_to_give_when_the_pool_has_allotments(
    sh_pool, carol, alice, rita
):
    services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2025, amount=D("5000000"))
    app = ready_app(sh_pool, carol, alice, rita, years=2)
    with refused(BudgetExceeded, level="fiscal_year_allotment", left=D("0.00"), fiscal_year=2026):
        services.approve_application(application=app, actor=alice)
    services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2026, amount=D("5000000"))
    services.approve_application(application=app, actor=alice)
    assert_invariants()


def test_level_3_institution_per_year(sh_pool, carol, alice, rita, carols_startup):
    first = ready_app(sh_pool, carol, alice, rita, inst=carols_startup)
    services.approve_application(application=first, actor=alice)
    second = ready_app(sh_pool, carol, alice, rita, inst=carols_startup)
    # Set after the second was submitted (submission asks the same maximum: tests/grants/test_duplicates.py).
    FundingPool.objects.filter(pk=sh_pool.pk).update(max_per_institution_year=D("1500000"))
    with refused(
        BudgetExceeded, level="institution_year", asked=D("1000000.00"), left=D("500000.00"), fiscal_year=2025
    ):
        services.approve_application(application=second, actor=alice)
    # Another year is another year's maximum.
    services.approve_application(application=second, actor=alice, start_date=date(2026, 3, 1))
    assert_invariants()


def test_level_4_per_award(ready, alice, sh_pool):
    FundingPool.objects.filter(pk=sh_pool.pk).update(max_per_award=D("1500000"))
    with refused(BudgetExceeded, level="per_award", asked=D("2000000.00"), left=D("1500000.00")):
        services.approve_application(application=ready, actor=alice, amount=D("2000000"))


def test_level_5_cost_share(ready, alice):
    # 30% of 10,000,000: 3,000,000 is the most; a fen more is refused.
    with refused(BudgetExceeded, level="cost_share", asked=D("3000000.01"), left=D("3000000.00")):
        services.approve_application(application=ready, actor=alice, amount=D("3000000.01"))
    assert services.approve_application(application=ready, actor=alice, amount=D("3000000")).amount == D(
        "3000000.00"
    )


def test_level_6_programme_total(ready, alice, sh_programme):
    # The pools' caps sum to more than the programme total only if set behind the services' back; the programme
    # counter still holds the line.
    Programme.objects.filter(pk=sh_programme.pk).update(total_budget=D("999999.99"))
    with refused(BudgetExceeded, level="programme_total", asked=D("1000000.00"), left=D("999999.99")):
        services.approve_application(application=ready, actor=alice)


def test_a_pool_filled_exactly_to_its_cap_takes_nothing_more(sh_pool, carol, alice, rita):
    FundingPool.objects.filter(pk=sh_pool.pk).update(cap=D("2000000"))
    for _ in range(2):
        services.approve_application(application=ready_app(sh_pool, carol, alice, rita), actor=alice)
    sh_pool.refresh_from_db()
    assert sh_pool.available == 0
    third = ready_app(sh_pool, carol, alice, rita)
    with refused(BudgetExceeded, level="pool_cap", asked=D("0.01"), left=D("0.00")):
        services.approve_application(application=third, actor=alice, amount=D("0.01"))
    assert_invariants()


# --- Other refusals --------------------------------------------------------------------------------------------


def test_approval_needs_the_pools_reviews(ready, alice, sh_pool):
    FundingPool.objects.filter(pk=sh_pool.pk).update(min_reviews=2)
    with refused(ReviewsMissing) as info:
        services.approve_application(application=ready, actor=alice)
    assert info.value.details == {"needed": 2, "submitted": 1}


def test_only_an_application_under_review_is_approved(draft, alice, carol):
    with refused(InvalidTransition):
        services.approve_application(application=draft, actor=alice)
    services.submit_application(application=draft, actor=carol)
    with refused(InvalidTransition):
        services.approve_application(application=draft, actor=alice)


def test_a_debarred_institution_gets_no_approval(ready, alice, carols_startup):
    services.debar_institution(
        institution=carols_startup, actor=alice, until=date(2099, 1, 1), reason="Fraud"
    )
    with refused(InstitutionDebarred):
        services.approve_application(application=ready, actor=alice)


def test_only_a_programme_officer_of_the_city_approves(ready, bob, dave, rita, carol):
    for actor in (bob, dave, rita, carol):
        with refused(NotPermitted):
            services.approve_application(application=ready, actor=actor)


def test_a_superuser_approves_anywhere(ready):
    from django.contrib.auth.models import User

    admin = User.objects.create_superuser("root", "root@example.cn", "pw")
    assert services.approve_application(application=ready, actor=admin).approved_by == admin


# --- Idempotency -------------------------------------------------------------------------------------------------


def test_the_same_approval_twice_moves_money_once(ready, alice, sh_pool):
    award = services.approve_application(application=ready, actor=alice, idempotency_key="k-1")
    with refused(Exception):  # nothing may change, whatever the replay returns
        again = services.approve_application(application=ready, actor=alice, idempotency_key="k-1")
        assert again.pk == award.pk
        raise Exception("replayed")
    # Without a key, a second approval is an invalid transition, not a second commitment.
    with refused(InvalidTransition):
        services.approve_application(application=ready, actor=alice)
    sh_pool.refresh_from_db()
    assert sh_pool.committed == D("1000000.00")


def test_an_idempotency_key_is_not_reused_for_another_application(ready, alice, sh_pool, carol, rita):
    services.approve_application(application=ready, actor=alice, idempotency_key="k-1")
    other = ready_app(sh_pool, carol, alice, rita)
    with refused(IdempotencyConflict):
        services.approve_application(application=other, actor=alice, idempotency_key="k-1")


def test_a_replay_by_an_officer_of_another_city_is_refused(ready, alice, bob):
    services.approve_application(application=ready, actor=alice, idempotency_key="k-1")
    with refused(NotPermitted):
        services.approve_application(application=ready, actor=bob, idempotency_key="k-1")


# --- Amendment ---------------------------------------------------------------------------------------------------


@pytest.fixture
def award3(sh_pool, carols_startup, carol, alice, rita):
    """3,000,000 over 2025, 2026, 2027; no milestone gating."""
    return f.award(
        sh_pool, carols_startup, carol, alice, rita, requested="3000000", years=3, milestone_gated=False
    )


def test_an_increase_commits_the_difference_over_the_unpaid_tranches(award3, alice, sh_pool):
    services.amend_award(award=award3, actor=alice, amount=D("3600000"), reason="Scope grew")
    award3.refresh_from_db()
    assert award3.amount == D("3600000.00")
    assert award3.amendments == 1
    assert amounts(award3) == [D("1200000.00")] * 3
    commits = LedgerEntry.objects.filter(kind="commit").exclude(reason__startswith="approval")
    assert sorted(commits.values_list("fiscal_year", "amount")) == [
        (y, D("200000.00")) for y in (2025, 2026, 2027)
    ]
    sh_pool.refresh_from_db()
    assert sh_pool.committed == D("3600000.00")
    assert audit_actions(award3) == ["award.amend"]
    assert_invariants()


def test_a_decrease_de_commits(award3, alice, sh_pool):
    services.amend_award(award=award3, actor=alice, amount=D("2000000.01"), reason="Cheaper GPUs")
    award3.refresh_from_db()
    assert amounts(award3) == [D("666666.67"), D("666666.67"), D("666666.67")]
    assert LedgerEntry.objects.filter(kind="decommit").count() == 3
    sh_pool.refresh_from_db()
    assert sh_pool.committed == D("2000000.01")
    assert_invariants()


def test_an_amendment_leaves_paid_tranches_alone(award3, alice, dave, frank):
    first = award3.tranches.get(sequence=1)
    services.release_tranche(tranche=first, actor=dave)
    services.pay_tranche(tranche=first, actor=frank, payment_reference="PAY-1")
    with refused(InvalidInput):
        services.amend_award(award=award3, actor=alice, amount=D("999999.99"), reason="Too low")
    services.amend_award(award=award3, actor=alice, amount=D("2000000"), reason="Less")
    assert amounts(award3) == [D("1000000.00"), D("500000.00"), D("500000.00")]
    assert_invariants()


def test_amending_down_to_what_was_paid_cancels_the_rest_and_completes_the_award(award3, alice, dave, frank):
    first = award3.tranches.get(sequence=1)
    services.release_tranche(tranche=first, actor=dave)
    services.pay_tranche(tranche=first, actor=frank, payment_reference="PAY-1")
    services.amend_award(award=award3, actor=alice, amount=D("1000000"), reason="Stop after year one")
    award3.refresh_from_db()
    assert list(award3.tranches.values_list("status", flat=True)) == ["paid", "cancelled", "cancelled"]
    assert award3.status == Award.Status.COMPLETED
    assert_invariants()


def test_an_increase_is_checked_like_an_approval(award3, alice, sh_pool):
    FundingPool.objects.filter(pk=sh_pool.pk).update(cap=D("3500000"))
    with refused(BudgetExceeded, level="pool_cap", asked=D("600000.00"), left=D("500000.00")):
        services.amend_award(award=award3, actor=alice, amount=D("3600000"), reason="More")
    FundingPool.objects.filter(pk=sh_pool.pk).update(cap=D("600000000"), max_per_award=D("3500000"))
    with refused(BudgetExceeded, level="per_award", asked=D("3600000.00"), left=D("3500000.00")):
        services.amend_award(award=award3, actor=alice, amount=D("3600000"), reason="More")
    FundingPool.objects.filter(pk=sh_pool.pk).update(
        max_per_award=None, max_per_institution_year=D("1100000")
    )
    with refused(BudgetExceeded, level="institution_year", asked=D("200000.00"), left=D("100000.00")):
        services.amend_award(award=award3, actor=alice, amount=D("3600000"), reason="More")
    FundingPool.objects.filter(pk=sh_pool.pk).update(max_per_institution_year=None)
    # Cost share: the application's eligible cost is 12,000,000 at 30%.
    with refused(BudgetExceeded, level="cost_share", asked=D("3600000.01"), left=D("3600000.00")):
        services.amend_award(award=award3, actor=alice, amount=D("3600000.01"), reason="More")
    services.amend_award(award=award3, actor=alice, amount=D("3600000"), reason="More")
    assert_invariants()


def test_an_increase_is_checked_against_the_allotments(award3, alice, sh_pool):
    for year in (2025, 2026, 2027):
        services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=year, amount=D("1100000"))
    with refused(
        BudgetExceeded,
        level="fiscal_year_allotment",
        asked=D("200000.00"),
        left=D("100000.00"),
        fiscal_year=2025,
    ):
        services.amend_award(award=award3, actor=alice, amount=D("3600000"), reason="More")


def test_amendment_refusals(award3, alice, bob, dave):
    with refused(InvalidInput):
        services.amend_award(award=award3, actor=alice, amount=D("3000000"), reason="Same")
    with refused(InvalidInput):
        services.amend_award(award=award3, actor=alice, amount=D("1"), reason=" ")
    for actor in (bob, dave):
        with refused(NotPermitted):
            services.amend_award(award=award3, actor=actor, amount=D("2000000"), reason="Less")
    services.terminate_award(award=award3, actor=alice, reason="Fraud")
    with refused(InvalidInput):
        services.amend_award(award=award3, actor=alice, amount=D("2000000"), reason="Less")


def test_the_same_amendment_twice_moves_money_once(award3, alice):
    services.amend_award(
        award=award3, actor=alice, amount=D("2000000"), reason="Less", idempotency_key="am-1"
    )
    with refused(Exception):
        services.amend_award(
            award=award3, actor=alice, amount=D("2000000"), reason="Less", idempotency_key="am-1"
        )
        raise Exception("replayed")
    award3.refresh_from_db()
    assert award3.amendments == 1
    assert award3.amount == D("2000000.00")


def test_tranches_of_a_new_award_start_planned(award3):
    assert set(award3.tranches.values_list("status", flat=True)) == {Tranche.Status.PLANNED}
