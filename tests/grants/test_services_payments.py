"""After approval (§3, §4): release, pay, withhold, cancel, suspend, resume, terminate, recover, milestones, debar.

The award of these tests: 3,000,000 over three tranches on 1 March 2025, 2026 and 2027; the later two need an
accepted milestone report. Tests run on 28 November 2026 or later, so the first two dates have come.
"""

from datetime import date
from decimal import Decimal

import pytest
from django.utils import timezone

from grants import services
from grants.errors import (
    DuplicatePaymentReference,
    InstitutionDebarred,
    InvalidInput,
    InvalidTransition,
    NotPermitted,
)
from grants.models import Award, LedgerEntry, MilestoneReport, Recovery, Tranche
from grants.roles import Role
from grants.services.budget import IdempotencyConflict
from tests import factories as f
from tests.grants.invariants import assert_invariants, audit_actions, refused

D = Decimal
T = Tranche.Status
W = Award.Status


@pytest.fixture
def award(sh_pool, carols_startup, carol, alice, rita):
    return f.award(sh_pool, carols_startup, carol, alice, rita, requested="3000000", years=3)


def tranche(award: Award, sequence: int) -> Tranche:
    return award.tranches.get(sequence=sequence)


def paid_first(award, dave, reference="PAY-1"):
    """Tranche 1 released by `dave` and paid by a second finance officer: the releaser may not pay it."""
    first = tranche(award, 1)
    services.release_tranche(tranche=first, actor=dave)
    services.pay_tranche(
        tranche=first,
        actor=f.second_finance(award.pool.programme.city),
        payment_reference=reference,
        paid_on=date(2026, 4, 1),
    )
    return first


def accepted_milestone(t, carol, alice):
    report = services.submit_milestone_report(tranche=t, actor=carol, summary="Cluster running")
    services.decide_milestone_report(report=report, actor=alice, accept=True)
    t.refresh_from_db()
    return t


@pytest.fixture
def sh_finance_hz(hangzhou):
    """A finance officer of another city."""
    return f.user("harry", roles=(Role.FINANCE_OFFICER,), cities=(hangzhou,))


def test_the_award_fixture_is_as_described(award):
    assert [(t.scheduled_date, t.amount, t.requires_milestone) for t in award.tranches.all()] == [
        (date(2025, 3, 1), D("1000000.00"), False),
        (date(2026, 3, 1), D("1000000.00"), True),
        (date(2027, 3, 1), D("1000000.00"), True),
    ]
    assert timezone.localdate() < date(2027, 3, 1), "the tests assume the last tranche's date is to come"


# --- Release --------------------------------------------------------------------------------------------------


def test_finance_releases_a_due_tranche(award, dave):
    first = services.release_tranche(tranche=tranche(award, 1), actor=dave)
    assert first.status == T.PAYABLE
    assert audit_actions(first) == ["tranche.release"]
    with refused(InvalidTransition):
        services.release_tranche(tranche=first, actor=dave)


def test_a_tranche_whose_date_has_not_come_is_not_released(award, dave):
    with refused(InvalidInput):
        services.release_tranche(tranche=tranche(award, 3), actor=dave)
    assert (
        services.release_tranche(tranche=tranche(award, 1), actor=dave, today=date(2025, 3, 1)).status
        == T.PAYABLE
    )


def test_a_gated_tranche_needs_an_accepted_milestone_report(award, dave, carol, alice):
    second = tranche(award, 2)
    with refused(InvalidInput):
        services.release_tranche(tranche=second, actor=dave)
    report = services.submit_milestone_report(tranche=second, actor=carol, summary="Half done")
    with refused(InvalidInput):
        services.release_tranche(tranche=second, actor=dave)
    services.decide_milestone_report(report=report, actor=alice, accept=False, note="No evidence")
    with refused(InvalidInput):
        services.release_tranche(tranche=second, actor=dave)
    services.decide_milestone_report(
        report=services.submit_milestone_report(tranche=second, actor=carol, summary="Evidence attached"),
        actor=alice,
        accept=True,
    )
    second.refresh_from_db()
    assert second.status == T.PAYABLE  # accepting made the due tranche payable at once
    assert audit_actions(second) == ["tranche.release"]


