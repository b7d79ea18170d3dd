"""Two people for big decisions (issue 14, item 1), through the services: above a pool's threshold an approval,
an upward amendment or a payment is proposed by one officer and confirmed or sent back by a second; the proposal
reserves its money against every budget level until then; the releaser of a tranche does not pay it, in every
pool.

Personas beyond tests/conftest.py: amir, a second Shanghai programme officer; fay and gus, Shanghai finance
officers beside dave.
"""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from grants import services, tasks, workflow
from grants.errors import (
    BudgetExceeded,
    InvalidInput,
    InvalidTransition,
    NotPermitted,
    ProposalPending,
    SecondOfficerRequired,
    SeparationOfDuties,
)
from grants.models import Application, Award, FiscalYearAllotment, LedgerEntry, Proposal, Tranche
from grants.roles import Role
from grants.services.budget import IdempotencyConflict
from tests import factories as f
from tests.grants.invariants import assert_invariants, audit_actions, refused

D = Decimal
K = LedgerEntry.Kind
P = Proposal.Status


@pytest.fixture
def amir(shanghai):
    return f.user("amir", roles=(Role.PROGRAMME_OFFICER,), cities=(shanghai,))


@pytest.fixture
def fay(shanghai):
    return f.user("fay", roles=(Role.FINANCE_OFFICER,), cities=(shanghai,))


@pytest.fixture
def gus(shanghai):
    return f.user("gus", roles=(Role.FINANCE_OFFICER,), cities=(shanghai,))


@pytest.fixture
def guarded(sh_pool):
    """Shanghai's computing pool with both thresholds: awards above 500,000 and payments above 200,000 need a
    second officer."""
    sh_pool.approval_threshold = D("500000")
    sh_pool.payment_threshold = D("200000")
    sh_pool.save(update_fields=["approval_threshold", "payment_threshold"])
    return sh_pool


def ready_app(pool, carol, alice, rita, *, requested="1000000", years=1, inst=None):
    inst = inst or f.institution(pool.programme.city, carol)
    app = f.application(pool, inst, carol, requested=requested, cost=str(D(requested) * 4), years=years)
    return f.reviewed(app, carol, alice, rita)


def held(obj) -> Decimal:
    obj.refresh_from_db()
    return obj.reserved


# --- Thresholds -------------------------------------------------------------------------------------------------


def test_without_thresholds_one_officer_approves_alone_but_the_releaser_does_not_pay(
    sh_pool, carols_startup, carol, alice, rita, dave, frank
):
    """No threshold: one programme officer approves alone and one finance officer pays alone, but never the one who
    released the tranche (the separation of duties holds in every pool)."""
    assert (sh_pool.approval_threshold, sh_pool.payment_threshold) == (None, None)
    award = f.award(sh_pool, carols_startup, carol, alice, rita, requested="9000000", milestone_gated=False)
    (tranche,) = award.tranches.all()
    services.release_tranche(tranche=tranche, actor=dave)
    tranche.refresh_from_db()
    assert not workflow.allowed(dave, tranche, Tranche.Status.PAID)
    with refused(SeparationOfDuties, reason="released_it"):
        services.pay_tranche(tranche=tranche, actor=dave, payment_reference="ALONE-1")
    assert workflow.allowed(frank, tranche, Tranche.Status.PAID)
    services.pay_tranche(tranche=tranche, actor=frank, payment_reference="ALONE-1")
    tranche.refresh_from_db()
    assert (award.approved_by, award.confirmed_by) == (alice, None)
    assert (tranche.status, tranche.released_by, tranche.paid_by, tranche.confirmed_by) == (
        Tranche.Status.PAID,
        dave,
        frank,
        None,
    )
    assert_invariants()


def test_without_thresholds_a_superuser_who_released_does_not_pay_and_the_daily_job_is_nobody(
    sh_pool, carols_startup, carol, alice, rita, dave
):
    root = User.objects.create_superuser("root", "root@example.cn", "correct horse battery")
    award = f.award(
        sh_pool, carols_startup, carol, alice, rita, requested="2000000", years=2, milestone_gated=False
    )
    first, second = award.tranches.order_by("sequence")
    services.release_tranche(tranche=first, actor=root)
    with refused(SeparationOfDuties, reason="released_it"):
        services.pay_tranche(tranche=first, actor=root, payment_reference="ROOT-1")
    services.pay_tranche(tranche=first, actor=dave, payment_reference="ROOT-1")
    assert services.release_due_tranches() == [second.pk]
    second.refresh_from_db()
    assert second.released_by is None
    services.pay_tranche(tranche=second, actor=dave, payment_reference="JOB-1")
    second.refresh_from_db()
    assert (second.status, second.paid_by) == (Tranche.Status.PAID, dave)
    assert_invariants()


