"""Budget tracking (§5.1), run in-process: snapshots, drift, alerts once per crossing, forecast, pipeline."""

import threading
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import F

from grants import services
from grants.models import Application, BudgetAlert, FundingPool, Tranche, UsageSnapshot
from grants.services import tracking
from tests import factories as f

K = BudgetAlert.Kind


@pytest.fixture
def small_pool(sh_programme):
    return f.pool(sh_programme, code="SML", cap="10000000")


def live(pool, kind=None):
    qs = BudgetAlert.objects.filter(pool=pool, cleared_at__isnull=True)
    return list(qs.filter(kind=kind) if kind else qs)


def test_tracking_writes_a_snapshot_from_the_ledger_and_clears_the_due_mark(
    small_pool, carols_startup, carol, alice, rita
):
    f.award(small_pool, carols_startup, carol, alice, rita, requested="3000000", years=3)
    assert FundingPool.objects.get(pk=small_pool.pk).tracking_due_at is not None

    result = tracking.track_pool(pool_id=small_pool.pk)

    assert result.ran and not result.drifted
    snap = UsageSnapshot.objects.get(pool=small_pool)
    assert (snap.committed, snap.ledger_committed) == (Decimal("3000000"), Decimal("3000000"))
    assert (snap.disbursed, snap.available) == (Decimal("0"), Decimal("7000000"))
    pool = FundingPool.objects.get(pk=small_pool.pk)
    assert pool.tracking_due_at is None and pool.tracked_at == snap.taken_at


def test_a_second_run_with_nothing_changed_does_nothing(small_pool, carols_startup, carol, alice, rita):
    f.award(small_pool, carols_startup, carol, alice, rita, requested="6000000")
    first = tracking.track_pool(pool_id=small_pool.pk)
    second = tracking.track_pool(pool_id=small_pool.pk)
    assert first.ran and not second.ran
    assert UsageSnapshot.objects.filter(pool=small_pool).count() == 1


def test_threshold_alert_is_raised_once_not_twice(small_pool, carols_startup, carol, alice, rita):
    f.award(small_pool, carols_startup, carol, alice, rita, requested="5500000")
    first = tracking.track_pool(pool_id=small_pool.pk)
    assert [(a.kind, a.subject) for a in live(small_pool)] == [(K.THRESHOLD, 50)]
    # More money moves but stays under 80%: the 50% alert is still the same one.
    f.award(small_pool, carols_startup, carol, alice, rita, requested="1000000")
    second = tracking.track_pool(pool_id=small_pool.pk)
    forced = tracking.track_pool(pool_id=small_pool.pk, force=True)
    assert len(first.raised) == 1 and second.raised == [] and forced.raised == []
    assert BudgetAlert.objects.filter(pool=small_pool).count() == 1
    assert UsageSnapshot.objects.filter(pool=small_pool).count() == 3


def test_thresholds_crossed_at_once_raise_one_alert_each_with_severity(
    small_pool, carols_startup, carol, alice, rita
):
    f.award(small_pool, carols_startup, carol, alice, rita, requested="9600000", years=2)
    tracking.track_pool(pool_id=small_pool.pk)
    got = {a.subject: a.severity for a in live(small_pool, K.THRESHOLD)}
    assert got == {50: "info", 80: "warning", 95: "warning"}


def test_an_alert_clears_when_its_condition_goes_and_a_new_crossing_raises_anew(
    small_pool, carols_startup, carol, alice, rita
):
    award = f.award(small_pool, carols_startup, carol, alice, rita, requested="5500000")
    tracking.track_pool(pool_id=small_pool.pk)
    (first,) = live(small_pool)
    services.terminate_award(award=award, actor=alice, reason="project abandoned")
    cleared = tracking.track_pool(pool_id=small_pool.pk)
    assert cleared.cleared == [first.pk] and live(small_pool) == []
    assert BudgetAlert.objects.get(pk=first.pk).cleared_at is not None

    f.award(small_pool, carols_startup, carol, alice, rita, requested="5000000")
    again = tracking.track_pool(pool_id=small_pool.pk)
    (second,) = live(small_pool)
    assert again.raised == [second.pk] and second.pk != first.pk and second.subject == 50