def test_only_finance_of_the_city_releases(award, alice, sh_finance_hz):
    for actor in (alice, sh_finance_hz):
        with refused(NotPermitted):
            services.release_tranche(tranche=tranche(award, 1), actor=actor)


def test_a_suspended_awards_tranche_is_not_released(award, alice, dave):
    services.suspend_award(award=award, actor=alice, reason="Audit")
    with refused(InvalidInput):
        services.release_tranche(tranche=tranche(award, 1), actor=dave)


def test_the_daily_release_is_safe_to_run_twice(award, carol, alice):
    report = services.submit_milestone_report(tranche=tranche(award, 3), actor=carol, summary="Early")
    services.decide_milestone_report(report=report, actor=alice, accept=True)
    assert services.release_due_tranches() == [tranche(award, 1).pk]
    assert services.release_due_tranches() == []
    assert tranche(award, 3).status == T.PLANNED
    assert services.release_due_tranches(today=date(2027, 3, 1)) == [tranche(award, 3).pk]
    assert audit_actions(tranche(award, 1)) == ["tranche.release"]


# --- Pay ------------------------------------------------------------------------------------------------------


def test_payment_disburses_the_tranche(award, dave, frank, sh_pool):
    first = paid_first(award, dave)
    first.refresh_from_db()
    assert (first.released_by, first.paid_by) == (dave, frank)
    award.refresh_from_db()
    sh_pool.refresh_from_db()
    assert (first.status, first.payment_reference, first.paid_on) == (T.PAID, "PAY-1", date(2026, 4, 1))
    assert award.paid == D("1000000.00")
    assert sh_pool.disbursed == D("1000000.00")
    assert sh_pool.committed == D("3000000.00")
    entry = LedgerEntry.objects.get(kind="disburse")
    assert (entry.amount, entry.fiscal_year, entry.tranche, entry.actor) == (
        D("1000000.00"),
        2025,
        first,
        frank,
    )
    assert audit_actions(first) == ["tranche.release", "tranche.pay"]
    assert_invariants()


def test_payment_moves_the_allotment_of_the_tranches_year(award, dave, alice, sh_pool):
    allotment = services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2025, amount=D("2000000"))
    assert (allotment.committed, allotment.disbursed) == (D("1000000.00"), 0)  # taken from the ledger
    paid_first(award, dave)
    allotment.refresh_from_db()
    assert allotment.disbursed == D("1000000.00")
    assert_invariants()


def test_only_a_payable_tranche_is_paid(award, dave):
    with refused(InvalidTransition):
        services.pay_tranche(tranche=tranche(award, 1), actor=dave, payment_reference="PAY-1")


def test_a_payment_needs_a_unique_reference(award, dave, carol, alice):
    paid_first(award, dave, reference="PAY-1")
    second = accepted_milestone(tranche(award, 2), carol, alice)
    assert second.status == T.PAYABLE
    with refused(InvalidInput):
        services.pay_tranche(tranche=second, actor=dave, payment_reference="  ")
    with refused(DuplicatePaymentReference):
        services.pay_tranche(tranche=second, actor=dave, payment_reference="PAY-1")
    services.pay_tranche(tranche=second, actor=dave, payment_reference="PAY-2")
    assert_invariants()


def test_only_finance_of_the_city_pays(award, dave, alice, sh_finance_hz):
    first = services.release_tranche(tranche=tranche(award, 1), actor=dave)
    for actor in (alice, sh_finance_hz):
        with refused(NotPermitted):
            services.pay_tranche(tranche=first, actor=actor, payment_reference="PAY-1")


def test_a_suspended_awards_payable_tranche_is_not_paid(award, dave, frank, alice):
    first = services.release_tranche(tranche=tranche(award, 1), actor=dave)
    services.suspend_award(award=award, actor=alice, reason="Audit")
    with refused(InvalidInput):
        services.pay_tranche(tranche=first, actor=frank, payment_reference="PAY-1")
    services.resume_award(award=award, actor=alice)
    services.pay_tranche(tranche=first, actor=frank, payment_reference="PAY-1")


