"""The Celery application of the fault tests: config.celery's, with slow paths patched in, so a test can kill a
worker, or deliver a job twice, while a job is in the middle of its work. Production code has no such hook.

Run as `celery -A tests.jobs.slow_worker worker` (tests.jobs.test_real_worker.Worker with app=SLOW_APP). The worker
reads the delays from its environment:
- SLOW_TRACKING_SECONDS: tracking sleeps this long after claiming its pools (their rows locked), before it writes;
- SLOW_EXPORT_ROW_SECONDS: an export sleeps this long after each row.
"""

import os
import time
from collections.abc import Iterator
from typing import Any

import django

from config.celery import app

django.setup()

from grants.api import reports  # noqa: E402 (the models need the apps loaded)
from grants.services import tracking  # noqa: E402

__all__ = ["app"]

TRACKING_SECONDS = float(os.environ.get("SLOW_TRACKING_SECONDS") or 0)
EXPORT_ROW_SECONDS = float(os.environ.get("SLOW_EXPORT_ROW_SECONDS") or 0)

if TRACKING_SECONDS:
    measure = tracking.measure

    def slow_measure(pools: list[Any]) -> list[tracking.Tracked]:
        time.sleep(TRACKING_SECONDS)
        return measure(pools)

    tracking.measure = slow_measure

if EXPORT_ROW_SECONDS:
    build = reports.build

    def slow_build(name: str, user: Any, params: Any) -> reports.Report:
        report = build(name, user, params)
        rows = report.rows

        def slow_rows() -> Iterator[tuple[Any, ...]]:
            for row in rows:
                yield row
                time.sleep(EXPORT_ROW_SECONDS)

        report.rows = slow_rows()
        return report

    reports.build = slow_build
