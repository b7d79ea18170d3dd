"""Prometheus metrics (docs/operations.md, "Metrics"): what each process counts, in one place.

Two kinds of figures. Events a process sees (a request and its latency, a refusal, a replayed Idempotency-Key, an
audited transition, a finished job) are prometheus-client counters and histograms defined here. Figures the
database or the broker already hold exactly (each pool's cap, committed and disbursed; open budget alerts; queue
depth) are read when /metrics is scraped (grants/metrics/web.py), so they are right whichever process moved the
money and however often processes restart.

gunicorn runs several worker processes and Celery forks its own, so with PROMETHEUS_MULTIPROC_DIR set every
process writes its counters to memory-mapped files in that folder and a scrape adds them up (prometheus-client's
multiprocess mode). Without it (tests, `make run`) the counters live in the one process that serves /metrics.

This module imports nothing from Django: gunicorn's configuration calls `prepare_multiprocess_dir` before the
application is loaded. Others count a refusal with `count_refusal(kind, code=...)`.
"""

import logging
import os
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# The counters of this process; a scrape either reads them directly or, in multiprocess mode, from every
# process's files (grants/metrics/web.py).
PROCESS = CollectorRegistry(auto_describe=True)

# Up to the request timeout (WEB_TIMEOUT, 60 s): a streamed export starts within it.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUEST_SECONDS = Histogram(
    "grants_http_request_duration_seconds",
    "Time from a request reaching Django to its response starting, per view.",
    ["view", "method"],
    buckets=LATENCY_BUCKETS,
    registry=PROCESS,
)
RESPONSES = Counter(
    "grants_http_responses",
    "Responses per view and status code (errors: status >= 500; refusals: 4xx).",
    ["view", "method", "status"],
    registry=PROCESS,
)
REFUSALS = Counter(
    "grants_refusals",
    "Requests refused: kind api (code and, for budget_exceeded, the level of the budget that refused), "
    "login (failed log-ins), and what other parts of the service count with count_refusal().",
    ["kind", "code", "level"],
    registry=PROCESS,
)
REPLAYS = Counter(
    "grants_idempotent_replays",
    "POSTs answered with the stored response of an earlier request with the same Idempotency-Key.",
    ["view"],
    registry=PROCESS,
)
TRANSITIONS = Counter(
    "grants_transitions",
    "Audited transitions after their transaction committed, per action "
    "(application.approve: approvals; tranche.pay: payments).",
    ["action"],
    registry=PROCESS,
)
TASKS = Counter(
    "grants_celery_tasks",
    "Background jobs finished, per task and outcome (success, failure, retry).",
    ["task", "outcome"],
    registry=PROCESS,
)


def count_refusal(kind: str, *, code: str = "", level: str = "") -> None:
    """Count one refused request. `kind` says where (e.g. "login", "api_throttle"), `code` why (a stable error
    code such as "locked_out"); `level` is the budget level of a budget refusal. Never raises: metrics must not
    fail the request they describe."""
    try:
        REFUSALS.labels(kind=kind, code=code, level=level).inc()
    except Exception:
        logger.warning("could not count a refusal", exc_info=True)


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV, "")
    return Path(value) if value else None


# prometheus-client names its files <type>_<pid>.db (gauges: gauge_<mode>_<pid>.db).
_PID_IN_NAME = re.compile(r"_(\d+)\.db$")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_multiprocess_dir() -> None:
    """Create the folder and delete the files of processes that are no longer running.

    Called when gunicorn starts and when a Celery worker is ready. Files of running processes stay: on one host
    the web and worker processes may share the folder, and one starting must not wipe the other's counters. The
    files of processes that ended while the service ran also stay until the next start, so no counter goes
    backwards while the service runs; deleting them at start bounds the folder's growth (gunicorn recycles its
    workers every max_requests). A new process that reuses an old PID continues that file's counts, which keeps
    every sum monotonic.
    """
    folder = multiprocess_dir()
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("*.db"):
        match = _PID_IN_NAME.search(path.name)
        if match and not _running(int(match.group(1))):
            path.unlink(missing_ok=True)


# Every process that counts needs the folder before its first count; gunicorn and the worker also clear it.
if (_folder := multiprocess_dir()) is not None:
    _folder.mkdir(parents=True, exist_ok=True)
