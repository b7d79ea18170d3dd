"""Background export jobs (docs/jobs.md, Exports): a run claims its job once; the sweep queues again a job whose
message was lost, retries a job whose worker died (promptly, at most JOBS_EXPORT_MAX_ATTEMPTS runs, then fails it
with the reason) and never takes over a live one; finished files expire and are deleted.

The last three tests run a real Celery worker with beat against PostgreSQL and Redis and kill it mid-export:
DATABASE_URL=postgres://... REDIS_URL=redis://127.0.0.1:6379/<n> pytest tests/jobs/test_export_jobs.py -s
(-s shows the measured figures).
"""

import functools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, connections
from django.utils import timezone

from grants import tasks
from grants.api import reports
from grants.models import ExportJob
from grants.services import exports
from tests import factories as f
from tests.jobs.test_real_worker import SLOW_APP, Worker, purge, wait_for

Status = ExportJob.Status


@pytest.fixture(autouse=True)
def _files_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def a_job(user, **fields) -> ExportJob:
    return ExportJob.objects.create(requested_by=user, report="budget", format="csv", **fields)


def slow_rows(monkeypatch, during: Callable[[], object], rows: int = 4) -> None:
    """The report's rows, calling `during` after the first one (the moment a sweep or a crash comes)."""
    real = reports.build

    def build(name, user, params):
        report = real(name, user, params)

        def rows_of():
            for i in range(rows):
                if i == 1:
                    during()
                yield (f"row-{i}",) + (None,) * (len(report.columns) - 1)

        report.rows = rows_of()
        return report

    monkeypatch.setattr(reports, "build", build)


def ran(pk: int) -> ExportJob:
    job = exports.run_export(job_id=pk)
    assert job is not None, "the run did not have the job"
    return job


def test_a_run_claims_its_job_once_and_counts_the_attempt(eager, alice, sh_pool):
    job = exports.request_export(user=alice, report="budget", format="csv")
    assert tasks.export(job.pk) == "done"
    assert tasks.export(job.pk) is None  # a second delivery of the same message
    job.refresh_from_db()
    assert (job.status, job.attempts, job.row_count) == (Status.DONE, 1, 1)  # the pool's row
    assert job.started_at is not None and job.finished_at is not None and job.expires_at is not None
    assert job.started_at <= job.finished_at < job.expires_at
    assert default_storage.exists(job.file.name)


def test_the_sweep_queues_again_a_pending_job_whose_message_was_lost(alice):
    now = timezone.now()
    lost = a_job(alice, sweep_after=now - timedelta(seconds=1))
    fresh = a_job(alice, sweep_after=now + exports.REQUEUE_AFTER)
    swept = exports.sweep(now=now)
    assert swept.queued == [lost.pk] and swept.failed == []
    # Not again at the next sweep: only once its message has had time to arrive.
    assert exports.sweep(now=now + timedelta(seconds=30)).queued == []
    assert (
        ExportJob.objects.get(pk=fresh.pk).status
        == ExportJob.objects.get(pk=lost.pk).status
        == Status.PENDING
    )


def test_a_running_job_nobody_holds_is_retried_then_failed_after_the_last_attempt(alice, settings):
    settings.JOBS_EXPORT_MAX_ATTEMPTS = 3
    now = timezone.now()
    dead = a_job(alice, status=Status.RUNNING, attempts=1, sweep_after=now - timedelta(seconds=1))
    last = a_job(alice, status=Status.RUNNING, attempts=3, sweep_after=now - timedelta(seconds=1))
    live = a_job(alice, status=Status.RUNNING, attempts=1, sweep_after=now + timedelta(seconds=30))

    swept = exports.sweep(now=now)
    assert (swept.queued, swept.failed) == ([dead.pk], [last.pk])
    for job in (dead, last, live):
        job.refresh_from_db()
    assert (dead.status, dead.attempts) == (Status.PENDING, 1)
    assert (
        last.status == Status.FAILED
        and last.error == "The export was interrupted 3 times; please request it again."
    )
    assert live.status == Status.RUNNING


def test_a_retried_job_is_built_by_its_next_run(eager, alice, sh_pool):
    job = a_job(alice, status=Status.RUNNING, attempts=1, sweep_after=timezone.now() - timedelta(seconds=1))
    assert tasks.sweep_exports() == {"queued": [job.pk], "failed": [], "expired": []}  # eager: queued and run
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.DONE, 2)


