"""The tranche export streams: memory stays flat while 100,000 rows go out as CSV.

Rows are bulk-created straight into the table (the export reads rows, it does not care how they came), which
keeps the test at a few seconds.
"""

import csv
import io
import tracemalloc
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from grants.api import formats, reports
from grants.models import Tranche
from tests import factories as f

ROWS = 100_000
PER_AWARD = 25_000  # a tranche's sequence is a small integer, unique per award


@pytest.fixture
def many_tranches(sh_pool, carols_startup, carol, alice, rita):
    awards = [
        f.award(sh_pool, carols_startup, carol, alice, rita, requested="1000")
        for _ in range(ROWS // PER_AWARD)
    ]
    start = date(2025, 1, 1)
    for award in awards:
        Tranche.objects.bulk_create(
            (
                Tranche(
                    award=award,
                    sequence=100 + i,
                    fiscal_year=2025 + i % 5,
                    scheduled_date=start + timedelta(days=i % 1500),
                    amount=Decimal("1234.56"),
                )
                for i in range(PER_AWARD)
            ),
            batch_size=5000,
        )
    return Tranche.objects.count()


def test_csv_export_of_100k_rows_keeps_memory_flat(api, many_tranches, erin):
    assert many_tranches >= ROWS
    response = api(erin).get("/api/v1/reports/tranches/?format=csv")
    assert response.status_code == 200 and response.streaming
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        sent = lines = 0
        for chunk in response.streaming_content:
            sent += len(chunk)
            lines += chunk.count(b"\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    growth = peak - baseline
    print(
        f"\nexported {lines - 1} rows, {sent / 1e6:.1f} MB of CSV, peak memory growth {growth / 1e6:.2f} MB"
    )
    assert lines - 1 == many_tranches
    # The whole CSV is about 10 MB; holding it (or the rows as objects) would need several times that.
    assert sent > 8_000_000
    assert growth < 6_000_000


@pytest.mark.postgres
def test_copy_csv_is_the_same_csv_as_the_python_writer(world, erin):
    """On PostgreSQL the export streams COPY's own CSV; it must read back exactly like the portable path's."""
    assert connection.vendor == "postgresql"
    python_csv = "".join(formats.csv_lines(reports.tranche_export(erin, {})))
    qs = reports.tranche_export_queryset(erin, {})
    copy_csv = b"".join(formats.copy_lines(qs, [c for c, _p in reports.TRANCHE_EXPORT])).decode()
    assert list(csv.reader(io.StringIO(copy_csv))) == list(csv.reader(io.StringIO(python_csv)))