def test_the_same_payment_twice_moves_money_once(award, dave, frank, carol, alice):
    first = services.release_tranche(tranche=tranche(award, 1), actor=dave)
    services.pay_tranche(tranche=first, actor=frank, payment_reference="PAY-1", idempotency_key="p-1")
    with refused(Exception):
        again = services.pay_tranche(
            tranche=first, actor=frank, payment_reference="PAY-1", idempotency_key="p-1"
        )
        assert again.status == T.PAID
        raise Exception("replayed")
    with refused(InvalidTransition):
        services.pay_tranche(tranche=first, actor=frank, payment_reference="PAY-1")
    second = accepted_milestone(tranche(award, 2), carol, alice)
    with refused(IdempotencyConflict):
        services.pay_tranche(tranche=second, actor=frank, payment_reference="PAY-2", idempotency_key="p-1")


def test_paying_the_last_open_tranche_completes_the_award(award, dave, alice, carol):
    paid_first(award, dave)
    services.cancel_tranche(tranche=tranche(award, 3), actor=dave, reason="Project ends early")
    second = accepted_milestone(tranche(award, 2), carol, alice)
    services.pay_tranche(tranche=second, actor=dave, payment_reference="PAY-2")
    award.refresh_from_db()
    assert award.status == W.COMPLETED
    assert audit_actions(award)[-1] == "award.complete"
    assert_invariants()


# --- Withhold ----------------------------------------------------------------------------------------------------


def test_withhold_and_release_again(award, dave):
    first = tranche(award, 1)
    third = tranche(award, 3)
    with refused(InvalidInput):
        services.withhold_tranche(tranche=first, actor=dave, reason=" ")
    services.release_tranche(tranche=first, actor=dave)
    assert services.withhold_tranche(tranche=first, actor=dave, reason="Invoice missing").status == T.WITHHELD
    assert services.withhold_tranche(tranche=third, actor=dave, reason="Invoice missing").status == T.WITHHELD
    with refused(InvalidTransition):
        services.pay_tranche(tranche=first, actor=dave, payment_reference="PAY-1")
    with refused(InvalidTransition):
        services.withhold_tranche(tranche=first, actor=dave, reason="Again")
    # Due again → payable; not yet due → planned.
    assert services.unwithhold_tranche(tranche=first, actor=dave).status == T.PAYABLE
    assert services.unwithhold_tranche(tranche=third, actor=dave).status == T.PLANNED
    assert audit_actions(first) == ["tranche.release", "tranche.withhold", "tranche.unwithhold"]
    with refused(InvalidTransition):
        services.unwithhold_tranche(tranche=third, actor=dave)


def test_a_paid_tranche_cannot_be_withheld(award, dave, alice, sh_finance_hz):
    first = paid_first(award, dave)
    with refused(InvalidTransition):
        services.withhold_tranche(tranche=first, actor=dave, reason="Too late")
    for actor in (alice, sh_finance_hz):
        with refused(NotPermitted):
            services.withhold_tranche(tranche=tranche(award, 2), actor=actor, reason="Not mine")


# --- Cancel ------------------------------------------------------------------------------------------------------


def test_cancelling_de_commits_what_will_not_be_paid(award, dave, sh_pool, sh_programme):
    third = services.cancel_tranche(tranche=tranche(award, 3), actor=dave, reason="Scope cut")
    award.refresh_from_db()
    sh_pool.refresh_from_db()
    sh_programme.refresh_from_db()
    assert third.status == T.CANCELLED
    assert award.amount == D("2000000.00")
    assert sh_pool.committed == sh_programme.committed == D("2000000.00")
    entry = LedgerEntry.objects.get(kind="decommit")
    assert (entry.amount, entry.fiscal_year, entry.tranche) == (D("1000000.00"), 2027, third)
    assert audit_actions(third) == ["tranche.cancel"]
    assert_invariants()


