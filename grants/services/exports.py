"""Background exports (§5.5): a report written to a file, downloaded by the user who asked, deleted when it expires.

The file holds exactly what its requester gets from the synchronous report endpoint (GET /api/v1/reports/<name>/)
with the same parameters at the moment the export runs: the rows come from the same report functions
(grants.api.reports.build, scoped to the requester) through the same writers (grants.api.formats.csv_text and
write_xlsx, text cells neutralised against formula injection alike).

A job's life: `pending` (queued after the request commits) → `running` (a run claimed it) → `done` (the file is
written; `expires_at` says until when) or `failed` (with the reason) → `expired` (the sweep deleted the file).

Runs and the sweep (every JOBS_SWEEP_EXPORTS_SECONDS) share out the work like this:

- A run claims a pending job by a conditional update: `attempts + 1`, and its attempt number is its claim. Two
  deliveries of one message build the file once, and a run that lost its job (the sweep gave it to another run)
  can neither finish nor fail it.
- On PostgreSQL the run then holds the job's row lock until it finishes. A killed worker's connection closes and
  its lock goes with it, so the sweep (SELECT ... FOR UPDATE SKIP LOCKED) sees exactly the jobs nobody is running:
  a live export is never taken over however long it takes. Elsewhere (SQLite, one machine) the run renews a lease
  (`sweep_after`) as it writes rows instead.
- The sweep queues again a running job that nobody holds once its `sweep_after` has passed (at most
  JOBS_EXPORT_MAX_ATTEMPTS runs in all, then `failed` with the reason), and a pending job whose message was lost
  (the broker was down at the commit). Exports are acknowledged on receipt (grants/tasks.py): their state is here.
"""

import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import serializers

from grants.api import formats, reports
from grants.errors import DomainError, InvalidInput
from grants.models import ExportJob
from grants.roles import UserLike
from grants.services import after_commit

logger = logging.getLogger(__name__)

Status = ExportJob.Status
FORMATS = ("csv", "xlsx")
# The tabular reports of the API, each with the parameters its endpoint takes (the 360Giving package is one JSON
# document, fetched directly).
EXPORTABLE: dict[str, type[serializers.Serializer[Any]]] = {
    "disbursements": reports.DisbursementParams,
    "budget": reports.BudgetParams,
    "tranches": reports.TrancheFilterParams,
}
CONTENT_TYPES = {"csv": formats.CSV_TYPE, "xlsx": formats.XLSX_TYPE}
# A pending job not picked up this long after it was queued lost its message: the sweep queues it again.
REQUEUE_AFTER = timedelta(minutes=2)


class TooManyExports(DomainError):
    code = "too_many_exports"
    status = 409


class ExportNotReady(DomainError):
    code = "export_not_ready"
    status = 409


class ExportExpired(DomainError):
    code = "export_expired"
    status = 410


def exports_of(user: UserLike) -> QuerySet[ExportJob]:
    """The exports a user may see and download: their own; an administrator's, everyone's. Not those of others
    in the same cities: a file holds its requester's scope, which may be wider than the reader's."""
    if user.is_superuser:
        return ExportJob.objects.all()
    if not user.is_authenticated:
        return ExportJob.objects.none()
    return ExportJob.objects.filter(requested_by_id=user.pk)


def request_export(
    *, user: User, report: str, format: str, params: dict[str, Any] | None = None
) -> ExportJob:
    """Record an export request and queue its job once the transaction commits. The report, the format and the
    parameters are checked now (as the report endpoint checks them), so bad input is refused at once and creates
    nothing. Locks the requester's user row, so that two requests at once cannot both pass the limit of
    unfinished exports."""
    if report not in EXPORTABLE:
        raise InvalidInput(
            _("Reports that can be exported: %(r)s.") % {"r": ", ".join(EXPORTABLE)},
            fields={"report": [_("Unknown report.")]},
        )
    if format not in FORMATS:
        raise InvalidInput(
            _("Exports are made as %(f)s.") % {"f": ", ".join(FORMATS)},
            fields={"format": [_("Unknown format.")]},
        )
    params_class = EXPORTABLE[report]
    raw = dict(params or {})
    reports.parse(params_class, raw)  # raises InvalidInput naming the bad parameters
    # Kept as given (query-string form, JSON-safe), only the parameters the report knows: parsed again at run time.
    names: list[str] = list(params_class().fields)
    kept = {name: raw[name] for name in names if name in raw}
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        unfinished = ExportJob.objects.filter(
            requested_by_id=user.pk, status__in=[Status.PENDING, Status.RUNNING]
        ).count()
        if unfinished >= settings.JOBS_EXPORT_MAX_UNFINISHED:
            raise TooManyExports(
                _("You have %(n)d exports waiting or running; request more when one has finished.")
                % {"n": unfinished},
                unfinished=unfinished,
                limit=settings.JOBS_EXPORT_MAX_UNFINISHED,
            )
        job = ExportJob.objects.create(
            requested_by=user,
            report=report,
            format=format,
            params=kept,
            sweep_after=timezone.now() + REQUEUE_AFTER,
        )
        job_id = job.pk
        transaction.on_commit(lambda: _queue([job_id]))
    return job


