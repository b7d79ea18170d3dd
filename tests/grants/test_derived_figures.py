"""Derived figures, each defined once (issue 12, part 4) and asked by every door: the ledger's signs
(models.LEDGER_EFFECTS) and its totals (selectors.ledger_totals), the pipeline (selectors.PIPELINE_STATUSES,
pipeline_of_pool), the application window (services.windows), and tracking, one path for one pool or many.

Each test builds the figure's inputs once and asks every door for it: the tracking snapshot, the budget report over
HTTP, the admin dashboard, the admin pool page, eligibility, the window-closing job, the portal's open calls.
"""

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from grants import selectors, services
from grants.admin.programmes import pipeline_of
from grants.models import (
    LEDGER_EFFECTS,
    Application,
    BudgetAlert,
    FundingPool,
    LedgerEntry,
    Programme,
    UsageSnapshot,
)
from grants.portal.selectors import open_calls
from grants.roles import Role
from grants.services import fiscal, tracking, windows
from grants.services.applications import eligibility_failures
from tests import factories as f
from tests.api.conftest import client_for

D = Decimal
K = LedgerEntry.Kind


def test_each_ledger_kind_moves_one_counter_with_one_sign():
    assert LEDGER_EFFECTS == {
        K.COMMIT: ("committed", 1),
        K.DECOMMIT: ("committed", -1),
        K.DISBURSE: ("disbursed", 1),
        K.RECOVER: ("disbursed", -1),
        K.RESERVE: ("reserved", 1),
        K.RELEASE: ("reserved", -1),
        K.CARRY_OUT: ("carried_out", 1),
        K.CARRY_IN: ("carried_in", 1),
        K.LAPSE: ("lapsed", 1),
    }
    assert set(LEDGER_EFFECTS) == set(K.values)


@pytest.fixture
def moved(sh_pool, carols_startup, carol, alice, rita, dave, frank):
    """Money moved every way in one pool: committed over two years, paid, a tranche cancelled (de-commit), part
    of a payment recovered (recover and de-commit)."""
    for year in (2025, 2026):
        services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=year, amount=D("5000000"))
    award = f.award(
        sh_pool, carols_startup, carol, alice, rita, requested="4000000", years=2, milestone_gated=False
    )
    first, second = award.tranches.order_by("sequence")
    services.release_tranche(tranche=first, actor=dave, today=first.scheduled_date)
    services.pay_tranche(tranche=first, actor=frank, payment_reference="DF-1")
    services.cancel_tranche(tranche=second, actor=dave, reason="milestone dropped")
    award.refresh_from_db()
    recovery = services.demand_recovery(
        award=award, actor=dave, amount=D("300000"), due_date=date(2026, 1, 31), reason="misuse"
    )
    services.record_recovery_receipt(recovery=recovery, actor=dave, amount=D("300000"))
    # An approval proposed for a second officer (reserve) and sent back by one (release).
    amir = f.user("amir", roles=(Role.PROGRAMME_OFFICER,), cities=(sh_pool.programme.city,))
    proposed = f.reviewed(f.application(sh_pool, carols_startup, carol, cost="40000000"), carol, alice, rita)
    proposal = services.propose_approval(application=proposed, actor=alice)
    services.send_back_proposal(proposal=proposal, actor=amir, note="the schedule needs a second look")
    services.reject_application(application=proposed, actor=alice)  # decided: out of the pipeline below
    # 2024 and 2025 closed: half of 2025's unspent allotment carried over to 2026, the rest lapsed.
    Programme.objects.filter(pk=sh_pool.programme_id).update(carry_over_years=1, carry_over_max_rate=D("0.5"))
    for year in (2024, 2025):
        fiscal.close_fiscal_year(
            programme=sh_pool.programme, fiscal_year=year, actor=dave, today=date(2026, 1, 5)
        )
    assert {e.kind for e in LedgerEntry.objects.filter(pool=sh_pool)} == set(K.values)
    sh_pool.refresh_from_db()
    return sh_pool


