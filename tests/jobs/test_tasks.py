"""The tasks and their scheduling: queued after commit, coalesced, never failing a request when the broker is
down; window closing, tranche release and exports, each safe to run twice."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
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


def test_a_burst_of_money_movements_queues_one_tracking_job(eager, sh_pool, monkeypatch):
    queued: list[tuple] = []
    monkeypatch.setattr(tasks.track_pool, "apply_async", lambda args, **kw: queued.append(args))
    monkeypatch.setattr(tasks.fan_out_money_moved, "delay", lambda *a: None)
    for i in range(20):
        tasks.money_moved(sh_pool.pk, [i])
    assert queued == [(sh_pool.pk,)]
    # The job drops the claim before it reads: a movement after that queues the next job.
    tasks.release_tracking(sh_pool.pk)
    tasks.money_moved(sh_pool.pk, [99])
    assert len(queued) == 2


def test_money_moved_never_raises_when_the_broker_is_down(eager, sh_pool, monkeypatch, caplog):
    def down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")

    monkeypatch.setattr(tasks.track_pool, "apply_async", down)
    monkeypatch.setattr(tasks.fan_out_money_moved, "delay", down)
    tasks.money_moved(sh_pool.pk, [1])
    assert "sweep will catch up" in caplog.text
    # The claim was given back, so the next movement tries to queue again.
    assert tasks.claim_tracking(sh_pool.pk)


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


def test_an_export_is_built_once_to_a_file(eager, alice, sh_pool, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path
    monkeypatch.setattr(
        exports,
        "rows",
        lambda user, report, params: (["pool", "cap"], iter([("CMP", Decimal("600000000.00")), ("X", None)])),
    )
    job = exports.request_export(user=alice, report="budget", format="csv", params={})
    job.refresh_from_db()  # queued after commit: the test transaction never commits, so run it
    assert job.status == ExportJob.Status.PENDING
    assert tasks.export(job.pk) == "done"
    assert tasks.export(job.pk) is None
    job.refresh_from_db()
    assert job.row_count == 2 and job.finished_at is not None
    with default_storage.open(job.file.name) as fh:
        assert fh.read().decode("utf-8-sig").splitlines() == ["pool,cap", "CMP,600000000.00", "X,"]


def test_an_export_to_xlsx_has_the_header_and_rows(eager, alice, settings, tmp_path, monkeypatch):
    from openpyxl import load_workbook

    settings.MEDIA_ROOT = tmp_path
    monkeypatch.setattr(exports, "rows", lambda u, r, p: (["a", "b"], iter([(1, "x"), (2, "y")])))
    job = exports.request_export(user=alice, report="budget", format="xlsx")
    exports.run_export(job_id=job.pk)
    job.refresh_from_db()
    sheet = load_workbook(tmp_path / job.file.name).worksheets[0]
    assert [tuple(r) for r in sheet.iter_rows(values_only=True)] == [("a", "b"), (1, "x"), (2, "y")]


def test_a_bad_export_request_is_refused_and_creates_nothing(alice):
    with pytest.raises(InvalidInput):
        exports.request_export(user=alice, report="budget", format="pdf")
    with pytest.raises(InvalidInput):
        exports.request_export(user=alice, report="no-such-report", format="csv")
    assert not ExportJob.objects.exists()


def test_the_export_sweep_requeues_lost_jobs_and_fails_dead_ones(alice, settings):
    now = timezone.now()
    lost = ExportJob.objects.create(
        requested_by=alice, report="budget", format="csv", created_at=now - timedelta(minutes=5)
    )
    fresh = ExportJob.objects.create(requested_by=alice, report="budget", format="csv")
    dead = ExportJob.objects.create(
        requested_by=alice,
        report="budget",
        format="csv",
        status="running",
        created_at=now - timedelta(seconds=settings.JOBS_EXPORT_TIME_LIMIT + 600),
    )
    assert exports.stale_jobs(now=now) == [lost.pk]
    assert ExportJob.objects.get(pk=dead.pk).status == "failed"
    assert ExportJob.objects.get(pk=fresh.pk).status == "pending"