def test_above_the_threshold_one_officer_may_not_approve_alone(guarded, carol, alice, rita):
    app = ready_app(guarded, carol, alice, rita, requested="500000.01")
    with refused(SecondOfficerRequired, threshold=D("500000")):
        services.approve_application(application=app, actor=alice)


def test_at_the_threshold_one_officer_still_approves(guarded, carol, alice, rita):
    app = ready_app(guarded, carol, alice, rita, requested="500000")
    award = services.approve_application(application=app, actor=alice)
    assert award.confirmed_by is None
    assert_invariants()


def test_the_threshold_asks_the_amount_awarded_not_the_amount_requested(guarded, carol, alice, rita):
    app = ready_app(guarded, carol, alice, rita, requested="2000000")
    award = services.approve_application(application=app, actor=alice, amount=D("400000"))
    assert award.amount == D("400000")


# --- Proposing an approval reserves its money at every level ----------------------------------------------------


def test_a_proposal_reserves_the_amount_at_every_level_and_decides_nothing(
    guarded, sh_programme, carol, alice, rita
):
    for year in (2025, 2026):
        services.set_allotment(pool=guarded, actor=alice, fiscal_year=year, amount=D("10000000"))
    app = ready_app(guarded, carol, alice, rita, requested="3000000", years=2)
    proposal = services.propose_approval(application=app, actor=alice, note="Strong case")
    app.refresh_from_db()
    assert app.status == Application.Status.UNDER_REVIEW
    assert not Award.objects.exists()
    assert (proposal.status, proposal.kind, proposal.proposed_by, proposal.amount) == (
        P.PENDING,
        Proposal.Kind.APPROVAL,
        alice,
        D("3000000"),
    )
    assert proposal.expires_at == proposal.proposed_at + timedelta(days=7)
    assert held(guarded) == held(sh_programme) == D("3000000")
    guarded.refresh_from_db()
    assert guarded.committed == 0
    allotments = FiscalYearAllotment.objects.filter(pool=guarded).order_by("fiscal_year")
    assert [(a.fiscal_year, a.reserved, a.committed) for a in allotments] == [
        (2025, D("1500000"), 0),
        (2026, D("1500000"), 0),
    ]
    entries = LedgerEntry.objects.filter(proposal=proposal).order_by("id")
    assert [(e.kind, e.amount, e.fiscal_year) for e in entries] == [
        (K.RESERVE, D("1500000"), 2025),
        (K.RESERVE, D("1500000"), 2026),
    ]
    assert audit_actions(proposal) == ["proposal.approval"]
    assert_invariants()


def test_reserved_money_counts_against_the_pool_cap(sh_programme, carol, alice, rita):
    pool = f.pool(sh_programme, code="SML", cap="5000000", approval_threshold=D("100000"))
    first = ready_app(pool, carol, alice, rita, requested="3000000")
    second = ready_app(pool, carol, alice, rita, requested="2500000")
    services.propose_approval(application=first, actor=alice)
    with refused(BudgetExceeded, level="pool_cap", left=D("2000000")):
        services.propose_approval(application=second, actor=alice)


def test_a_direct_approval_below_the_threshold_sees_the_reservations(sh_programme, carol, alice, rita):
    pool = f.pool(sh_programme, code="SML", cap="5000000", approval_threshold=D("3000000"))
    services.propose_approval(
        application=ready_app(pool, carol, alice, rita, requested="4000000"), actor=alice
    )
    small = ready_app(pool, carol, alice, rita, requested="1500000")
    with refused(BudgetExceeded, level="pool_cap", left=D("1000000")):
        services.approve_application(application=small, actor=alice)


def test_reserved_money_counts_against_the_fiscal_year_allotment(guarded, carol, alice, rita):
    services.set_allotment(pool=guarded, actor=alice, fiscal_year=2025, amount=D("2000000"))
    services.propose_approval(
        application=ready_app(guarded, carol, alice, rita, requested="1500000"), actor=alice
    )
    second = ready_app(guarded, carol, alice, rita, requested="600000")
    with refused(BudgetExceeded, level="fiscal_year_allotment", fiscal_year=2025, left=D("500000")):
        services.propose_approval(application=second, actor=alice)


