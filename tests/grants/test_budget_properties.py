"""Property-based (§4): random sequences of approvals, payments, cancellations, terminations, amendments,
suspensions, recoveries, reschedules and closes of fiscal years keep every invariant (counters = ledger sums, no
cap passed, closed years settled and left alone), and every refusal changes nothing.

Each example runs inside a savepoint that is rolled back afterwards, so every example starts from the same
fixture data: that is why sharing the function-scoped fixture between examples is safe here.
"""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from grants import services
from grants.errors import BudgetExceeded, DomainError
from grants.models import Application, Award, FundingPool, LedgerEntry, Programme, Tranche
from grants.services import fiscal
from tests import factories as f
from tests.grants.invariants import assert_invariants, state

D = Decimal
LATER = date(2030, 1, 1)  # every scheduled date has come


@pytest.fixture
def market(sh_programme, shanghai, carol, alice, rita, dave):
    """Two pools of one programme; the first is small and has fiscal-year allotments. Eight applications under
    review, four per pool, from eight institutions."""
    sh_programme.total_budget = D("8000000")
    # Closing a year carries at most half of a pool's allotment over, for one year.
    sh_programme.carry_over_years = 1
    sh_programme.carry_over_max_rate = D("0.50")
    sh_programme.save()
    tight = f.pool(sh_programme, code="CMP", cap="5000000", max_per_institution_year=D("1500000"))
    for year, amount in ((2025, "2000000"), (2026, "1800000"), (2027, "1200000")):
        services.set_allotment(pool=tight, actor=alice, fiscal_year=year, amount=D(amount))
    loose = f.pool(sh_programme, code="MDL", cap="3000000", max_per_award=D("2000000"))
    apps = []
    for i in range(8):
        inst = f.institution(shanghai, carol)
        app = f.application(
            tight if i % 2 == 0 else loose,
            inst,
            carol,
            # Within the tight pool's 1.5M a year per institution, or submission refuses it as ineligible.
            requested="1500000" if i % 2 == 0 else "2000000",
            cost="8000000",
            years=1 + i % 3,
        )
        apps.append(f.reviewed(app, carol, alice, rita))
    return {"apps": apps, "alice": alice, "dave": dave, "carol": carol, "programme": sh_programme}


approve = st.tuples(
    st.just("approve"),
    st.integers(0, 7),
    st.one_of(
        st.integers(1, 2_400_000_00).map(lambda fen: D(fen) / 100),
        st.sampled_from([D("1000000"), D("1200000"), D("1500000"), D("2000000"), D("2400000")]),
    ),
    st.booleans(),
)
on_award = st.tuples(
    st.sampled_from(["pay", "cancel", "terminate", "suspend", "resume", "withhold", "unwithhold"]),
    st.integers(0, 7),
    st.integers(1, 3),
)
amend = st.tuples(
    st.just("amend"), st.integers(0, 7), st.integers(1, 3_000_000_00).map(lambda fen: D(fen) / 100)
)
recover = st.tuples(st.just("recover"), st.integers(0, 7), st.integers(1, 100))
# A tranche moved 1 to 800 days later (often into another fiscal year); the next open year closed, its unpaid
# tranches rescheduled or de-committed.
reschedule = st.tuples(st.just("reschedule"), st.integers(0, 7), st.integers(1, 3), st.integers(1, 800))
close = st.tuples(st.just("close"), st.sampled_from(["reschedule", "decommit"]))
operations = st.lists(
    st.one_of(approve, approve, on_award, on_award, on_award, amend, recover, reschedule, close),
    min_size=6,
    max_size=20,
)


def _tranche(award: Award, sequence: int) -> Tranche | None:
    tranches = list(award.tranches.order_by("sequence"))
    return tranches[(sequence - 1) % len(tranches)] if tranches else None


def _pay(t: Tranche, dave, alice, carol, n: int) -> None:
    if t.status == Tranche.Status.PLANNED:
        if t.requires_milestone and not t.milestone_reports.filter(status="accepted").exists():
            report = services.submit_milestone_report(tranche=t, actor=carol, summary="Done")
            services.decide_milestone_report(report=report, actor=alice, accept=True, today=LATER)
            t.refresh_from_db()
        if t.status == Tranche.Status.PLANNED:
            # Released by the daily job: whoever releases a tranche may not pay it (separation of duties).
            services.release_tranche(tranche=t, actor=None, today=LATER)
    services.pay_tranche(tranche=t, actor=dave, payment_reference=f"PAY-{t.pk}-{n}")