def test_drift_from_a_counter_corrupted_in_the_database_raises_a_critical_alert(
    small_pool, carols_startup, carol, alice, rita
):
    f.award(small_pool, carols_startup, carol, alice, rita, requested="2000000")
    tracking.track_pool(pool_id=small_pool.pk)
    assert live(small_pool, K.DRIFT) == []
    FundingPool.objects.filter(pk=small_pool.pk).update(committed=F("committed") + Decimal("0.01"))

    result = tracking.track_pool(pool_id=small_pool.pk, force=True)

    assert result.drifted
    (alert,) = live(small_pool, K.DRIFT)
    assert alert.severity == "critical"
    assert alert.figures["committed"] == "2000000.01" and alert.figures["ledger_committed"] == "2000000.00"
    # The sweep picks the pool up every interval; the drift stays one live alert.
    tracking.track_pool(pool_id=small_pool.pk, force=True)
    assert len(live(small_pool, K.DRIFT)) == 1


def test_forecast_per_fiscal_year_equals_the_sum_of_tranches_not_cancelled(
    sh_pool, carols_startup, carol, alice, rita, dave
):
    a1 = f.award(sh_pool, carols_startup, carol, alice, rita, requested="3000000", years=3)
    a2 = f.award(
        sh_pool, carols_startup, carol, alice, rita, requested="1000001", years=2, start=date(2026, 7, 1)
    )
    last = a1.tranches.order_by("-sequence")[0]
    services.cancel_tranche(tranche=last, actor=dave, reason="milestone dropped")

    expected: dict[int, Decimal] = {}
    for t in Tranche.objects.filter(award__in=[a1, a2]):
        if t.status != Tranche.Status.CANCELLED:
            expected[t.fiscal_year] = expected.get(t.fiscal_year, Decimal(0)) + t.amount
    result = tracking.track_pool(pool_id=sh_pool.pk)

    assert result.forecast == expected
    assert sum(expected.values()) == Decimal("3000000") - last.amount + Decimal("1000001")


def test_allotment_alert_when_a_years_forecast_payments_near_its_allotment(
    sh_pool, carols_startup, carol, alice, rita
):
    services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2025, amount=Decimal("2000000"))
    services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2026, amount=Decimal("5000000"))
    f.award(
        sh_pool, carols_startup, carol, alice, rita, requested="3900000", years=2
    )  # 1.95M in 2025 and 2026

    result = tracking.track_pool(pool_id=sh_pool.pk)

    assert result.forecast == {2025: Decimal("1950000.00"), 2026: Decimal("1950000.00")}
    (alert,) = live(sh_pool, K.ALLOTMENT)
    assert alert.subject == 2025 and alert.figures == {
        "fiscal_year": "2025",
        "forecast": "1950000.00",
        "allotment": "2000000.00",
    }


def test_pipeline_is_the_requested_amounts_under_review_and_alerts_beyond_what_is_left(
    small_pool, carols_startup, carol, alice, rita, shanghai
):
    f.award(small_pool, carols_startup, carol, alice, rita, requested="4000000")
    apps = []
    for requested in ("2500000", "2000000", "1700000"):
        inst = f.institution(shanghai, carol)
        app = f.application(small_pool, inst, carol, requested=requested, cost="9000000")
        apps.append(app)
    services.submit_application(application=apps[0], actor=carol)
    f.reviewed(apps[1], carol, alice, rita)  # under review
    # apps[2] stays a draft: not in the pipeline.
    expected = sum(
        (
            a.requested_amount
            for a in Application.objects.filter(pool=small_pool, status__in=["submitted", "under_review"])
        ),
        Decimal(0),
    )
    assert expected == Decimal("4500000")

    result = tracking.track_pool(pool_id=small_pool.pk)

    assert result.pipeline == expected
    assert UsageSnapshot.objects.get(pool=small_pool).pipeline == expected
    assert live(small_pool, K.PIPELINE) == []  # 4.5M asked, 6M left

    services.submit_application(application=apps[2], actor=carol)
    result = tracking.track_pool(pool_id=small_pool.pk, force=True)
    assert result.pipeline == Decimal("6200000")
    (alert,) = live(small_pool, K.PIPELINE)
    assert alert.figures == {"pipeline": "6200000.00", "available": "6000000.00"}


