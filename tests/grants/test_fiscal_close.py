"""Closing a programme's fiscal year (issue #15.4): carry-over (结转) and lapse (结余) of each pool's unspent
allotment, unpaid tranches rescheduled or de-committed, all as ledger entries; a closed year takes no movement; the
close is previewed, confirmed by finance only, idempotent, audited, and every refusal changes nothing."""

from datetime import date
from decimal import Decimal

import pytest

from grants import services
from grants.errors import BudgetExceeded, FiscalYearClosed, InvalidInput, NotPermitted
from grants.models import AuditEvent, FiscalYearAllotment, LedgerEntry, Notification, Programme, Tranche
from grants.services import fiscal
from grants.services.budget import Kind, Movement, commit_last
from grants.services.proposals import propose_approval
from tests import factories as f
from tests.grants.invariants import assert_invariants, refused, state

D = Decimal
TODAY = date(2026, 12, 1)


@pytest.fixture
def year(shanghai, alice, carol, rita, dave):
    """A programme of 2025-2027 carrying over for one year at most half of a year's allotment. Pool CMP has
    10M a year and limits an institution to 6M a year; pool MOD has no allotments. In 2025: X (2M paid, 2M in
    2026), Y (3M unpaid) in CMP; Z (1M unpaid) in MOD."""
    programme = f.programme(
        shanghai,
        first_fiscal_year=2025,
        last_fiscal_year=2027,
        carry_over_years=1,
        carry_over_max_rate=D("0.50"),
    )
    cmp = f.pool(programme, code="CMP", cap="40000000", max_per_institution_year=D("6000000"))
    for fy in (2025, 2026, 2027):
        services.set_allotment(pool=cmp, actor=alice, fiscal_year=fy, amount=D("10000000"))
    mod = f.pool(programme, code="MOD", cap="10000000")
    start = date(2025, 3, 1)
    x = f.award(
        cmp,
        f.institution(shanghai, carol),
        carol,
        alice,
        rita,
        requested="4000000",
        years=2,
        start=start,
        milestone_gated=False,
    )
    first = x.tranches.get(sequence=1)
    services.release_tranche(tranche=first, actor=None, today=TODAY)
    services.pay_tranche(tranche=first, actor=dave, payment_reference="PAY-X1")
    y_inst = f.institution(shanghai, carol)
    y = f.award(cmp, y_inst, carol, alice, rita, requested="3000000", start=start)
    z = f.award(mod, f.institution(shanghai, carol), carol, alice, rita, requested="1000000", start=start)
    return {"programme": programme, "cmp": cmp, "mod": mod, "x": x, "y": y, "z": z, "y_inst": y_inst}


def allotment(pool, y):
    return FiscalYearAllotment.objects.get(pool=pool, fiscal_year=y)


def test_preview_shows_each_pool_and_writes_nothing(year, alice):
    before = state()
    plan = fiscal.preview_close(programme=year["programme"], fiscal_year=2025, actor=alice, today=TODAY)
    assert state() == before
    assert plan.problems == [] and not plan.closed and plan.next_year == 2026
    cmp, mod = plan.pools
    assert (cmp.allotted, cmp.committed, cmp.paid, cmp.unpaid) == (
        D("10000000"),
        D("5000000"),
        D("2000000"),
        D("3000000"),
    )
    assert [(t.reference, t.new_date) for t in cmp.tranches] == [(year["y"].reference, date(2026, 3, 1))]
    # 8M unspent: half of the 10M allotment is carried, the rest lapses.
    assert (cmp.carried_over, cmp.lapsed) == (D("5000000"), D("3000000"))
    assert (mod.allotment, mod.rescheduled, mod.carried_over, mod.lapsed) == (None, D("1000000"), 0, 0)