def run(op: tuple, market: dict, n: int) -> None:
    alice, dave, carol = market["alice"], market["dave"], market["carol"]
    if op[0] == "close":
        programme = Programme.objects.get(pk=market["programme"].pk)
        year = (programme.closed_through or programme.first_fiscal_year - 1) + 1
        Programme.objects.filter(pk=programme.pk).update(unpaid_tranches=op[1])
        programme.unpaid_tranches = op[1]
        fiscal.close_fiscal_year(programme=programme, fiscal_year=year, actor=dave, today=LATER)
        return
    if op[0] == "approve":
        app: Application = market["apps"][op[1]]
        _kind, _i, amount, gated = op
        pool = FundingPool.objects.get(pk=app.pool_id)
        try:
            services.approve_application(application=app, actor=alice, amount=amount, milestone_gated=gated)
        except BudgetExceeded as exc:
            assert exc.details["asked"] > exc.details["left"]
            if exc.details["level"] == "pool_cap":
                assert exc.details["left"] == pool.cap - pool.committed
                assert amount > pool.cap - pool.committed
            raise
        return
    awards = list(Award.objects.order_by("pk"))
    if not awards:
        return
    award = awards[op[1] % len(awards)]
    if op[0] == "amend":
        services.amend_award(award=award, actor=alice, amount=op[2], reason="random amendment")
    elif op[0] == "recover":
        paid_back = (award.paid - award.recovered) * op[2] / 100
        amount = paid_back.quantize(D("0.01"))
        recovery = services.demand_recovery(
            award=award, actor=dave, amount=amount, due_date=LATER, reason="random recovery"
        )
        services.record_recovery_receipt(recovery=recovery, actor=dave, amount=amount)
    elif op[0] == "terminate":
        services.terminate_award(award=award, actor=alice, reason="random termination")
    elif op[0] == "suspend":
        services.suspend_award(award=award, actor=alice, reason="random suspension")
    elif op[0] == "resume":
        services.resume_award(award=award, actor=alice)
    else:
        t = _tranche(award, op[2])
        if t is None:
            return
        if op[0] == "pay":
            _pay(t, dave, alice, carol, n)
        elif op[0] == "reschedule":
            later = t.scheduled_date + timedelta(days=op[3])
            fiscal.reschedule_tranche(tranche=t, actor=dave, scheduled_date=later, reason="random reschedule")
        elif op[0] == "cancel":
            services.cancel_tranche(tranche=t, actor=dave, reason="random cancellation")
        elif op[0] == "withhold":
            services.withhold_tranche(tranche=t, actor=dave, reason="random withholding")
        else:
            services.unwithhold_tranche(tranche=t, actor=dave, today=LATER)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_random_money_movements_keep_every_invariant(market, ops):
    assert not Award.objects.exists(), "an earlier example left money behind"
    savepoint = transaction.savepoint()
    try:
        for n, op in enumerate(ops):
            before = state()
            last_entry = LedgerEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
            try:
                with transaction.atomic():
                    run(op, market, n)
                event(f"{op[0]} done" if Award.objects.exists() else "nothing to do")
            except DomainError as exc:
                event(f"{op[0]} refused: {exc.code}")
                # Multi-step operations (release then pay, demand then receive) may refuse at a later step;
                # the atomic block above rolls the earlier steps back, so nothing at all may have changed.
                assert state() == before, f"refused {op} changed something"
            assert_invariants()
            # Nothing moved in a closed year but by its own close, and money received back, which lapses there.
            closed = Programme.objects.get(pk=market["programme"].pk).closed_through
            if closed is not None and op[0] != "close":
                late = LedgerEntry.objects.filter(id__gt=last_entry, fiscal_year__lte=closed)
                assert not late.exclude(reason__startswith="recovery receipt").exists(), op
                assert set(late.values_list("kind", flat=True)) <= {"recover", "decommit", "lapse"}, op
    finally:
        transaction.savepoint_rollback(savepoint)