def _queue(job_ids: list[int]) -> None:
    for job_id in job_ids:
        after_commit.export(job_id)


# --- A run --------------------------------------------------------------------------------------------------


@dataclass
class _Claim:
    job_id: int
    attempt: int
    locked: bool  # holds the row lock (PostgreSQL) rather than a lease
    rows: int = 0  # written so far


def _lease() -> datetime:
    return timezone.now() + timedelta(seconds=settings.JOBS_EXPORT_LEASE_SECONDS)


def _claim(job_id: int) -> int | None:
    """pending → running; the new attempt number, or None if the job is not pending (done, gone, taken)."""
    now = timezone.now()
    with transaction.atomic():
        job = ExportJob.objects.select_for_update().filter(pk=job_id, status=Status.PENDING).first()
        if job is None:
            return None
        job.status, job.attempts, job.started_at, job.sweep_after = (
            Status.RUNNING,
            job.attempts + 1,
            now,
            _lease(),
        )
        job.save(update_fields=["status", "attempts", "started_at", "sweep_after"])
    return job.attempts


def _mine(claim: _Claim) -> QuerySet[ExportJob]:
    return ExportJob.objects.filter(pk=claim.job_id, status=Status.RUNNING, attempts=claim.attempt)


@contextmanager
def _held(job_id: int, attempt: int) -> Iterator[_Claim | None]:
    """The claimed job, held for the run: on PostgreSQL by its row lock, inside a transaction that ends with
    the run (its result is written in it); elsewhere by the lease alone (a transaction as long as the export
    would lock a whole SQLite database). None if the job is no longer this run's."""
    if not connection.features.has_select_for_update_skip_locked:
        claim = _Claim(job_id, attempt, locked=False)
        yield claim if _mine(claim).exists() else None
        return
    with transaction.atomic():
        claim = _Claim(job_id, attempt, locked=True)
        yield claim if _mine(claim).select_for_update().first() is not None else None