def test_close_carries_lapses_and_reschedules_as_ledger_entries(year, dave, carol):
    plan = fiscal.close_fiscal_year(programme=year["programme"], fiscal_year=2025, actor=dave, today=TODAY)
    assert plan.problems == []
    a25, a26 = allotment(year["cmp"], 2025), allotment(year["cmp"], 2026)
    assert (a25.committed, a25.disbursed, a25.carried_out, a25.lapsed) == (
        D("2000000"),
        D("2000000"),
        D("5000000"),
        D("3000000"),
    )
    assert (a26.carried_in, a26.committed, a26.spendable) == (D("5000000"), D("5000000"), D("15000000"))
    y_tranche = year["y"].tranches.get()
    assert (y_tranche.scheduled_date, y_tranche.fiscal_year, y_tranche.status) == (
        date(2026, 3, 1),
        2026,
        "planned",
    )
    assert year["z"].tranches.get().fiscal_year == 2026
    kinds = set(
        LedgerEntry.objects.filter(reason__startswith="close of fiscal year 2025").values_list(
            "kind", flat=True
        )
    )
    assert kinds == {Kind.DECOMMIT, Kind.COMMIT, Kind.CARRY_OUT, Kind.CARRY_IN, Kind.LAPSE}
    assert set(LedgerEntry.objects.filter(kind=Kind.CARRY_IN).values_list("origin_year", flat=True)) == {2025}
    programme = Programme.objects.get(pk=year["programme"].pk)
    assert programme.closed_through == 2025
    event = AuditEvent.objects.get(action="fiscal_year.close")
    assert event.after is not None
    assert event.after["closed_through"] == 2025 and event.after["pools"][0]["lapsed"] == "3000000.00"
    assert Notification.objects.filter(user=carol, event="tranche_rescheduled").count() == 2
    assert_invariants()


def test_a_second_close_changes_nothing(year, dave):
    fiscal.close_fiscal_year(programme=year["programme"], fiscal_year=2025, actor=dave, today=TODAY)
    before = state()
    again = fiscal.close_fiscal_year(programme=year["programme"], fiscal_year=2025, actor=dave, today=TODAY)
    assert state() == before
    assert again.closed and (again.pools[0].carried_over, again.pools[0].lapsed) == (
        D("5000000"),
        D("3000000"),
    )


def test_a_closed_year_takes_no_movement(year, dave, alice, carol, rita, shanghai):
    fiscal.close_fiscal_year(programme=year["programme"], fiscal_year=2025, actor=dave, today=TODAY)
    # An approval into 2025 in the pool without allotments (nothing else would stop it).
    app = f.reviewed(
        f.application(
            year["mod"], f.institution(shanghai, carol), carol, start=date(2025, 6, 1), cost="4000000"
        ),
        carol,
        alice,
        rita,
    )
    with refused(FiscalYearClosed, fiscal_year=2025, closed_through=2025):
        services.approve_application(application=app, actor=alice)
    # The budget engine itself, for the pool with allotments.
    with refused(FiscalYearClosed, fiscal_year=2025):
        commit_last(year["cmp"], [Movement(Kind.COMMIT, D("1"), 2025)], actor=alice, reason="t", key_base="t")
    with refused(InvalidInput):
        services.set_allotment(pool=year["cmp"], actor=alice, fiscal_year=2025, amount=D("9000000"))
    assert_invariants()


def test_decommit_rule_cancels_unpaid_tranches(year, dave):
    Programme.objects.filter(pk=year["programme"].pk).update(unpaid_tranches="decommit")
    fiscal.close_fiscal_year(programme=year["programme"], fiscal_year=2025, actor=dave, today=TODAY)
    y = year["y"]
    y.refresh_from_db()
    assert (y.tranches.get().status, y.amount, y.status) == ("cancelled", 0, "completed")
    # Y's 3M is unspent now: 10M - 2M paid = 8M; 5M carried, 3M lapses; nothing rescheduled into 2026.
    a26 = allotment(year["cmp"], 2026)
    assert (a26.carried_in, a26.committed) == (D("5000000"), D("2000000"))
    assert_invariants()


def test_commitments_take_the_oldest_money_and_older_money_lapses(year, dave):
    fiscal.close_fiscal_year(programme=year["programme"], fiscal_year=2025, actor=dave, today=TODAY)
    x2 = year["x"].tranches.get(sequence=2)
    services.release_tranche(tranche=x2, actor=None, today=TODAY)
    services.pay_tranche(tranche=x2, actor=dave, payment_reference="PAY-X2")
    Programme.objects.filter(pk=year["programme"].pk).update(carry_over_max_rate=None)
    plan = fiscal.close_fiscal_year(
        programme=year["programme"], fiscal_year=2026, actor=dave, today=date(2027, 1, 5)
    )
    # 2026 had its 10M and 5M carried from 2025. The 2M paid took 2025's money first; Y's 3M moves on to 2027.
    # Carried for one year at most, the 3M left of 2025 lapses; 2026's 10M is carried whole (no limit in amount).
    cmp = plan.pools[0]
    assert cmp.carried == {2026: D("10000000")} and cmp.lapsing == {2025: D("3000000")}
    assert allotment(year["cmp"], 2027).carried_in == D("10000000")
    assert_invariants()