def test_cancel_refusals(award, dave, alice, sh_finance_hz):
    first = paid_first(award, dave)
    with refused(InvalidTransition):
        services.cancel_tranche(tranche=first, actor=dave, reason="Paid already")
    with refused(InvalidInput):
        services.cancel_tranche(tranche=tranche(award, 2), actor=dave, reason="")
    for actor in (alice, sh_finance_hz):
        with refused(NotPermitted):
            services.cancel_tranche(tranche=tranche(award, 2), actor=actor, reason="Not mine")
    services.cancel_tranche(tranche=tranche(award, 2), actor=dave, reason="Cut")
    with refused(InvalidTransition):
        services.cancel_tranche(tranche=tranche(award, 2), actor=dave, reason="Cut again")


def test_the_same_cancellation_twice_de_commits_once(award, dave):
    third = tranche(award, 3)
    services.cancel_tranche(tranche=third, actor=dave, reason="Cut", idempotency_key="c-1")
    with refused(Exception):
        services.cancel_tranche(tranche=third, actor=dave, reason="Cut", idempotency_key="c-1")
        raise Exception("replayed")
    with refused(IdempotencyConflict):
        services.cancel_tranche(tranche=tranche(award, 2), actor=dave, reason="Cut", idempotency_key="c-1")


# --- Suspend, resume, terminate ------------------------------------------------------------------------------------


def test_suspend_and_resume(award, alice, bob, dave):
    with refused(InvalidInput):
        services.suspend_award(award=award, actor=alice, reason="")
    for actor in (bob, dave):
        with refused(NotPermitted):
            services.suspend_award(award=award, actor=actor, reason="Audit")
    assert services.suspend_award(award=award, actor=alice, reason="Audit").status == W.SUSPENDED
    with refused(InvalidTransition):
        services.suspend_award(award=award, actor=alice, reason="Again")
    assert services.resume_award(award=award, actor=alice).status == W.ACTIVE
    with refused(InvalidTransition):
        services.resume_award(award=award, actor=alice)
    assert audit_actions(award) == ["award.suspend", "award.resume"]


def test_termination_de_commits_the_rest_and_keeps_what_was_paid(award, alice, bob, dave, sh_pool):
    paid_first(award, dave)
    services.withhold_tranche(tranche=tranche(award, 3), actor=dave, reason="Doubts")
    with refused(InvalidInput):
        services.terminate_award(award=award, actor=alice, reason=" ")
    with refused(NotPermitted):
        services.terminate_award(award=award, actor=bob, reason="Fraud")
    services.suspend_award(award=award, actor=alice, reason="Investigation")
    services.terminate_award(award=award, actor=alice, reason="Fraud")
    award.refresh_from_db()
    sh_pool.refresh_from_db()
    assert award.status == W.TERMINATED
    assert list(award.tranches.values_list("status", flat=True)) == [T.PAID, T.CANCELLED, T.CANCELLED]
    assert award.amount == award.paid == D("1000000.00")
    assert sh_pool.committed == sh_pool.disbursed == D("1000000.00")
    assert LedgerEntry.objects.filter(kind="decommit").count() == 2
    assert audit_actions(award)[-1] == "award.terminate"
    assert_invariants()
    with refused(InvalidTransition):
        services.terminate_award(award=award, actor=alice, reason="Again")
    with refused(InvalidTransition):
        services.resume_award(award=award, actor=alice)


def test_a_completed_award_cannot_be_suspended_or_terminated(award, alice, dave):
    for t in award.tranches.all():
        services.cancel_tranche(tranche=t, actor=dave, reason="Project dropped")
    award.refresh_from_db()
    assert award.status == W.COMPLETED
    assert award.amount == 0
    with refused(InvalidTransition):
        services.suspend_award(award=award, actor=alice, reason="Audit")
    with refused(InvalidTransition):
        services.terminate_award(award=award, actor=alice, reason="Audit")
    assert_invariants()


# --- Recoveries ----------------------------------------------------------------------------------------------------