def test_reserved_money_counts_against_the_institutions_yearly_maximum(
    sh_programme, carols_startup, carol, alice, rita
):
    """An institution has one open application per pool: its award's amendment, proposed, holds part of the
    year's maximum that its next application then cannot have."""
    pool = f.pool(sh_programme, code="INS", max_rate=None, max_per_institution_year=D("2000000"))
    award = f.award(pool, carols_startup, carol, alice, rita, requested="1200000")
    nxt = ready_app(pool, carol, alice, rita, requested="500000", inst=carols_startup)
    pool.approval_threshold = D("100000")
    pool.save(update_fields=["approval_threshold"])
    services.propose_amendment(award=award, actor=alice, amount=D("1600000"), reason="second cluster")
    with refused(BudgetExceeded, level="institution_year", fiscal_year=2025, left=D("400000")):
        services.propose_approval(application=nxt, actor=alice)


def test_reserved_money_counts_against_the_programme_total(shanghai, carol, alice, rita):
    programme = f.programme(shanghai, code="2030", total="3000000")
    left_pool = f.pool(programme, code="L", cap="2000000", approval_threshold=D("1"))
    right_pool = f.pool(programme, code="R", cap="2000000", approval_threshold=D("1"))
    services.propose_approval(
        application=ready_app(left_pool, carol, alice, rita, requested="2000000"), actor=alice
    )
    right = ready_app(right_pool, carol, alice, rita, requested="1500000")
    with refused(BudgetExceeded, level="programme_total", left=D("1000000")):
        services.propose_approval(application=right, actor=alice)


def test_an_allotment_added_after_a_proposal_starts_with_its_reservation(guarded, carol, alice, rita, amir):
    proposal = services.propose_approval(
        application=ready_app(guarded, carol, alice, rita, requested="900000"), actor=alice
    )
    with refused(InvalidInput):  # the year's allotment must cover what is already reserved in it
        services.set_allotment(pool=guarded, actor=alice, fiscal_year=2025, amount=D("800000"))
    services.set_allotment(pool=guarded, actor=alice, fiscal_year=2025, amount=D("1000000"))
    assert FiscalYearAllotment.objects.get(pool=guarded, fiscal_year=2025).reserved == D("900000")
    assert_invariants()
    services.send_back_proposal(proposal=proposal, actor=amir, note="wrong year")
    assert FiscalYearAllotment.objects.get(pool=guarded, fiscal_year=2025).reserved == 0
    assert_invariants()


def test_a_cap_cannot_be_lowered_under_what_is_reserved(sh_programme, carol, alice, rita):
    pool = f.pool(sh_programme, code="SML", cap="5000000", approval_threshold=D("100000"))
    services.propose_approval(
        application=ready_app(pool, carol, alice, rita, requested="3000000"), actor=alice
    )
    with refused(InvalidInput):
        services.set_pool_cap(pool=pool, actor=alice, cap=D("2500000"))
    services.set_pool_cap(pool=pool, actor=alice, cap=D("3000000"))
    assert_invariants()


def test_a_proposal_is_refused_what_an_approval_would_be(guarded, draft, alice, bob, dave):
    with refused(InvalidTransition):
        services.propose_approval(application=draft, actor=alice)  # not under review yet
    with refused(NotPermitted):
        services.propose_approval(application=draft, actor=bob)  # another city
    with refused(NotPermitted):
        services.propose_approval(application=draft, actor=dave)  # not an officer


def test_one_proposal_at_a_time_and_no_direct_decision_beside_it(guarded, carol, alice, rita, amir):
    app = ready_app(guarded, carol, alice, rita, requested="600000")
    services.propose_approval(application=app, actor=alice)
    with refused(ProposalPending):
        services.propose_approval(application=app, actor=amir)
    with refused(ProposalPending):
        services.approve_application(application=app, actor=amir, amount=D("100000"))


def test_the_same_proposal_twice_reserves_once(guarded, carol, alice, rita):
    app = ready_app(guarded, carol, alice, rita, requested="600000")
    first = services.propose_approval(application=app, actor=alice, idempotency_key="k-1")
    again = services.propose_approval(application=app, actor=alice, idempotency_key="k-1")
    assert first.pk == again.pk
    assert held(guarded) == D("600000")
    other = ready_app(guarded, carol, alice, rita, requested="700000")
    with refused(IdempotencyConflict):
        services.propose_approval(application=other, actor=alice, idempotency_key="k-1")


# --- Confirmation -----------------------------------------------------------------------------------------------