def test_the_ledger_totals_equal_the_counters_the_postings_moved(moved):
    """The postings apply LEDGER_EFFECTS to the counters; ledger_totals applies it to the entries' sums: they agree
    per pool and per fiscal year (against the allotment's counters), and with a by-hand sum of the entries."""
    entries = LedgerEntry.objects.filter(pool=moved)
    (totals,) = selectors.ledger_totals(entries).values()
    assert (totals.committed, totals.disbursed) == (moved.committed, moved.disbursed)
    assert (moved.committed, moved.disbursed) == (D("1700000"), D("1700000"))
    by_hand = {"committed": D(0), "disbursed": D(0)}
    for e in entries.filter(kind__in=(K.COMMIT, K.DECOMMIT, K.DISBURSE, K.RECOVER)):
        by_hand["committed" if e.kind in (K.COMMIT, K.DECOMMIT) else "disbursed"] += (
            e.amount if e.kind in (K.COMMIT, K.DISBURSE) else -e.amount
        )
    assert by_hand == {"committed": totals.committed, "disbursed": totals.disbursed}
    per_year = selectors.ledger_totals(entries, by=("pool_id", "fiscal_year"))
    allotment = moved.allotments.get(fiscal_year=2025)
    assert per_year[(moved.pk, 2025)] == selectors.LedgerTotals(
        committed=allotment.committed,
        disbursed=allotment.disbursed,
        carried_out=allotment.carried_out,
        lapsed=allotment.lapsed,
    )
    assert (allotment.carried_out, allotment.lapsed) == (D("2500000"), D("800000"))


@pytest.fixture
def pipeline(moved, carol, alice, rita):
    """Applications in every state that matters to the pipeline: submitted and under review count; a draft,
    a rejected and an approved one do not."""
    city = moved.programme.city

    def app(requested: str) -> Application:
        return f.application(moved, f.institution(city, carol), carol, requested=requested, cost="40000000")

    submitted = app("1000000")
    services.submit_application(application=submitted, actor=carol)
    under_review = f.reviewed(app("2000000"), carol, alice, rita)
    app("4000000")  # a draft
    rejected = f.reviewed(app("8000000"), carol, alice, rita)
    services.reject_application(application=rejected, actor=alice)
    assert set(
        Application.objects.filter(pool=moved, status__in=selectors.PIPELINE_STATUSES).values_list(
            "pk", flat=True
        )
    ) == {submitted.pk, under_review.pk}
    return D("3000000")


def test_every_door_shows_the_same_committed_disbursed_and_pipeline(moved, pipeline, erin, alice, client):
    tracked = tracking.track_pool(pool_id=moved.pk)
    assert tracked.snapshot_id is not None
    snapshot = UsageSnapshot.objects.get(pk=tracked.snapshot_id)

    report = client_for(erin).get("/api/v1/reports/budget/", {"pool": moved.pk}).json()["pools"][0]

    client.force_login(alice)
    response = client.get(reverse("admin:dashboard"), {"pool": moved.pk})
    assert response.status_code == 200
    (dashboard,) = [p for p in response.context["pools"] if p.pk == moved.pk]

    assert (
        (snapshot.committed, snapshot.disbursed, snapshot.pipeline)
        == (snapshot.ledger_committed, snapshot.ledger_disbursed, pipeline)
        == (D(report["committed"]), D(report["disbursed"]), D(report["pipeline"]))
        == (dashboard.committed, dashboard.disbursed, dashboard.pipeline)
        == (D("1700000"), D("1700000"), D("3000000"))
    )
    assert pipeline_of(moved) == pipeline  # the admin's pool page


# --- Tracking: one pool is a batch of one ---------------------------------------------------------------------