def test_new_alerts_are_mailed_to_the_pools_officers_after_commit(
    small_pool, carols_startup, carol, alice, bob, rita, mailoutbox, django_capture_on_commit_callbacks
):
    f.award(small_pool, carols_startup, carol, alice, rita, requested="8500000")
    with django_capture_on_commit_callbacks(execute=True):
        tracking.track_pool(pool_id=small_pool.pk)
    (mail,) = mailoutbox
    assert mail.to == ["alice@example.cn"]  # bob is a Hangzhou officer
    assert "80% of the cap" in mail.body and "[warning]" in mail.subject
    with django_capture_on_commit_callbacks(execute=True):
        tracking.track_pool(pool_id=small_pool.pk, force=True)
    assert len(mailoutbox) == 1


def in_another_connection(job):
    """Run `job` in a thread of its own, with its own database connection, and return its result."""
    result: list = []

    def run() -> None:
        try:
            result.append(job())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the other run hung"
    return result[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_run_that_lost_the_race_writes_nothing(small_pool, carols_startup, carol, alice, rita, monkeypatch):
    """Two runs at once: the second finds the pool held by the first (its claim skips the locked row) and writes
    nothing; the first writes one snapshot and one alert."""
    f.award(small_pool, carols_startup, carol, alice, rita, requested="5500000")
    inner: list[tracking.Tracked] = []
    measure = tracking.measure

    def other_run_meanwhile(pools):
        if not inner:
            inner.append(in_another_connection(lambda: tracking.track_pool(pool_id=small_pool.pk)))
        return measure(pools)

    monkeypatch.setattr(tracking, "measure", other_run_meanwhile)
    outer = tracking.track_pool(pool_id=small_pool.pk)

    assert outer.ran and not inner[0].ran
    assert UsageSnapshot.objects.filter(pool=small_pool).count() == 1
    assert BudgetAlert.objects.filter(pool=small_pool).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_money_moved_during_a_run_keeps_the_pool_due(
    small_pool, carols_startup, carol, alice, rita, monkeypatch
):
    """An approval that comes while a run holds the pool waits for it, then leaves the pool due: the run tracked
    the money before it, the next run tracks the approval."""
    f.award(small_pool, carols_startup, carol, alice, rita, requested="1000000")
    second = f.reviewed(
        f.application(small_pool, carols_startup, carol, requested="2000000", cost="8000000"),
        carol,
        alice,
        rita,
    )

    failed: list[BaseException] = []

    def approve() -> None:
        try:
            services.approve_application(application=second, actor=alice)
        except BaseException as exc:
            failed.append(exc)
        finally:
            connection.close()

    approval = threading.Thread(target=approve, daemon=True)
    measure = tracking.measure

    def approval_meanwhile(pools):
        approval.start()
        waiting_for_the_pool = False
        for _ in range(240):
            with connection.cursor() as cursor:
                # Inside a transaction the activity view is a snapshot: cleared, it shows who waits on us now.
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
                )
                if cursor.fetchone()[0]:
                    waiting_for_the_pool = True
                    break
            approval.join(0.25)
        assert waiting_for_the_pool, f"the approval did not wait for the run: {failed}"
        return measure(pools)

    monkeypatch.setattr(tracking, "measure", approval_meanwhile)
    result = tracking.track_pool(pool_id=small_pool.pk)
    approval.join(60)
    assert not approval.is_alive()

    assert result.ran and result.ledger_committed == Decimal("1000000")
    pool = FundingPool.objects.get(pk=small_pool.pk)
    assert pool.committed == Decimal("3000000")
    assert pool.tracking_due_at is not None  # the second approval is tracked by the next run
    monkeypatch.undo()
    assert tracking.track_pool(pool_id=small_pool.pk).ledger_committed == Decimal("3000000")


