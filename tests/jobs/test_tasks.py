"""The tasks and their scheduling: queued after commit, coalesced, never failing a request when the broker is
down; window closing, tranche release and exports, each safe to run twice."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from kombu.exceptions import OperationalError

from grants import tasks
from grants.errors import InvalidInput
from grants.models import AuditEvent, ExportJob, FundingPool, Programme, Tranche, UsageSnapshot
from grants.services import exports
from tests import factories as f


def test_celery_is_configured_for_redelivery_and_short_broker_waits():
    from config.celery import app

    c = app.conf
    assert c.task_acks_late and c.task_reject_on_worker_lost and c.worker_prefetch_multiplier == 1
    assert c.task_ignore_result
    assert c.task_time_limit < django_settings.JOBS_VISIBILITY_TIMEOUT <= 50
    assert tasks.RETRY["retry_backoff_max"] < django_settings.JOBS_VISIBILITY_TIMEOUT
    assert {e["task"] for e in c.beat_schedule.values()} == {
        "grants.sweep_tracking",
        "grants.sweep_webhooks",
        "grants.close_windows",
        "grants.sweep_exports",
        "grants.release_tranches",
        "grants.drain_outbox",
        "grants.apply_retention",
        "grants.expire_proposals",
        "grants.sweep_notice_emails",
        "grants.send_reminders",
        "grants.expire_vouchers",
    }


def test_an_approval_queues_tracking_after_commit_and_the_job_writes_a_snapshot(
    eager, sh_pool, carols_startup, carol, alice, rita, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        f.award(sh_pool, carols_startup, carol, alice, rita, requested="2000000")
        assert not UsageSnapshot.objects.exists()  # nothing is queued inside the transaction
    for callback in callbacks:
        callback()
    snap = UsageSnapshot.objects.get(pool=sh_pool)
    assert snap.committed == snap.ledger_committed == Decimal("2000000")
    assert FundingPool.objects.get(pk=sh_pool.pk).tracking_due_at is None


def test_a_burst_of_money_movements_queues_one_tracking_job_and_one_drain(eager, sh_pool, monkeypatch):
    queued: list[tuple] = []
    drains: list[dict] = []
    monkeypatch.setattr(tasks.track_pool, "apply_async", lambda args, **kw: queued.append(args))
    monkeypatch.setattr(tasks.drain_outbox, "apply_async", lambda *a, **kw: drains.append(kw))
    for i in range(20):
        tasks.money_moved(sh_pool.pk, [i])
    assert queued == [(sh_pool.pk,)]
    assert drains == [{"countdown": django_settings.JOBS_OUTBOX_COALESCE_SECONDS}]
    # The job drops the claim before it reads: a movement after that queues the next job.
    tasks.release_tracking(sh_pool.pk)
    tasks.money_moved(sh_pool.pk, [99])
    assert len(queued) == 2 and len(drains) == 1


def test_money_moved_never_raises_when_the_broker_is_down_and_leaves_it_alone_for_a_while(
    eager, sh_pool, monkeypatch, caplog
):
    attempts: list[tuple] = []

    def down(*args, **kwargs):
        attempts.append(args)
        raise OperationalError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")

    monkeypatch.setattr(tasks.track_pool, "apply_async", down)
    monkeypatch.setattr(tasks.drain_outbox, "apply_async", down)
    for i in range(10):
        tasks.money_moved(sh_pool.pk, [i])
    # One attempt, one log line: the next requests do not pay the broker's timeouts again.
    assert len(attempts) == 1
    assert caplog.text.count("broker unreachable") == 1 and "sweep will catch up" in caplog.text
    # The claim was given back, so the next movement tries to queue again.
    assert tasks.claim_tracking(sh_pool.pk)
    tasks.release_tracking(sh_pool.pk)

    monkeypatch.setattr(tasks.broker, "retry_at", 0.0)  # the retry time has come
    monkeypatch.setattr(tasks.track_pool, "apply_async", lambda *a, **kw: attempts.append(a))
    monkeypatch.setattr(tasks.drain_outbox, "apply_async", lambda *a, **kw: None)
    tasks.money_moved(sh_pool.pk, [11])
    assert len(attempts) == 2
    assert "broker reachable again" in caplog.text


@pytest.mark.redis
def test_coalescing_claims_live_in_redis_when_there_is_one(settings, sh_pool):
    import os

    settings.REDIS_URL = os.environ["REDIS_URL"]
    tasks.release_tracking(sh_pool.pk)
    try:
        assert tasks.claim_tracking(sh_pool.pk)
        assert not tasks.claim_tracking(sh_pool.pk)
        tasks.release_tracking(sh_pool.pk)
        assert tasks.claim_tracking(sh_pool.pk)
    finally:
        tasks.release_tracking(sh_pool.pk)
    # One client, so one connection pool, per process: a claim does not open a connection of its own.
    assert tasks._redis() is tasks._redis()
    assert len(tasks._redis().connection_pool._available_connections) == 1


def test_the_sweep_tracks_every_due_pool(eager, sh_programme, shanghai):
    pools = [f.pool(sh_programme, code=f"P{i}", cap="1000") for i in range(3)]
    closed = f.pool(f.programme(shanghai, code="OLD", status="closed"), code="C", cap="1000")
    FundingPool.objects.filter(pk=closed.pk).update(tracking_due_at=timezone.now())
    assert tasks.sweep_tracking() == 4
    assert set(UsageSnapshot.objects.values_list("pool_id", flat=True)) == {p.pk for p in [*pools, closed]}
    assert tasks.sweep_tracking() == 0


def test_windows_close_programmes_and_pools_once_with_audit_events(eager, shanghai, sh_programme):
    now = timezone.now()
    open_pool = f.pool(sh_programme, code="OPEN")
    early_pool = f.pool(sh_programme, code="EARLY", closes_at=now - timedelta(minutes=1))
    past = f.programme(
        shanghai, code="PAST", opens_at=now - timedelta(days=10), closes_at=now - timedelta(hours=1)
    )
    past_pool = f.pool(past, code="CMP")

    assert tasks.close_windows() == {"programmes": [past.pk], "pools": [early_pool.pk, past_pool.pk]}
    assert tasks.close_windows() == {"programmes": [], "pools": []}

    assert Programme.objects.get(pk=past.pk).status == "closed"
    assert Programme.objects.get(pk=sh_programme.pk).status == "open"
    accepting = dict(FundingPool.objects.values_list("pk", "accepting_applications"))
    assert accepting == {open_pool.pk: True, early_pool.pk: False, past_pool.pk: False}
    actions = sorted(AuditEvent.objects.filter(action__endswith=".close").values_list("action", "object_id"))
    assert actions == sorted(
        [
            ("programme.close", str(past.pk)),
            ("pool.close", str(early_pool.pk)),
            ("pool.close", str(past_pool.pk)),
        ]
    )


def test_daily_release_makes_due_tranches_payable_once(eager, sh_pool, carols_startup, carol, alice, rita):
    award = f.award(sh_pool, carols_startup, carol, alice, rita, requested="3000000", years=3)
    assert tasks.release_tranches() == 1  # the first tranche's date has come; the others need milestones
    assert tasks.release_tranches() == 0
    assert list(award.tranches.order_by("sequence").values_list("status", flat=True)) == [
        Tranche.Status.PAYABLE,
        Tranche.Status.PLANNED,
        Tranche.Status.PLANNED,
    ]


def test_a_bad_export_request_is_refused_and_creates_nothing(alice):
    with pytest.raises(InvalidInput):
        exports.request_export(user=alice, report="budget", format="pdf")
    with pytest.raises(InvalidInput):
        exports.request_export(user=alice, report="no-such-report", format="csv")
    assert not ExportJob.objects.exists()
