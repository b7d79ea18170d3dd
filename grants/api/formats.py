"""Writing a report as CSV (streamed row by row), XLSX (openpyxl, write-only) or JSON.

CSV is generated lazily: a StreamingHttpResponse pulls one line at a time from the report's row iterator, which
reads the database in chunks, so memory stays flat however many rows there are. On PostgreSQL the tranche export
can instead stream the database's own `COPY ... TO STDOUT WITH CSV`, which produces the same CSV.
"""

import csv
import tempfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any

from django.db import connection
from django.db.models import QuerySet
from django.http import FileResponse, StreamingHttpResponse
from openpyxl import Workbook

from grants.api.reports import Report

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def cell(value: Any) -> Any:
    """A value as text for CSV and JSON: money keeps its two decimals, dates are ISO 8601, empty is empty."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class _Line:
    """A file-like object whose write() returns the line, so csv.writer yields text instead of buffering it."""

    def write(self, value: str) -> str:
        return value


def csv_text(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """CSV, one line at a time: the header, then each row with its values as `cell` writes them."""
    writer = csv.writer(_Line(), lineterminator="\n")
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([cell(v) for v in row])


def csv_lines(report: Report) -> Iterator[str]:
    return csv_text(report.columns, report.rows)


def csv_response(report: Report, filename: str) -> StreamingHttpResponse:
    return _streaming(csv_lines(report), filename)


CHUNK_BYTES = 64 * 1024


def chunked(lines: Iterable[str | bytes], size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Join lines into blocks of about `size` bytes: one write to the socket per block, not per row, while memory
    stays bounded by the block."""
    buffer: list[bytes] = []
    held = 0
    for line in lines:
        data = line.encode() if isinstance(line, str) else line
        buffer.append(data)
        held += len(data)
        if held >= size:
            yield b"".join(buffer)
            buffer, held = [], 0
    if buffer:
        yield b"".join(buffer)


def _streaming(lines: Iterable[str | bytes], filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunked(lines), content_type=CSV_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def copy_lines(queryset: QuerySet[Any, Any], columns: list[str]) -> Iterator[bytes]:
    """PostgreSQL only: stream `COPY (<the queryset's SQL>) TO STDOUT WITH CSV HEADER`, block by block."""
    sql, params = queryset.query.sql_with_params()
    compose_sql = connection.ops.compose_sql  # type: ignore[attr-defined]
    select = compose_sql(sql, params)
    header = ",".join(columns)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        yield (header + "\n").encode()
        # The header comes from the export's own column names; COPY writes the data rows. Like csv.writer, COPY
        # quotes only the values that need it and ends lines with \n.
        with raw.copy(f"COPY ({select}) TO STDOUT WITH (FORMAT csv)") as copy:
            for block in copy:
                yield bytes(block)


def copy_response(queryset: QuerySet[Any, Any], columns: list[str], filename: str) -> StreamingHttpResponse:
    return _streaming(copy_lines(queryset, columns), filename)


def write_xlsx(report: Report, target: IO[bytes]) -> int:
    """Write the report as a one-sheet workbook; returns the number of data rows. Write-only mode streams rows
    to a temporary file instead of holding the sheet in memory."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=report.name[:31])
    sheet.append(report.columns)
    count = 0
    for row in report.rows:
        sheet.append([_xlsx_cell(v) for v in row])
        count += 1
    workbook.save(target)
    return count


def _xlsx_cell(value: Any) -> Any:
    # Money stays a number in a spreadsheet (Decimal is written as a number); timezone-aware times are not
    # supported by the format, so they are written in local ISO form.
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def xlsx_response(report: Report, filename: str) -> FileResponse:
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 (FileResponse closes it)
    write_xlsx(report, spool)
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, filename=filename, content_type=XLSX_TYPE)


def json_rows(report: Report) -> list[dict[str, Any]]:
    return [
        dict(zip(report.columns, (cell(v) if v is not None else None for v in row), strict=True))
        for row in report.rows
    ]