def test_a_recovery_demands_at_most_what_was_paid(award, dave, alice):
    with refused(InvalidInput):
        services.demand_recovery(
            award=award, actor=dave, amount=D("1"), due_date=date(2027, 1, 1), reason="x"
        )
    paid_first(award, dave)
    with refused(InvalidInput) as info:
        services.demand_recovery(
            award=award, actor=dave, amount=D("1000000.01"), due_date=date(2027, 1, 1), reason="Overbilled"
        )
    assert info.value.details["recoverable"] == D("1000000.00")
    for amount, reason in ((D("0"), "x"), (D("5"), " ")):
        with refused(InvalidInput):
            services.demand_recovery(
                award=award, actor=dave, amount=amount, due_date=date(2027, 1, 1), reason=reason
            )
    with refused(NotPermitted):
        services.demand_recovery(
            award=award, actor=alice, amount=D("5"), due_date=date(2027, 1, 1), reason="x"
        )
    recovery = services.demand_recovery(
        award=award, actor=dave, amount=D("600000"), due_date=date(2027, 1, 1), reason="Overbilled"
    )
    assert audit_actions(recovery) == ["recovery.demand"]
    # What is already demanded counts: only 400,000 more can be demanded.
    with refused(InvalidInput):
        services.demand_recovery(
            award=award, actor=dave, amount=D("400000.01"), due_date=date(2027, 1, 1), reason="More"
        )
    services.demand_recovery(
        award=award, actor=dave, amount=D("400000"), due_date=date(2027, 1, 1), reason="More"
    )


def test_a_receipt_reduces_disbursed_and_committed(award, dave, sh_pool, sh_programme):
    paid_first(award, dave)
    recovery = services.demand_recovery(
        award=award, actor=dave, amount=D("600000"), due_date=date(2027, 1, 1), reason="Overbilled"
    )
    services.record_recovery_receipt(recovery=recovery, actor=dave, amount=D("250000"))
    recovery.refresh_from_db()
    award.refresh_from_db()
    sh_pool.refresh_from_db()
    sh_programme.refresh_from_db()
    assert (recovery.received, recovery.status) == (D("250000.00"), Recovery.Status.OPEN)
    assert award.recovered == D("250000.00")
    assert sh_pool.disbursed == D("750000.00")
    assert sh_pool.committed == sh_programme.committed == D("2750000.00")
    assert sorted(
        LedgerEntry.objects.filter(kind__in=["recover", "decommit"]).values_list("kind", "fiscal_year")
    ) == [
        ("decommit", 2025),
        ("recover", 2025),
    ]
    assert_invariants()
    with refused(InvalidInput):
        services.record_recovery_receipt(recovery=recovery, actor=dave, amount=D("350000.01"))
    services.record_recovery_receipt(recovery=recovery, actor=dave, amount=D("350000"))
    recovery.refresh_from_db()
    assert recovery.status == Recovery.Status.RECEIVED
    assert audit_actions(recovery) == ["recovery.demand", "recovery.receipt", "recovery.receipt"]
    with refused(InvalidInput):
        services.record_recovery_receipt(recovery=recovery, actor=dave, amount=D("1"))
    assert_invariants()


def test_a_receipt_comes_back_from_the_latest_year_paid_first(award, dave, alice, carol, sh_pool):
    paid_first(award, dave)
    second = accepted_milestone(tranche(award, 2), carol, alice)
    services.pay_tranche(tranche=second, actor=dave, payment_reference="PAY-2")
    for year in (2025, 2026):
        services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=year, amount=D("5000000"))
    recovery = services.demand_recovery(
        award=award, actor=dave, amount=D("1500000"), due_date=date(2027, 1, 1), reason="Overbilled"
    )
    services.record_recovery_receipt(recovery=recovery, actor=dave, amount=D("1500000"))
    recovered = dict(LedgerEntry.objects.filter(kind="recover").values_list("fiscal_year", "amount"))
    assert recovered == {2026: D("1000000.00"), 2025: D("500000.00")}
    assert_invariants()