def twin_pools(programme, inst, carol, alice, rita, *, allotted: bool) -> list[FundingPool]:
    """Two pools with the same money: committed past 80% of the cap, and a pipeline beyond what is left."""
    pools = []
    for code in ("ONE", "TWO"):
        pool = f.pool(programme, code=code + ("A" if allotted else "N"), cap="10000000")
        if allotted:
            services.set_allotment(pool=pool, actor=alice, fiscal_year=2025, amount=D("8600000"))
        f.award(pool, inst, carol, alice, rita, requested="8500000")
        services.submit_application(
            application=f.application(pool, inst, carol, requested="2000000", cost="8000000"), actor=carol
        )
        pools.append(pool)
    return pools


def figures(t: tracking.Tracked) -> dict:
    assert t.snapshot_id is not None
    snapshot = UsageSnapshot.objects.get(pk=t.snapshot_id)
    alerts = BudgetAlert.objects.filter(pool_id=t.pool_id).order_by("kind", "subject")
    return {
        "snapshot": [
            getattr(snapshot, name)
            for name in ("cap", "committed", "disbursed", "available", "pipeline", "ledger_committed")
        ],
        "alerts": [(a.kind, a.subject, a.severity, a.figures, a.message) for a in alerts],
        "forecast": t.forecast,
        "allotments": t.allotments,
    }


@pytest.mark.parametrize("allotted", [True, False], ids=["with allotments", "without allotments"])
def test_one_pool_tracked_alone_and_in_a_batch_gives_the_same_snapshot_and_alerts(
    sh_programme, carols_startup, carol, alice, rita, allotted
):
    alone, in_batch = twin_pools(sh_programme, carols_startup, carol, alice, rita, allotted=allotted)

    one = tracking.track_pool(pool_id=alone.pk)
    (batch,) = [t for t in tracking.track_pools(pool_ids=[in_batch.pk, alone.pk]) if t.pool_id == in_batch.pk]

    assert one.ran and batch.ran and one.raised and len(one.raised) == len(batch.raised)
    assert figures(one) == figures(batch)
    assert figures(one)["forecast"] == {2025: D("8500000")}


# --- The application window ------------------------------------------------------------------------------------

NOW = timezone.now()
DAY = timedelta(days=1)


# (the pool's own opens_at, closes_at) against a programme open from NOW - 10 days to NOW + 10 days.
WINDOWS = {
    "the programme's": ((None, None), True),
    "the pool closes first": ((None, NOW - DAY), False),
    "the pool closes after its programme": ((None, NOW + 20 * DAY), True),
    "the pool opens later": ((NOW + DAY, None), False),
    "the pool opens before its programme": ((NOW - 20 * DAY, None), True),
}


@pytest.mark.parametrize("own, open_now", list(WINDOWS.values()), ids=list(WINDOWS))
def test_eligibility_the_closing_job_and_the_portal_agree_on_the_window(
    shanghai, carols_startup, carol, own, open_now
):
    programme = f.programme(shanghai)
    Programme.objects.filter(pk=programme.pk).update(opens_at=NOW - 10 * DAY, closes_at=NOW + 10 * DAY)
    pool = f.pool(programme, code="WIN")
    FundingPool.objects.filter(pk=pool.pk).update(opens_at=own[0], closes_at=own[1])
    pool = FundingPool.objects.select_related("programme").get(pk=pool.pk)
    application = f.application(pool, carols_startup, carol)

    opens, closes = windows.window_of(pool)
    assert (opens, closes) == (
        max(filter(None, [own[0], NOW - 10 * DAY])),
        min(filter(None, [own[1], NOW + 10 * DAY])),
    )
    assert windows.is_open(pool, NOW) is open_now
    application.pool = pool
    assert (
        "window_closed" not in [c for c, _f, _m in eligibility_failures(application, now=NOW)]
    ) is open_now
    calls: list[Any] = list(open_calls(NOW).filter(pk=pool.pk))  # annotated with the window
    shown = [(call.window_opens, call.window_closes) for call in calls]
    # The portal lists the call exactly when it is open, with the dates of the same window.
    assert shown == ([(opens, closes)] if open_now else [])
    closed = windows.close_windows(now=NOW)
    assert (pool.pk in closed["pools"]) is (closes <= NOW)