def test_the_sweep_lists_due_pools_and_open_pools_not_tracked_lately(sh_programme, shanghai):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    never = f.pool(sh_programme, code="A", cap="1000")
    fresh = f.pool(sh_programme, code="B", cap="1000")
    stale = f.pool(sh_programme, code="C", cap="1000")
    due = f.pool(f.programme(shanghai, code="OLD", status="closed"), code="D", cap="1000")
    closed_fresh = f.pool(f.programme(shanghai, code="OLD2", status="closed"), code="E", cap="1000")
    FundingPool.objects.filter(pk__in=[fresh.pk, closed_fresh.pk, due.pk]).update(tracked_at=now)
    FundingPool.objects.filter(pk=stale.pk).update(tracked_at=now - timedelta(hours=2))
    FundingPool.objects.filter(pk=due.pk).update(tracking_due_at=now)
    assert set(tracking.pools_to_track(now=now)) == {never, stale, due}


def test_the_sweeps_batch_tracking_has_the_same_effects_as_one_pool_at_a_time(
    sh_programme, carols_startup, carol, alice, rita, dave, frank
):
    """track_pools (the scheduled sweep) and track_pool (the job after a commit) agree: same snapshot figures,
    same alerts, drift found, and a second run with nothing new does nothing."""
    busy = f.pool(sh_programme, code="BSY", cap="10000000")
    services.set_allotment(pool=busy, actor=alice, fiscal_year=2025, amount=Decimal("6000000"))
    quiet = f.pool(sh_programme, code="QUI", cap="10000000")
    drifting = f.pool(sh_programme, code="DRF", cap="10000000")
    award = f.award(busy, carols_startup, carol, alice, rita, requested="5800000")
    f.award(drifting, f.institution(carols_startup.city, carol), carol, alice, rita, requested="1000000")
    services.release_tranche(tranche=award.tranches.get(), actor=dave)
    services.pay_tranche(tranche=award.tranches.get(), actor=frank, payment_reference="BATCH-1")
    FundingPool.objects.filter(pk=drifting.pk).update(committed=F("committed") + Decimal("0.01"))

    results = {t.pool_id: t for t in tracking.track_pools(pool_ids=[busy.pk, quiet.pk, drifting.pk])}

    assert set(results) == {busy.pk, quiet.pk, drifting.pk}  # never tracked: all three are due
    snap = UsageSnapshot.objects.get(pool=busy)
    assert (snap.committed, snap.disbursed, snap.ledger_committed) == (
        Decimal("5800000"),
        Decimal("5800000"),
        Decimal("5800000"),
    )
    assert results[busy.pk].forecast == {2025: Decimal("5800000")}
    assert sorted(BudgetAlert.objects.filter(pool=busy).values_list("kind", "subject")) == [
        ("allotment", 2025),
        ("threshold", 50),
    ]
    assert live(drifting, K.DRIFT)[0].severity == "critical"
    assert not BudgetAlert.objects.filter(pool=quiet).exists()
    assert FundingPool.objects.filter(tracking_due_at__isnull=False).count() == 0

    assert tracking.track_pools(pool_ids=[busy.pk, quiet.pk, drifting.pk]) == []
    assert UsageSnapshot.objects.count() == 3 and BudgetAlert.objects.count() == 3
    # The single-pool job now finds the busy pool tracked, as it would after a sweep raced it.
    assert not tracking.track_pool(pool_id=busy.pk).ran