def test_the_same_receipt_twice_is_received_once(award, dave, sh_finance_hz):
    paid_first(award, dave)
    recovery = services.demand_recovery(
        award=award, actor=dave, amount=D("600000"), due_date=date(2027, 1, 1), reason="Overbilled"
    )
    with refused(NotPermitted):
        services.record_recovery_receipt(recovery=recovery, actor=sh_finance_hz, amount=D("1"))
    services.record_recovery_receipt(recovery=recovery, actor=dave, amount=D("100000"), idempotency_key="r-1")
    with refused(Exception):
        services.record_recovery_receipt(
            recovery=recovery, actor=dave, amount=D("100000"), idempotency_key="r-1"
        )
        raise Exception("replayed")
    recovery.refresh_from_db()
    assert recovery.received == D("100000.00")


# --- Milestone reports ------------------------------------------------------------------------------------------------


def test_milestone_report_refusals(award, carol, alice, bob, dave):
    with refused(InvalidInput):
        services.submit_milestone_report(tranche=tranche(award, 1), actor=carol, summary="Not gated")
    with refused(NotPermitted):
        services.submit_milestone_report(tranche=tranche(award, 2), actor=alice, summary="Not a member")
    with refused(InvalidInput):
        services.submit_milestone_report(tranche=tranche(award, 2), actor=carol, summary=" ")
    report = services.submit_milestone_report(tranche=tranche(award, 2), actor=carol, summary="Done")
    assert audit_actions(report) == ["milestone.submit"]
    with refused(InvalidInput):
        services.submit_milestone_report(tranche=tranche(award, 2), actor=carol, summary="Again")
    for actor in (bob, dave, carol):
        with refused(NotPermitted):
            services.decide_milestone_report(report=report, actor=actor, accept=True)
    with refused(InvalidInput):
        services.decide_milestone_report(report=report, actor=alice, accept=False, note="")
    services.decide_milestone_report(report=report, actor=alice, accept=False, note="No evidence")
    with refused(InvalidInput):
        services.decide_milestone_report(report=report, actor=alice, accept=True)
    assert audit_actions(report) == ["milestone.submit", "milestone.reject"]


def test_accepting_a_report_before_the_date_leaves_the_tranche_planned(award, carol, alice, dave):
    third = tranche(award, 3)
    report = services.submit_milestone_report(tranche=third, actor=carol, summary="Early")
    services.decide_milestone_report(report=report, actor=alice, accept=True)
    report.refresh_from_db()
    third.refresh_from_db()
    assert report.status == MilestoneReport.Status.ACCEPTED
    assert third.status == T.PLANNED
    assert services.release_tranche(tranche=third, actor=dave, today=date(2027, 3, 1)).status == T.PAYABLE


# --- Debarment ---------------------------------------------------------------------------------------------------------


def test_a_debarred_institution_is_not_paid(award, alice, bob, dave, frank, carols_startup):
    first = services.release_tranche(tranche=tranche(award, 1), actor=dave)
    with refused(InvalidInput):
        services.debar_institution(institution=carols_startup, actor=alice, until=date(2099, 1, 1), reason="")
    for actor in (bob, dave):
        with refused(NotPermitted):
            services.debar_institution(
                institution=carols_startup, actor=actor, until=date(2099, 1, 1), reason="x"
            )
    services.debar_institution(
        institution=carols_startup, actor=alice, until=date(2099, 1, 1), reason="Fraud"
    )
    with refused(InstitutionDebarred):
        services.pay_tranche(tranche=first, actor=frank, payment_reference="PAY-1")
    services.debar_institution(institution=carols_startup, actor=alice, until=None)
    services.pay_tranche(tranche=first, actor=frank, payment_reference="PAY-1")
    assert audit_actions(carols_startup) == ["institution.debar", "institution.lift_debarment"]


def test_a_debarment_that_ended_yesterday_no_longer_applies(award, alice, dave, frank, carols_startup):
    first = services.release_tranche(tranche=tranche(award, 1), actor=dave)
    yesterday = date.fromordinal(timezone.localdate().toordinal() - 1)
    services.debar_institution(institution=carols_startup, actor=alice, until=yesterday, reason="Late report")
    services.pay_tranche(tranche=first, actor=frank, payment_reference="PAY-1")