def test_the_proposer_may_not_confirm_their_own_proposal(guarded, carol, alice, rita):
    proposal = services.propose_approval(application=ready_app(guarded, carol, alice, rita), actor=alice)
    assert not workflow.allowed(alice, proposal, P.CONFIRMED)
    with refused(SeparationOfDuties, reason="proposed_it"):
        services.confirm_proposal(proposal=proposal, actor=alice)
    with refused(SeparationOfDuties, reason="proposed_it"):
        services.send_back_proposal(proposal=proposal, actor=alice, note="changed my mind")


def test_a_superuser_may_not_confirm_their_own_proposal_either(guarded, carol, alice, rita, admin_user):
    proposal = services.propose_approval(application=ready_app(guarded, carol, alice, rita), actor=admin_user)
    with refused(SeparationOfDuties):
        services.confirm_proposal(proposal=proposal, actor=admin_user)
    assert workflow.allowed(alice, proposal, P.CONFIRMED)


def test_only_a_programme_officer_of_the_city_confirms_an_approval(
    guarded, carol, alice, rita, bob, dave, erin
):
    proposal = services.propose_approval(application=ready_app(guarded, carol, alice, rita), actor=alice)
    for outsider in (bob, dave, erin, carol):
        assert not workflow.allowed(outsider, proposal, P.CONFIRMED)
        with refused(NotPermitted):
            services.confirm_proposal(proposal=proposal, actor=outsider)


def test_confirmation_makes_the_award_exactly_as_a_direct_approval(
    guarded, sh_programme, carol, alice, rita, amir
):
    for year in (2025, 2026, 2027):
        services.set_allotment(pool=guarded, actor=alice, fiscal_year=year, amount=D("10000000"))
    proposed = ready_app(guarded, carol, alice, rita, requested="3000000", years=3)
    direct = ready_app(guarded, carol, alice, rita, requested="3000000", years=3)
    proposal = services.propose_approval(application=proposed, actor=alice, first_share=D("0.40"), note="n")
    assert workflow.allowed(amir, proposal, P.CONFIRMED)
    services.confirm_proposal(proposal=proposal, actor=amir, note="Checked the schedule")
    guarded.approval_threshold = None
    guarded.save(update_fields=["approval_threshold"])
    twin = services.approve_application(application=direct, actor=alice, first_share=D("0.40"))

    proposal.refresh_from_db()
    award = proposal.award
    assert award is not None
    assert (proposal.status, proposal.decided_by, proposal.decision_note) == (
        P.CONFIRMED,
        amir,
        "Checked the schedule",
    )
    assert (award.approved_by, award.confirmed_by, award.amount) == (alice, amir, D("3000000"))
    shape = ("sequence", "fiscal_year", "scheduled_date", "amount", "requires_milestone", "status")
    assert list(award.tranches.order_by("sequence").values_list(*shape)) == list(
        twin.tranches.order_by("sequence").values_list(*shape)
    )
    assert [(e.kind, e.amount, e.fiscal_year) for e in award.ledger_entries.order_by("id")] == [
        (e.kind, e.amount, e.fiscal_year) for e in twin.ledger_entries.order_by("id")
    ]
    kinds = list(LedgerEntry.objects.filter(proposal=proposal).values_list("kind", flat=True))
    assert kinds == [K.RESERVE] * 3 + [K.RELEASE] * 3
    assert held(guarded) == held(sh_programme) == 0
    assert set(FiscalYearAllotment.objects.filter(pool=guarded).values_list("reserved", flat=True)) == {D(0)}
    guarded.refresh_from_db()
    assert guarded.committed == D("6000000")
    proposed.refresh_from_db()
    assert proposed.status == Application.Status.APPROVED
    assert audit_actions(proposal) == ["proposal.approval", "proposal.confirmed"]
    assert_invariants()


def test_a_confirmation_the_approval_refuses_changes_nothing(guarded, carol, alice, rita, amir):
    app = ready_app(guarded, carol, alice, rita, requested="800000")
    proposal = services.propose_approval(application=app, actor=alice)
    services.withdraw_application(application=app, actor=carol)
    with refused(InvalidTransition):
        services.confirm_proposal(proposal=proposal, actor=amir)
    # The officer sends it back instead, and the money is free again.
    services.send_back_proposal(proposal=proposal, actor=amir, note="withdrawn by the applicant")
    assert held(guarded) == 0
    assert_invariants()


# --- Sending back and expiry ------------------------------------------------------------------------------------


