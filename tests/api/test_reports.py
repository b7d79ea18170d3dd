"""Reports against sums computed independently in Python from the raw rows, with pinned query counts."""

import csv
import io
import re
from collections import defaultdict
from datetime import date
from decimal import Decimal
from itertools import product

import pytest
from openpyxl import load_workbook

from grants.api import reports
from grants.models import Tranche
from tests import factories as f


@pytest.fixture
def spread(world, sh_pool, carols_startup, carol, alice, rita, dave, frank):
    """More tranches in more years, states and institutions."""
    other = f.institution(sh_pool.programme.city, carol, type="sme")
    award = f.award(sh_pool, other, carol, alice, rita, requested="1000001", years=4, start=date(2025, 2, 14))
    first = award.tranches.earliest("sequence")
    from grants import services

    services.release_tranche(tranche=first, actor=dave)
    services.pay_tranche(tranche=first, actor=frank, payment_reference="SPREAD-1")
    last = award.tranches.latest("sequence")
    services.cancel_tranche(tranche=last, actor=dave, reason="Scope cut")
    return world


def _expected(rows, dims):
    """Group raw tranche rows in Python, as a person with a spreadsheet would."""
    out: dict[tuple, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for t in rows:
        key = []
        for d in dims:
            key.append(
                {
                    "city": t.award.pool.programme.city.code,
                    "pool": t.award.pool_id,
                    "institution": t.award.institution_id,
                    "fiscal_year": t.fiscal_year,
                    "quarter": f"{t.scheduled_date.year}-Q{(t.scheduled_date.month - 1) // 3 + 1}",
                    "month": f"{t.scheduled_date:%Y-%m}",
                    "status": t.status,
                    "programme": t.award.pool.programme_id,
                }[d]
            )
        bucket = out[tuple(key)]
        if t.status != "cancelled":
            bucket["scheduled_amount"] += t.amount
            bucket["scheduled_count"] += 1
        bucket[f"{t.status}_amount"] += t.amount
        bucket[f"{t.status}_count"] += 1
    return out


KEY_COLUMNS = {
    "city": "city",
    "pool": "pool_id",
    "institution": "institution_id",
    "fiscal_year": "fiscal_year",
    "quarter": "quarter",
    "month": "month",
    "status": "status",
    "programme": "programme_id",
}


@pytest.mark.parametrize(
    "dims",
    [
        [],
        ["city"],
        ["fiscal_year"],
        ["pool", "status"],
        ["institution", "quarter"],
        ["month"],
        ["programme", "fiscal_year", "status"],
    ],
)
def test_disbursement_report_matches_python_sums(api, spread, erin, dims, django_assert_max_num_queries):
    params = f"?group_by={','.join(dims)}" if dims else ""
    with django_assert_max_num_queries(6):
        response = api(erin).get(f"/api/v1/reports/disbursements/{params}")
    assert response.status_code == 200, response.json()
    raw = list(Tranche.objects.select_related("award__pool__programme__city"))
    expected = _expected(raw, dims)
    got = response.json()["rows"]
    assert len(got) == len(expected)
    for row in got:
        key = tuple(row[KEY_COLUMNS[d]] for d in dims)
        for measure in reports.MEASURES:
            assert Decimal(row[f"{measure}_amount"]) == expected[key][f"{measure}_amount"], (key, measure)
            assert row[f"{measure}_count"] == expected[key][f"{measure}_count"], (key, measure)


def test_disbursement_report_filters_and_scope(api, spread, alice, bob):
    sh = api(alice).get("/api/v1/reports/disbursements/?group_by=city").json()["rows"]
    assert [r["city"] for r in sh] == ["SH"]
    hz = api(bob).get("/api/v1/reports/disbursements/?group_by=city").json()["rows"]
    assert [r["city"] for r in hz] == ["HZ"]
    paid_2024 = (
        api(alice)
        .get("/api/v1/reports/disbursements/?status=paid&date_from=2024-01-01&date_to=2024-12-31")
        .json()["rows"]
    )
    expected = sum(
        t.amount
        for t in Tranche.objects.filter(
            status="paid", scheduled_date__year=2024, award__pool__programme__city__code="SH"
        )
    )
    assert Decimal(paid_2024[0]["paid_amount"]) == expected


def test_disbursement_report_refuses_unknown_dimensions(api, world, erin):
    response = api(erin).get("/api/v1/reports/disbursements/?group_by=colour")
    assert response.status_code == 400 and "group_by.0" in response.json()["fields"]
    dates = api(erin).get("/api/v1/reports/disbursements/?date_from=2025-02-01&date_to=2025-01-01")
    assert dates.status_code == 400 and "date_to" in dates.json()["fields"]


def test_budget_report_matches_counters_and_python_sums(
    api, spread, erin, alice, django_assert_max_num_queries
):
    from grants import services

    for year in (2025, 2026, 2027, 2028):
        services.set_allotment(pool=spread.sh_pool, actor=alice, fiscal_year=year, amount=Decimal("50000000"))
    with django_assert_max_num_queries(6):
        response = api(erin).get("/api/v1/reports/budget/")
    assert response.status_code == 200
    pools = {p["pool"]: p for p in response.json()["pools"]}
    pool = pools[spread.sh_pool.pk]
    spread.sh_pool.refresh_from_db()
    assert Decimal(pool["cap"]) == spread.sh_pool.cap
    assert Decimal(pool["committed"]) == spread.sh_pool.committed
    assert Decimal(pool["disbursed"]) == spread.sh_pool.disbursed
    assert Decimal(pool["available"]) == spread.sh_pool.cap - spread.sh_pool.committed
    assert Decimal(pool["utilisation"]) == (spread.sh_pool.committed / spread.sh_pool.cap).quantize(
        Decimal("0.0001")
    )
    # Each year's allotment use, against sums of the raw tranches made here (no recoveries in this data).
    by_year: dict[int, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for t in Tranche.objects.filter(award__pool=spread.sh_pool):
        if t.status != "cancelled":
            by_year[t.fiscal_year][0] += t.amount
        if t.status == "paid":
            by_year[t.fiscal_year][1] += t.amount
    assert [y["fiscal_year"] for y in pool["years"]] == [2025, 2026, 2027, 2028]
    for y in pool["years"]:
        committed, paid = by_year[y["fiscal_year"]]
        assert Decimal(y["allotment"]) == Decimal("50000000")
        assert [Decimal(y["allotment_committed"]), Decimal(y["allotment_disbursed"])] == [committed, paid]
        assert Decimal(y["allotment_available"]) == Decimal("50000000") - committed
    models_pool = next(p for p in pools.values() if p["code"] == "MOD")
    assert Decimal(models_pool["pipeline"]) == spread.application.requested_amount


def test_budget_query_count_does_not_grow_with_pools(api, world, erin, django_assert_max_num_queries):
    for i in range(10):
        f.pool(world.sh_pool.programme, code=f"P{i}", cap="1000000")
    with django_assert_max_num_queries(6):
        assert api(erin).get("/api/v1/reports/budget/?format=csv").status_code == 200


def test_report_csv_and_xlsx_carry_the_same_rows(api, spread, erin):
    as_json = api(erin).get("/api/v1/reports/disbursements/?group_by=fiscal_year,status").json()
    assert all(re.fullmatch(r"\d+\.\d{2}", row["paid_amount"]) for row in as_json["rows"])  # money: 2 places
    response = api(erin).get("/api/v1/reports/disbursements/?group_by=fiscal_year,status&format=csv")
    assert response["Content-Type"].startswith("text/csv") and response.streaming
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert lines[0] == as_json["columns"]
    assert [dict(zip(lines[0], line, strict=True)) for line in lines[1:]] == [
        {k: str(v) for k, v in row.items()} for row in as_json["rows"]
    ]
    xlsx = api(erin).get("/api/v1/reports/disbursements/?group_by=fiscal_year,status&format=xlsx")
    sheet = load_workbook(io.BytesIO(b"".join(xlsx.streaming_content)), read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == as_json["columns"]
    assert len(rows) - 1 == len(as_json["rows"])
    assert sum(Decimal(str(r[as_json["columns"].index("paid_amount")])) for r in rows[1:]) == sum(
        Decimal(r["paid_amount"]) for r in as_json["rows"]
    )


def test_unknown_format_is_400(api, world, erin):
    response = api(erin).get("/api/v1/reports/budget/?format=pdf")
    assert response.status_code == 400 and response.json()["fields"] == {"format": ["Unknown format."]}


def test_report_functions_are_plain_functions_for_the_export_job(spread, erin):
    report = reports.build("disbursements", erin, {"group_by": "city"})
    rows = list(report.rows)
    assert report.columns[0] == "city" and {r[0] for r in rows} == {"SH", "HZ"}
    export = reports.build("tranches", erin, {"city": "SH"})
    assert (
        sum(1 for _ in export.rows) == Tranche.objects.filter(award__pool__programme__city__code="SH").count()
    )


def test_every_combination_of_two_dimensions_runs(spread, erin):
    for a, b in product(reports.DIMENSIONS, repeat=2):
        report = reports.build("disbursements", erin, {"group_by": [a, b]})
        cancelled = report.columns.index("cancelled_amount")
        assert sum(r[cancelled] for r in report.rows) >= 0  # cancelled_amount column is numeric
