"""Background exports (§5.5): a report written to a file in the default storage, downloaded when ready.

The rows come from the reports of the API (grants.api.reports.build), so an export holds exactly what the same
user would get from the report endpoint. The job's state lives in ExportJob: a run claims it with a conditional
update (pending → running), so two deliveries of the same task build the file once.
"""

import csv
import io
import logging
import tempfile
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from grants.errors import DomainError, InvalidInput
from grants.models import ExportJob

logger = logging.getLogger(__name__)

Status = ExportJob.Status
FORMATS = ("csv", "xlsx")
# A job still pending this long after it was requested lost its message (a broker outage): queue it again.
REQUEUE_AFTER = timedelta(minutes=2)


def rows(user: User, report: str, params: dict[str, Any]) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    """(header, rows) of a report for a user: the API's report functions, scoped to the user."""
    from grants.api.reports import build

    built = build(report, user, params)
    return list(built.columns), built.rows


def request_export(
    *, user: User, report: str, format: str, params: dict[str, Any] | None = None
) -> ExportJob:
    """Record an export request and queue its job once the transaction commits. The report and its parameters
    are checked now, so bad input is refused at once and creates nothing."""
    params = dict(params or {})
    if format not in FORMATS:
        raise InvalidInput(
            _("Exports are made as %(f)s.") % {"f": ", ".join(FORMATS)},
            fields={"format": [_("Unknown format.")]},
        )
    rows(user, report, params)  # raises InvalidInput for an unknown report or bad parameters
    with transaction.atomic():
        job = ExportJob.objects.create(requested_by=user, report=report, format=format, params=params)
        job_id = job.pk
        transaction.on_commit(lambda: _queue(job_id))
    return job


def _queue(job_id: int) -> None:
    from grants.tasks import queue_export

    queue_export(job_id)


def _cell(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return "" if value is None else value


def _xlsx_cell(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return timezone.localtime(value).replace(tzinfo=None)  # spreadsheets have no time zones
    return value


def _write(fmt: str, header: list[str], data: Iterator[tuple[Any, ...]], out: Any) -> int:
    count = 0
    if fmt == "csv":
        text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="")
        writer = csv.writer(text)
        writer.writerow(header)
        for row in data:
            writer.writerow([_cell(v) for v in row])
            count += 1
        text.flush()
        text.detach()
        return count
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("export")
    sheet.append(header)
    for row in data:
        sheet.append([_xlsx_cell(v) for v in row])
        count += 1
    book.save(out)
    return count


def run_export(*, job_id: int) -> ExportJob | None:
    """Build the file of a pending export. Returns None if the job is gone or another run has it."""
    if not ExportJob.objects.filter(pk=job_id, status=Status.PENDING).update(status=Status.RUNNING):
        return None
    job = ExportJob.objects.select_related("requested_by").get(pk=job_id)
    try:
        header, data = rows(job.requested_by, job.report, dict(job.params))
        with tempfile.TemporaryFile() as out:
            count = _write(job.format, header, data, out)
            out.seek(0)
            stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
            name = default_storage.save(f"exports/{job.report}-{job.pk}-{stamp}.{job.format}", File(out))
    except DomainError as exc:
        _finish(job_id, Status.FAILED, error=exc.message)
        return ExportJob.objects.get(pk=job_id)
    except Exception:
        logger.exception("export %s failed", job_id)
        _finish(job_id, Status.FAILED, error=_("The export failed; please request it again."))
        return ExportJob.objects.get(pk=job_id)
    _finish(job_id, Status.DONE, file=name, row_count=count)
    return ExportJob.objects.get(pk=job_id)


def _finish(job_id: int, status: str, **fields: Any) -> None:
    if "error" in fields:
        fields["error"] = str(fields["error"])[:500]
    ExportJob.objects.filter(pk=job_id, status=Status.RUNNING).update(
        status=status, finished_at=timezone.now(), **fields
    )


def stale_jobs(*, now: datetime | None = None) -> list[int]:
    """The sweep: pending jobs whose message was lost are returned for queueing again; running jobs older than
    the export time limit died with their worker (the task acknowledges on receipt) and are marked failed with a
    message telling the user to ask again."""
    now = now or timezone.now()
    dead = now - timedelta(seconds=settings.JOBS_EXPORT_TIME_LIMIT + 300)
    ExportJob.objects.filter(status=Status.RUNNING, created_at__lt=dead).update(
        status=Status.FAILED,
        finished_at=now,
        error=_("The export was interrupted; please request it again."),
    )
    return list(
        ExportJob.objects.filter(status=Status.PENDING, created_at__lt=now - REQUEUE_AFTER)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