@pytest.mark.skipif("connection.vendor == 'postgresql'")
def test_without_row_locks_a_run_that_lost_its_lease_writes_nothing(alice, sh_pool, monkeypatch, settings):
    job = exports.request_export(user=alice, report="budget", format="csv")
    # Mid-run the lease runs out (a stalled run) and the sweep gives the job to another run.
    slow_rows(monkeypatch, lambda: exports.sweep(now=timezone.now() + timedelta(hours=1)))
    assert exports.run_export(job_id=job.pk) is None
    job.refresh_from_db()
    assert (job.status, job.attempts, job.file.name) == (Status.PENDING, 1, "")
    assert not default_storage.exists("exports") or not default_storage.listdir("exports")[1]
    monkeypatch.undo()
    assert ran(job.pk).status == Status.DONE


def test_without_row_locks_a_long_run_renews_its_lease(alice, sh_pool, monkeypatch, settings):
    settings.JOBS_EXPORT_LEASE_SECONDS = 0  # renewed at every row
    monkeypatch.setattr(connection.features, "has_select_for_update_skip_locked", False)
    job = exports.request_export(user=alice, report="budget", format="csv")
    leases = []
    slow_rows(monkeypatch, lambda: leases.append(ExportJob.objects.get(pk=job.pk).sweep_after), rows=3)
    assert ran(job.pk).status == Status.DONE
    started_at = ExportJob.objects.get(pk=job.pk).started_at
    assert leases and started_at is not None and leases[0] > started_at


