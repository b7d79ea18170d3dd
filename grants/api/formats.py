"""Writing a report as CSV (streamed row by row), XLSX (openpyxl, write-only) or JSON.

CSV is generated lazily: a StreamingHttpResponse pulls one line at a time from the report's row iterator, which
reads the database in chunks, so memory stays flat however many rows there are. On PostgreSQL the tranche export
can instead stream the database's own `COPY ... TO STDOUT WITH CSV`, which produces the same CSV.

Every text cell of every CSV and XLSX the service writes goes through `neutralise` (OWASP's rule against formula
injection): an institution named `=HYPERLINK(...)` is shown as text, never evaluated. Numbers stay numbers.
"""

import csv
import tempfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any

from django.db import connection
from django.db.models import CharField, QuerySet, TextField
from django.http import FileResponse, StreamingHttpResponse
from openpyxl import Workbook

from grants.api.reports import Report

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# A spreadsheet program evaluates a cell that starts with one of these as a formula (OWASP, "CSV Injection"); some
# strip a leading tab or carriage return first, so those count too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """Text that a spreadsheet shows and never evaluates: a single quote before a formula's first character.

    For text only: a number (a negative amount included) is written as a number and never passes through here.
    The CSV, XLSX, COPY and background-export writers all call it, so a file reads the same in every format."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


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


def csv_cell(value: Any) -> Any:
    """A value for a CSV file: numbers, dates and booleans as `cell` writes them, anything else as neutralised
    text."""
    if value is None or isinstance(value, int | float | Decimal | date):  # bool is an int, datetime a date
        return cell(value)
    return neutralise(str(value))


def csv_text(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """CSV, one line at a time: the header, then each row with its values as `csv_cell` writes them."""
    writer = csv.writer(_Line(), lineterminator="\n")
    yield writer.writerow([csv_cell(v) for v in header])
    for row in rows:
        yield writer.writerow([csv_cell(v) for v in row])


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


def _copy_select(queryset: QuerySet[Any, Any], columns: list[str]) -> str:
    """The queryset's SQL wrapped so that the database applies `neutralise` to its text columns: COPY writes
    the values itself, so Python never sees them. Columns are renamed c0, c1 ... so that two selected fields of
    the same name (two tables' `code`) stay apart."""
    compiler = queryset.query.chain().get_compiler(connection=connection)
    compiler.setup_query()
    fields = [expression.output_field for expression, _sql, _alias in compiler.select]
    if len(fields) != len(columns):
        raise ValueError(f"COPY export: {len(columns)} column names for {len(fields)} selected values")
    sql, params = queryset.query.sql_with_params()
    compose_sql = connection.ops.compose_sql  # type: ignore[attr-defined]
    starts = ", ".join(f"chr({ord(c)})" for c in FORMULA_STARTS)
    names = [f"c{i}" for i in range(len(fields))]
    outer = [
        f"CASE WHEN left({n}, 1) IN ({starts}) THEN '''' || {n} ELSE {n} END"
        if isinstance(f, CharField | TextField)
        else n
        for n, f in zip(names, fields, strict=True)
    ]
    # Django's own SQL with its parameters bound, wrapped in column names and expressions of our making.
    return f"SELECT {', '.join(outer)} FROM ({compose_sql(sql, params)}) AS export ({', '.join(names)})"  # noqa: S608


def copy_lines(queryset: QuerySet[Any, Any], columns: list[str]) -> Iterator[bytes]:
    """PostgreSQL only: stream `COPY (<the queryset's SQL>) TO STDOUT WITH CSV`, block by block, text cells
    neutralised by the database."""
    select = _copy_select(queryset, columns)
    header = ",".join(csv_cell(c) for c in columns)
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
    sheet.append([_xlsx_cell(c) for c in report.columns])
    count = 0
    for row in report.rows:
        sheet.append([_xlsx_cell(v) for v in row])
        count += 1
    workbook.save(target)
    return count


def _xlsx_cell(value: Any) -> Any:
    # Money stays a number in a spreadsheet (Decimal is written as a number); timezone-aware times are not
    # supported by the format, so they are written in local ISO form. Text is neutralised: openpyxl would
    # otherwise store a text starting with "=" as a formula.
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return neutralise(value)
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