def test_sending_back_releases_the_reservation(guarded, sh_programme, carol, alice, rita, amir):
    app = ready_app(guarded, carol, alice, rita, requested="900000")
    proposal = services.propose_approval(application=app, actor=alice)
    with refused(InvalidInput):
        services.send_back_proposal(proposal=proposal, actor=amir, note=" ")
    services.send_back_proposal(proposal=proposal, actor=amir, note="Cost share looks wrong")
    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_by) == (P.SENT_BACK, amir)
    assert held(guarded) == held(sh_programme) == 0
    app.refresh_from_db()
    assert app.status == Application.Status.UNDER_REVIEW
    assert audit_actions(proposal) == ["proposal.approval", "proposal.sent_back"]
    assert_invariants()
    # Refused from now on, changing nothing; and a new proposal may be made.
    with refused(InvalidTransition, current=P.SENT_BACK):
        services.confirm_proposal(proposal=proposal, actor=amir)
    with refused(InvalidTransition):
        services.send_back_proposal(proposal=proposal, actor=amir, note="again")
    services.propose_approval(application=app, actor=amir, amount=D("700000"))
    assert held(guarded) == D("700000")


def test_expiry_releases_the_reservation_once(guarded, carol, alice, rita, amir, settings):
    settings.PROPOSAL_EXPIRY_DAYS = 3
    app = ready_app(guarded, carol, alice, rita, requested="900000")
    proposal = services.propose_approval(application=app, actor=alice)
    assert proposal.expires_at == proposal.proposed_at + timedelta(days=3)
    assert services.expire_proposals(now=timezone.now() + timedelta(days=2)) == []
    assert services.expire_proposals(now=timezone.now() + timedelta(days=3, minutes=1)) == [proposal.pk]
    assert services.expire_proposals(now=timezone.now() + timedelta(days=4)) == []
    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_by) == (P.EXPIRED, None)
    assert held(guarded) == 0
    assert LedgerEntry.objects.filter(proposal=proposal, kind=K.RELEASE).count() == 1
    with refused(InvalidTransition, current=P.EXPIRED):
        services.confirm_proposal(proposal=proposal, actor=amir)
    assert_invariants()