def test_an_unexpected_error_gives_the_job_back_to_the_sweep(alice, sh_pool, monkeypatch, settings):
    settings.JOBS_EXPORT_MAX_ATTEMPTS = 2
    job = exports.request_export(user=alice, report="budget", format="csv")

    def disk_full():
        raise OSError("No space left on device")

    slow_rows(monkeypatch, disk_full)
    exports.run_export(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Status.RUNNING and job.sweep_after <= timezone.now()
    assert exports.sweep(now=timezone.now() + timedelta(seconds=1)).queued == [job.pk]
    exports.run_export(job_id=job.pk)
    assert exports.sweep(now=timezone.now() + timedelta(seconds=1)).failed == [job.pk]
    job.refresh_from_db()
    assert job.status == Status.FAILED and job.attempts == 2 and "interrupted 2 times" in job.error
    assert not default_storage.exists("exports") or not default_storage.listdir("exports")[1]


def test_an_export_past_its_time_limit_fails_with_the_reason(alice, sh_pool, monkeypatch):
    job = exports.request_export(user=alice, report="budget", format="csv")

    def too_long():
        raise SoftTimeLimitExceeded()

    slow_rows(monkeypatch, too_long)
    assert ran(job.pk).status == Status.FAILED
    assert ExportJob.objects.get(pk=job.pk).error.startswith("The export took too long")


def test_files_past_their_retention_are_deleted_and_the_job_kept_as_expired(alice):
    now = timezone.now()
    old = a_job(alice, status=Status.DONE, expires_at=now - timedelta(seconds=1))
    old.file.name = default_storage.save("exports/old.csv", ContentFile(b"a\n"))
    old.save(update_fields=["file"])
    kept = a_job(alice, status=Status.DONE, expires_at=now + timedelta(hours=1))
    kept.file.name = default_storage.save("exports/kept.csv", ContentFile(b"a\n"))
    kept.save(update_fields=["file"])

    assert exports.sweep(now=now).expired == [old.pk]
    old.refresh_from_db()
    assert (old.status, old.file.name) == (Status.EXPIRED, "")
    assert default_storage.listdir("exports")[1] == ["kept.csv"]
    assert exports.sweep(now=now).expired == []


def test_the_sweep_runs_every_30_seconds_by_default():
    from config.celery import app

    (entry,) = [e for e in app.conf.beat_schedule.values() if e["task"] == "grants.sweep_exports"]
    assert entry["schedule"] <= 30


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_running_export_holding_its_lock_is_never_taken_over(alice, sh_pool, monkeypatch):
    job = exports.request_export(user=alice, report="budget", format="csv")
    seen = {}

    def sweep_from_another_process():
        # Far past the run's claim-time lease: only the row lock says the run is alive.
        def sweep():
            try:
                seen["swept"] = exports.sweep(now=timezone.now() + timedelta(hours=1))
            finally:
                connections.close_all()

        thread = threading.Thread(target=sweep)
        thread.start()
        thread.join(30)

    slow_rows(monkeypatch, sweep_from_another_process)
    assert ran(job.pk).status == Status.DONE
    assert seen["swept"].queued == seen["swept"].failed == []
    assert ExportJob.objects.get(pk=job.pk).attempts == 1


# --- A real worker, killed -----------------------------------------------------------------------------------


@pytest.fixture
def export_worker(transactional_db, tmp_path, settings) -> Iterator[Callable[..., Worker]]:
    """A worker with beat whose export sweep runs every second and whose lease is 2 s, writing files where this
    test reads them."""
    settings.MEDIA_ROOT = tmp_path / "media"
    started: list[Worker] = []

    def make(**env: str) -> Worker:
        url = os.environ["REDIS_URL"]
        purge(url)
        w = Worker(
            tmp_path,
            url,
            MEDIA_ROOT=str(tmp_path / "media"),
            JOBS_SWEEP_EXPORTS_SECONDS="1",
            JOBS_EXPORT_LEASE_SECONDS="2",
            JOBS_SWEEP_TRACKING_SECONDS="3600",
            **env,
        )
        started.append(w)
        return w

    try:
        yield make
    finally:
        for w in started:
            w.stop()


@pytest.fixture
def many_tranches(transactional_db):
    from django.contrib.auth.models import Group

    from grants.roles import Role

    for (
        role
    ) in Role:  # a transactional test empties every table, the role groups of the data migration included
        Group.objects.get_or_create(name=role.value)
    sh = f.city("SH")
    alice = f.user("alice", roles=(Role.PROGRAMME_OFFICER,), cities=(sh,))
    rita = f.user("rita", roles=(Role.REVIEWER,), cities=(sh,))
    pool = f.pool(f.programme(sh), code="SML", cap="100000000")
    for n in range(4):
        carol = f.user(f"carol{n}")
        f.award(
            pool, f.institution(sh, carol, type="startup"), carol, alice, rita, requested="300000", years=3
        )
    return alice


def files(tmp_path: Path) -> list[str]:
    folder = tmp_path / "media" / "exports"
    return sorted(os.listdir(folder)) if folder.exists() else []


def running(pk: int, attempt: int) -> bool:
    return ExportJob.objects.filter(pk=pk, status=Status.RUNNING, attempts=attempt).exists()


@pytest.mark.postgres
@pytest.mark.redis
def test_a_live_long_export_is_never_taken_over(export_worker, many_tranches, tmp_path):
    # 12 rows at 0.5 s: a run six times longer than its lease, with a sweep every second beside it.
    w = export_worker().start(SLOW_APP, SLOW_EXPORT_ROW_SECONDS="0.5")
    job = exports.request_export(user=many_tranches, report="tranches", format="csv")
    wait_for(lambda: ExportJob.objects.get(pk=job.pk).status == Status.DONE, 90, "the export")
    job.refresh_from_db()
    assert job.finished_at is not None and job.started_at is not None
    took = (job.finished_at - job.started_at).total_seconds()
    sweeps = w.text().count("grants.sweep_exports[")
    print(f"\nlive export: {took:.1f}s with a lease of 2 s; {sweeps} sweep log lines meanwhile")
    assert (job.attempts, job.row_count) == (1, 12)
    assert took > 2 * 2  # it outlived its lease (12 rows at 0.5 s): only its row lock kept the sweep off
    assert files(tmp_path) == [os.path.basename(job.file.name)]


@pytest.mark.postgres
@pytest.mark.redis
def test_an_export_whose_worker_is_killed_is_retried_promptly(export_worker, many_tranches, tmp_path):
    w = export_worker().start(SLOW_APP, SLOW_EXPORT_ROW_SECONDS="0.5")
    job = exports.request_export(user=many_tranches, report="tranches", format="csv")
    wait_for(lambda: running(job.pk, 1), 30, "the export to start")
    time.sleep(2)  # inside the export, rows written
    w.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    assert running(job.pk, 1) and files(tmp_path) == []

    w.start()  # the sweep of the new worker finds the job nobody holds
    wait_for(lambda: ExportJob.objects.get(pk=job.pk).status == Status.DONE, 90, "the retried export")
    delay = time.monotonic() - killed_at
    print(f"\nexport retried after SIGKILL: done {delay:.1f}s after the kill (lease 2 s, sweep every 1 s)")
    job.refresh_from_db()
    assert (job.attempts, job.row_count, job.error) == (2, 12, "")
    assert files(tmp_path) == [os.path.basename(job.file.name)]
    assert delay < 60


@pytest.mark.postgres
@pytest.mark.redis
def test_an_export_killed_on_every_attempt_fails_after_the_last_with_the_reason(export_worker, many_tranches):
    w = export_worker(JOBS_EXPORT_MAX_ATTEMPTS="2")
    job = exports.request_export(user=many_tranches, report="tranches", format="xlsx")
    for attempt in (1, 2):
        w.start(SLOW_APP, SLOW_EXPORT_ROW_SECONDS="1")
        wait_for(functools.partial(running, job.pk, attempt), 60, f"attempt {attempt}")
        w.kill(signal.SIGKILL)
    w.start()
    wait_for(lambda: ExportJob.objects.get(pk=job.pk).status == Status.FAILED, 60, "the export to fail")
    job.refresh_from_db()
    assert job.attempts == 2 and job.error == "The export was interrupted 2 times; please request it again."
    assert not job.file.name