def _alive(claim: _Claim, rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """The rows, counted, renewing the lease of a run that holds no row lock every third of its length."""
    renew_every = settings.JOBS_EXPORT_LEASE_SECONDS / 3
    renewed = time.monotonic()
    for row in rows:
        if not claim.locked and time.monotonic() - renewed > renew_every:
            if not _mine(claim).update(sweep_after=_lease()):
                raise _Lost()
            renewed = time.monotonic()
        claim.rows += 1
        yield row


class _Lost(Exception):
    """The sweep gave the job to another run (this one's lease ran out): stop writing."""


def _write(fmt: str, report: reports.Report, out: IO[bytes]) -> None:
    """The synchronous endpoints' writers: CSV as streamed by GET ?format=csv, XLSX as GET ?format=xlsx."""
    if fmt == "xlsx":
        formats.write_xlsx(report, out)
        return
    for block in formats.chunked(formats.csv_text(report.columns, report.rows)):
        out.write(block)


def run_export(*, job_id: int) -> ExportJob | None:
    """Build the file of a pending export. Returns None if the job is gone, finished, or another run has it."""
    attempt = _claim(job_id)
    if attempt is None:
        return None
    job = ExportJob.objects.select_related("requested_by").get(pk=job_id)
    name = ""
    try:
        with _held(job_id, attempt) as claim:
            if claim is None:
                return None
            report = reports.build(job.report, job.requested_by, dict(job.params))
            report.rows = _alive(claim, report.rows)
            with tempfile.TemporaryFile() as out:
                _write(job.format, report, out)
                out.seek(0)
                stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
                name = default_storage.save(f"exports/{job.report}-{job.pk}-{stamp}.{job.format}", File(out))
            now = timezone.now()
            finished = _mine(claim).update(
                status=Status.DONE,
                file=name,
                row_count=claim.rows,
                finished_at=now,
                expires_at=now + timedelta(hours=settings.JOBS_EXPORT_RETENTION_HOURS),
                error="",
            )
            if not finished:  # lost the lease meanwhile: the run that has the job writes its own file
                raise _Lost()
    except _Lost:
        _discard(name)
        return None
    except (
        DomainError
    ) as exc:  # the report refuses the parameters now (stored before an upgrade changed them)
        _discard(name)
        _fail(job_id, attempt, exc.message)
    except SoftTimeLimitExceeded:
        _discard(name)
        _fail(job_id, attempt, _("The export took too long; narrow it down with the report's filters."))
    except Exception:
        # Anything else (a database restart, a full disk) may pass: the job goes back to the sweep, which
        # retries it like one whose worker died, within the same limit of attempts.
        logger.exception("export %s failed on attempt %s", job_id, attempt)
        _discard(name)
        ExportJob.objects.filter(pk=job_id, status=Status.RUNNING, attempts=attempt).update(
            sweep_after=timezone.now()
        )
    return ExportJob.objects.get(pk=job_id)


def _fail(job_id: int, attempt: int, error: str) -> None:
    ExportJob.objects.filter(pk=job_id, status=Status.RUNNING, attempts=attempt).update(
        status=Status.FAILED, finished_at=timezone.now(), error=str(error)[:500]
    )


def _discard(name: str) -> None:
    if name:
        default_storage.delete(name)


# --- The sweep ----------------------------------------------------------------------------------------------


@dataclass
class Swept:
    queued: list[int]  # pending again (message lost, or retried after its worker died): queue these
    failed: list[int]  # out of attempts
    expired: list[int]  # files deleted


def sweep(*, now: datetime | None = None) -> Swept:
    """Retry the running jobs nobody holds (their worker died), or fail them after JOBS_EXPORT_MAX_ATTEMPTS runs;
    return the pending jobs to queue again; delete the files past their retention. Safe to run twice at once:
    each part works on rows it locked with SKIP LOCKED, and a job is queued only after its change commits."""
    now = now or timezone.now()
    result = Swept(queued=[], failed=[], expired=[])
    with transaction.atomic():
        # On PostgreSQL a live run holds its job's row lock: SKIP LOCKED leaves it out however old its claim.
        orphans = list(
            ExportJob.objects.select_for_update(skip_locked=True)
            .filter(status=Status.RUNNING, sweep_after__lt=now)
            .order_by("pk")
            .values_list("pk", "attempts")
        )
        retry = [pk for pk, attempts in orphans if attempts < settings.JOBS_EXPORT_MAX_ATTEMPTS]
        result.failed = [pk for pk, attempts in orphans if attempts >= settings.JOBS_EXPORT_MAX_ATTEMPTS]
        if retry:
            ExportJob.objects.filter(pk__in=retry).update(
                status=Status.PENDING, sweep_after=now + REQUEUE_AFTER
            )
            logger.warning("exports %s were interrupted; retrying them", retry)
        if result.failed:
            ExportJob.objects.filter(pk__in=result.failed).update(
                status=Status.FAILED,
                finished_at=now,
                error=_("The export was interrupted %(n)d times; please request it again.")
                % {"n": settings.JOBS_EXPORT_MAX_ATTEMPTS},
            )
            logger.warning("exports %s were interrupted too often; marked failed", result.failed)
        lost = list(
            ExportJob.objects.select_for_update(skip_locked=True)
            .filter(status=Status.PENDING, sweep_after__lt=now)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if lost:
            ExportJob.objects.filter(pk__in=lost).update(sweep_after=now + REQUEUE_AFTER)
        result.queued = sorted(retry + lost)
    result.expired = expire_files(now=now)
    return result


def expire_files(*, now: datetime | None = None) -> list[int]:
    """Delete the files of done exports past their expiry; the jobs stay, as `expired`, for the record."""
    now = now or timezone.now()
    expired: list[int] = []
    with transaction.atomic():
        due = list(
            ExportJob.objects.select_for_update(skip_locked=True)
            .filter(status=Status.DONE, expires_at__lt=now)
            .order_by("pk")
            .values_list("pk", "file")
        )
        for pk, name in due:
            # Deleted before the row says so: a crash in between leaves a job that the next sweep expires again
            # (deleting a missing file is a no-op), never a file nobody will delete.
            if name:
                default_storage.delete(name)
            expired.append(pk)
        ExportJob.objects.filter(pk__in=expired).update(status=Status.EXPIRED, file="")
    return expired


# --- Reading the file ---------------------------------------------------------------------------------------


def open_file(*, job: ExportJob) -> tuple[File, str, str]:
    """(the open file, its download name, its content type) of a done export; ExportNotReady or ExportExpired
    otherwise."""
    expired = ExportExpired(_("This export's file has expired; please request it again."))
    if job.status == Status.EXPIRED or (job.expires_at is not None and job.expires_at <= timezone.now()):
        raise expired  # past its retention, though the sweep may not have deleted it yet
    if job.status != Status.DONE:
        raise ExportNotReady(
            _("This export is %(status)s; its file can be downloaded once it is done.")
            % {"status": Status(job.status).label},
            status=job.status,
        )
    try:
        opened = default_storage.open(job.file.name, "rb")
    except FileNotFoundError:
        raise expired from None
    return opened, os.path.basename(job.file.name), CONTENT_TYPES[job.format]