def test_money_is_carried_again_within_the_years_allowed(year, dave):
    fiscal.close_fiscal_year(programme=year["programme"], fiscal_year=2025, actor=dave, today=TODAY)
    Programme.objects.filter(pk=year["programme"].pk).update(carry_over_max_rate=None, carry_over_years=2)
    plan = fiscal.close_fiscal_year(
        programme=year["programme"], fiscal_year=2026, actor=dave, today=date(2027, 1, 5)
    )
    assert plan.pools[0].carried == {2025: D("5000000"), 2026: D("10000000")} and plan.pools[0].lapsing == {}
    assert_invariants()


def test_money_received_back_for_a_closed_year_lapses_there(year, dave):
    fiscal.close_fiscal_year(programme=year["programme"], fiscal_year=2025, actor=dave, today=TODAY)
    recovery = services.demand_recovery(
        award=year["x"], actor=dave, amount=D("500000"), due_date=date(2027, 1, 31), reason="ineligible cost"
    )
    services.record_recovery_receipt(recovery=recovery, actor=dave, amount=D("500000"))
    a25 = allotment(year["cmp"], 2025)
    assert (a25.disbursed, a25.lapsed) == (D("1500000"), D("3500000"))
    assert_invariants()


def test_only_finance_confirms_and_officers_preview(year, alice, erin, bob):
    with refused(NotPermitted):
        fiscal.close_fiscal_year(programme=year["programme"], fiscal_year=2025, actor=alice, today=TODAY)
    with pytest.raises(NotPermitted):
        fiscal.preview_close(programme=year["programme"], fiscal_year=2025, actor=bob, today=TODAY)


@pytest.mark.parametrize(
    ("fiscal_year", "today", "words"),
    [
        (2025, date(2025, 12, 31), "has not ended"),
        (2026, date(2027, 2, 1), "close fiscal year 2025 first"),
        (2024, TODAY, "not one of"),
    ],
)
def test_a_year_that_cannot_be_closed_is_refused(year, dave, fiscal_year, today, words):
    with refused(fiscal.YearNotClosable) as info:
        fiscal.close_fiscal_year(
            programme=year["programme"], fiscal_year=fiscal_year, actor=dave, today=today
        )
    assert words in info.value.message


def test_rescheduling_needs_the_next_years_allotment(year, dave):
    FiscalYearAllotment.objects.filter(pool=year["cmp"], fiscal_year=2026).delete()
    with refused(fiscal.YearNotClosable) as info:
        fiscal.close_fiscal_year(programme=year["programme"], fiscal_year=2025, actor=dave, today=TODAY)
    assert "no allotment for fiscal year 2026" in info.value.message


def test_rescheduling_past_the_institutions_yearly_maximum_is_refused(year, dave, alice, carol, rita):
    # Y's institution already has 4M in 2026: its 3M of 2025 would make 7M, over the 6M maximum.
    f.award(year["cmp"], year["y_inst"], carol, alice, rita, requested="4000000", start=date(2026, 5, 1))
    with refused(BudgetExceeded, level="institution_year", fiscal_year=2026, left=D("2000000.00")):
        fiscal.close_fiscal_year(programme=year["programme"], fiscal_year=2025, actor=dave, today=TODAY)
    plan = fiscal.preview_close(programme=year["programme"], fiscal_year=2025, actor=dave, today=TODAY)
    assert plan.refusal is not None and plan.problems


def test_the_last_year_decommits_and_lapses(year, dave):
    for y in (2025, 2026):
        fiscal.close_fiscal_year(
            programme=year["programme"], fiscal_year=y, actor=dave, today=date(2028, 1, 2)
        )
    plan = fiscal.close_fiscal_year(
        programme=year["programme"], fiscal_year=2027, actor=dave, today=date(2028, 1, 2)
    )
    assert plan.next_year is None and plan.pools[0].carried == {}
    assert not Tranche.objects.filter(status__in=["planned", "payable", "withheld"]).exists()
    assert_invariants()


def test_money_reserved_by_a_pending_proposal_blocks_the_close(year, dave, alice, carol, rita, shanghai):
    app = f.reviewed(
        f.application(
            year["mod"], f.institution(shanghai, carol), carol, start=date(2025, 6, 1), cost="4000000"
        ),
        carol,
        alice,
        rita,
    )
    propose_approval(application=app, actor=alice)
    with refused(fiscal.YearNotClosable) as info:
        fiscal.close_fiscal_year(programme=year["programme"], fiscal_year=2025, actor=dave, today=TODAY)
    assert "reserved in pool MOD" in info.value.message