def test_the_scheduled_job_expires_and_beat_runs_it(guarded, carol, alice, rita, settings):
    proposal = services.propose_approval(application=ready_app(guarded, carol, alice, rita), actor=alice)
    Proposal.objects.filter(pk=proposal.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert settings.CELERY_BEAT_SCHEDULE["expire-proposals"]["task"] == "grants.expire_proposals"
    assert tasks.expire_proposals() == 1
    assert tasks.expire_proposals() == 0
    assert held(guarded) == 0
    assert_invariants()


def test_a_pool_sets_its_own_expiry(guarded, carol, alice, rita):
    guarded.proposal_expiry_days = 1
    guarded.save(update_fields=["proposal_expiry_days"])
    proposal = services.propose_approval(application=ready_app(guarded, carol, alice, rita), actor=alice)
    assert proposal.expires_at == proposal.proposed_at + timedelta(days=1)


# --- Amendments -------------------------------------------------------------------------------------------------


@pytest.fixture
def small_award(guarded, carols_startup, carol, alice, rita):
    """400,000 over two years, under the threshold, approved by one officer; no cost-share limit."""
    guarded.max_rate = None
    guarded.save(update_fields=["max_rate"])
    return f.award(
        guarded, carols_startup, carol, alice, rita, requested="400000", years=2, milestone_gated=False
    )


def test_an_amendment_above_the_threshold_needs_a_second_officer(small_award, guarded, alice, amir):
    with refused(SecondOfficerRequired):
        services.amend_award(award=small_award, actor=alice, amount=D("600000"), reason="more GPUs")
    services.amend_award(award=small_award, actor=alice, amount=D("450000"), reason="a little more")
    services.amend_award(
        award=small_award, actor=alice, amount=D("300000"), reason="less"
    )  # decreases: alone
    with refused(InvalidInput):
        services.propose_amendment(award=small_award, actor=alice, amount=D("200000"), reason="less")
    proposal = services.propose_amendment(
        award=small_award, actor=alice, amount=D("800000"), reason="more GPUs"
    )
    assert held(guarded) == D("500000")  # the increase, split over the open tranches' years
    assert sorted(LedgerEntry.objects.filter(proposal=proposal).values_list("fiscal_year", "amount")) == [
        (2025, D("250000")),
        (2026, D("250000")),
    ]
    with refused(ProposalPending):
        services.amend_award(award=small_award, actor=amir, amount=D("350000"), reason="meanwhile")
    with refused(SeparationOfDuties):
        services.confirm_proposal(proposal=proposal, actor=alice)
    services.confirm_proposal(proposal=proposal, actor=amir)
    small_award.refresh_from_db()
    assert small_award.amount == D("800000")
    assert list(small_award.tranches.order_by("sequence").values_list("amount", flat=True)) == [
        D("400000"),
        D("400000"),
    ]
    assert held(guarded) == 0
    assert audit_actions(small_award)[-1] == "award.amend"
    assert_invariants()


# --- Payments ---------------------------------------------------------------------------------------------------


@pytest.fixture
def due(guarded, carols_startup, carol, alice, rita):
    """Two due tranches: 150,000 (under the payment threshold) and 250,000 (above it)."""
    award = f.award(
        guarded,
        carols_startup,
        carol,
        alice,
        rita,
        requested="400000",
        years=2,
        milestone_gated=False,
        schedule=[
            services.TrancheSpec(date(2025, 3, 1), D("150000")),
            services.TrancheSpec(date(2025, 9, 1), D("250000")),
        ],
    )
    return award.tranches.order_by("sequence")


def test_the_releaser_may_not_pay_the_tranche(due, dave, fay):
    small, _big = due
    services.release_tranche(tranche=small, actor=dave)
    small.refresh_from_db()
    assert small.released_by == dave
    assert not workflow.allowed(dave, small, Tranche.Status.PAID)
    with refused(SeparationOfDuties, reason="released_it"):
        services.pay_tranche(tranche=small, actor=dave, payment_reference="SOD-1")
    assert workflow.allowed(fay, small, Tranche.Status.PAID)
    services.pay_tranche(tranche=small, actor=fay, payment_reference="SOD-1")
    small.refresh_from_db()
    assert (small.status, small.paid_by, small.confirmed_by) == (Tranche.Status.PAID, fay, None)
    assert_invariants()


def test_a_tranche_the_daily_job_released_may_be_paid_by_anyone(due, dave):
    small, _big = due
    services.release_due_tranches(today=date(2025, 3, 1))
    small.refresh_from_db()
    assert (small.status, small.released_by) == (Tranche.Status.PAYABLE, None)
    services.pay_tranche(tranche=small, actor=dave, payment_reference="JOB-1")


def test_a_payment_above_the_threshold_needs_a_second_finance_officer(due, dave, fay, gus):
    _small, big = due
    services.release_tranche(tranche=big, actor=dave, today=date(2025, 9, 1))
    with refused(SecondOfficerRequired, threshold=D("200000")):
        services.pay_tranche(tranche=big, actor=fay, payment_reference="BIG-1")
    with refused(SeparationOfDuties, reason="released_it"):
        services.propose_payment(tranche=big, actor=dave, payment_reference="BIG-1")
    proposal = services.propose_payment(
        tranche=big, actor=fay, payment_reference="BIG-1", paid_on=date(2025, 9, 2)
    )
    assert LedgerEntry.objects.filter(proposal=proposal).count() == 0  # a payment reserves nothing
    big.refresh_from_db()
    assert big.status == Tranche.Status.PAYABLE
    with refused(ProposalPending):
        services.pay_tranche(tranche=big, actor=gus, payment_reference="BIG-2")
    with refused(SeparationOfDuties, reason="proposed_it"):
        services.confirm_proposal(proposal=proposal, actor=fay)
    with refused(SeparationOfDuties, reason="released_it"):
        services.confirm_proposal(proposal=proposal, actor=dave)
    assert not workflow.allowed(dave, proposal, P.CONFIRMED)
    assert workflow.allowed(gus, proposal, P.CONFIRMED)
    services.confirm_proposal(proposal=proposal, actor=gus)
    big.refresh_from_db()
    assert (big.status, big.payment_reference, big.paid_on) == (
        Tranche.Status.PAID,
        "BIG-1",
        date(2025, 9, 2),
    )
    assert (big.released_by, big.paid_by, big.confirmed_by) == (dave, fay, gus)
    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_by) == (P.CONFIRMED, gus)
    assert_invariants()


def test_a_programme_officer_may_not_confirm_a_payment(due, dave, fay, alice):
    _small, big = due
    services.release_tranche(tranche=big, actor=dave, today=date(2025, 9, 1))
    proposal = services.propose_payment(tranche=big, actor=fay, payment_reference="BIG-1")
    with refused(NotPermitted):
        services.confirm_proposal(proposal=proposal, actor=alice)
