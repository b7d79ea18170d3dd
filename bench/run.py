"""`make bench`: the service's hot paths measured against PostgreSQL's own speed, in one run (SPEC §10, issue 8).

Creates a dedicated database (BENCH_DATABASE, default grants_bench) on BENCH_PG_URL, migrates it, generates data
at scale (datagen.py), starts gunicorn with the service's own production command (Procfile `web`), then measures
each figure beside its reference and prints one line per ratio, a markdown table, and bench/results/latest.json.

The throughput figures (approvals, voucher claims) are measured in rounds that alternate the pgbench reference with
the API runs, on a server whose every worker has served a request first, whose workers are not recycled mid-run,
and whose per-user rate limit is set out of reach (issue 17 §4).

    make bench                      # everything, about 5 to 6 minutes on 2 cores
    BENCH_QUICK=1 make bench        # a tenth of the data and shorter runs, to try the harness

How the load generator is bounded: see load.py (one process, pinned to one CPU; pgbench pinned to the same CPU).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
sys.path.insert(0, str(ROOT))

import datagen  # noqa: E402
import load  # noqa: E402
import psycopg  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
DB_NAME = os.environ.get("BENCH_DATABASE", "grants_bench")
DB_URL = f"{PG_URL}/{DB_NAME}"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
HOST = "127.0.0.1"

SCALE = (
    datagen.Scale(awards=20_000, institutions=20_000, hot_applications=6_000) if QUICK else datagen.Scale()
)
SMALL_AWARDS = 2_000  # 10,000 tranches: the budget report's reference size
# The throughput figures are measured in ROUNDS rounds, each running the API's claims, the pgbench reference and the
# API's approvals (measure_throughput), so a change in the machine's load weighs on both sides of each ratio alike;
# every ratio is of the medians over the rounds.
ROUNDS = 3
APPROVAL_SECONDS = 4.0 if QUICK else 6.0
CLAIM_SECONDS = 4.0 if QUICK else 6.0
PGBENCH_SECONDS = 3 if QUICK else 5
# Vouchers (bench/datagen.py `vouchers`): claims spread over this many vouchers, one voucher for the contention run,
# and one whose balance fits exactly CLAIM_RACE_FITS claims, which 64 clients send CLAIM_RACE_FACTOR times over.
SPREAD_VOUCHERS = 100
CLAIM_RACE_FITS = 40
CLAIM_RACE_FACTOR = 4
REPORT_REPEATS = 3 if QUICK else 7
PAGE_REPEATS = 11 if QUICK else 21

# The service's endpoints (grants/api/urls.py).
APPROVE = "/api/v1/applications/{id}/approve/"
CLAIMS = "/api/v1/voucher-claims/"
DISBURSEMENTS = "/api/v1/reports/disbursements/"
BUDGET = "/api/v1/reports/budget/"
TRANCHE_EXPORT = "/api/v1/reports/tranches/?format=csv"
TRANCHES = "/api/v1/tranches/"

# The environment of the server: production settings (DEBUG off), this machine's PostgreSQL and Redis.
SERVICE_ENV = {
    "DATABASE_URL": DB_URL,
    "REDIS_URL": REDIS_URL,
    "CACHE_URL": REDIS_URL,
    "DEBUG": "0",
    "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-secret-key-" + "x" * 40,
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "LOG_LEVEL": "WARNING",
    "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    # The claims' invoice and payment-proof files, kept out of the project's media folder.
    "MEDIA_ROOT": str(RESULTS / "media"),
    # DRF's per-user rate (a Redis counter per window) still runs on every request, so its cost stays in every
    # figure, but at a rate no bench client can reach: a 429 would measure the limit, not the service.
    "API_THROTTLE_USER": "100000000/minute",
}
# gunicorn's settings from the environment override its config file: no worker is recycled (max_requests) in the
# middle of a run, which would time a cold worker's first requests.
GUNICORN_ARGS = "--max-requests 0"


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# --- Results ----------------------------------------------------------------------------------------------------


class Results:
    def __init__(self) -> None:
        self.figures: dict[str, Any] = {}
        self.ratios: list[dict[str, Any]] = []
        self.errors: dict[str, str] = {}
        self.started = time.perf_counter()

    def ratio(
        self,
        key: str,
        label: str,
        figure: float,
        reference: float,
        *,
        unit: str,
        target: float | None,
        higher_is_better: bool,
        note: str = "",
    ) -> None:
        """A figure beside its reference; with no target (None) the ratio is reported, neither met nor missed."""
        value = figure / reference if reference else float("inf")
        met = None if target is None else (value >= target if higher_is_better else value <= target)
        entry = {
            "key": key,
            "label": label,
            "figure": round(figure, 4),
            "reference": round(reference, 4),
            "unit": unit,
            "ratio": round(value, 3),
            "target": "none" if target is None else f"{'≥' if higher_is_better else '≤'} {target}",
            "met": met,
            "note": note,
        }
        self.ratios.append(entry)
        print(
            f"RATIO {key}: {value:.3f} ({figure:.4g} / {reference:.4g} {unit}) target {entry['target']} "
            f"{verdict(met).upper()}{'  ' + note if note else ''}",
            flush=True,
        )

    def report(self, key: str, label: str, text: str, *, note: str = "") -> None:
        """A figure with no reference and no target (e.g. latency percentiles): printed and kept as it is."""
        entry = {
            "key": key,
            "label": label,
            "figure": text,
            "reference": None,
            "unit": "",
            "ratio": "",
            "target": "none",
            "met": None,
            "note": note,
        }
        self.ratios.append(entry)
        print(f"RATIO {key}: {text} (reported, no target){'  ' + note if note else ''}", flush=True)

    def check(self, key: str, label: str, value: float, *, target: str, met: bool, note: str = "") -> None:
        entry = {
            "key": key,
            "label": label,
            "figure": value,
            "reference": None,
            "unit": "",
            "ratio": value,
            "target": target,
            "met": met,
            "note": note,
        }
        self.ratios.append(entry)
        print(f"RATIO {key}: {value} target {target} {verdict(met).upper()}  {note}", flush=True)

    def failed(self, key: str, error: BaseException) -> None:
        self.errors[key] = f"{type(error).__name__}: {error}"
        print(f"RATIO {key}: FAILED to measure: {self.errors[key]}", flush=True)

    def markdown(self) -> str:
        lines = [
            "| figure | measured | reference | ratio | target | |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.ratios:
            ref = "" if r["reference"] is None else f"{r['reference']:.4g} {r['unit']}"
            fig = f"{r['figure']}" if r["reference"] is None else f"{r['figure']:.4g} {r['unit']}"
            lines.append(
                f"| {r['label']} | {fig} | {ref} | {r['ratio']} | {r['target']} | {verdict(r['met'])} |"
            )
        return "\n".join(lines)


def verdict(met: bool | None) -> str:
    return "reported" if met is None else "met" if met else "missed"


# --- The database and the server ----------------------------------------------------------------------------------


def create_database() -> None:
    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (DB_NAME,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}"')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def manage(*args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**os.environ, **SERVICE_ENV}, check=True
    )


def setup_django() -> None:
    os.environ.update(SERVICE_ENV)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def make_users() -> dict[str, Any]:
    """The approving officer (programme officer scoped to the hot pools' city) and the reporting auditor (all
    cities), each with an API token made by the service that makes tokens for users."""
    from django.contrib.auth.models import Group, User

    from cities.models import StaffScope
    from grants.api.authentication import create_token
    from grants.roles import Role

    admin = User.objects.create_superuser("bench_admin", "bench@example.org", uuid.uuid4().hex)
    officer = User.objects.create_user("bench_officer", "officer@example.org", uuid.uuid4().hex)
    officer.groups.add(Group.objects.get(name=Role.PROGRAMME_OFFICER))
    auditor = User.objects.create_user("bench_auditor", "auditor@example.org", uuid.uuid4().hex)
    auditor.groups.add(Group.objects.get(name=Role.AUDITOR))
    StaffScope.objects.create(user=auditor, all_cities=True)
    _token, officer_key = create_token(user=officer, actor=admin, name="bench approvals")
    _token, auditor_key = create_token(user=auditor, actor=admin, name="bench reports")
    return {
        "admin": admin,
        "officer": officer,
        "auditor": auditor,
        "officer_key": officer_key,
        "auditor_key": auditor_key,
    }


def scope_officer(officer: Any) -> None:
    """The officer acts in the city of programme 1 (the hot and race pools), which exists once cities do."""
    from cities.models import StaffScope
    from grants.models import Programme

    scope = StaffScope.objects.create(user=officer)
    scope.cities.add(Programme.objects.get(pk=1).city_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    """gunicorn started with the service's own web command (Procfile, docker-compose.yml) and settings."""

    def __init__(self) -> None:
        self.port = free_port()
        self.log_path = RESULTS / "gunicorn.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.command = web_command()

    def start(self) -> None:
        extra = f"{os.environ.get('GUNICORN_CMD_ARGS', '')} {GUNICORN_ARGS}".strip()
        env = {**os.environ, **SERVICE_ENV, "WEB_BIND": f"{HOST}:{self.port}", "GUNICORN_CMD_ARGS": extra}
        logfile = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.command, cwd=ROOT, env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log_path}")
            try:
                probe = load.Client(HOST, self.port, "none").request("GET", "/healthz")
                if probe.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"gunicorn did not answer /healthz within 60 s; see {self.log_path}")

    def workers(self) -> list[int]:
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(p) for p in children.read_text().split()]
        except OSError:
            return []

    def workers_with_database(self) -> set[int]:
        """The workers holding a connection to PostgreSQL: those that have served a request (connections persist,
        CONN_MAX_AGE). Found from each worker's socket inodes (/proc/<pid>/fd) and the kernel's TCP table."""
        db_port = int(str(psycopg.conninfo.conninfo_to_dict(DB_URL).get("port") or 5432))
        owner: dict[int, int] = {}
        for pid in self.workers():
            with contextlib.suppress(OSError):
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with contextlib.suppress(OSError):
                        target = os.readlink(fd)
                        if target.startswith("socket:["):
                            owner[int(target[8:-1])] = pid
        connected = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    cols = line.split()
                    established = cols[3] == "01"
                    if (
                        established
                        and int(cols[2].rsplit(":", 1)[1], 16) == db_port
                        and int(cols[9]) in owner
                    ):
                        connected.add(owner[int(cols[9])])
        return connected

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def web_command() -> list[str]:
    return procfile_command("web", "gunicorn config.wsgi --config python:config.gunicorn_conf")


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class RssWatch:
    """Samples the RSS of every gunicorn worker every 20 ms; growth = peak during - value before, per worker."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.before = {pid: rss_kb(pid) for pid in server.workers()}
        self.peak = dict(self.before)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.before:
                with contextlib.suppress(OSError):
                    self.peak[pid] = max(self.peak[pid], rss_kb(pid))
            self.samples += 1
            time.sleep(0.02)

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def growth_mb(self) -> float:
        return max((self.peak[pid] - self.before[pid] for pid in self.before), default=0) / 1024


# --- Measurements -----------------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def p50_of(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn) for _ in range(repeats))


def paired_p50(a: Callable[[], Any], b: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Medians of `a` and `b` timed alternately (after one warm-up each), so a change in the machine's load during
    the measurement weighs on both sides of the ratio alike."""
    a()
    b()
    times_a, times_b = [], []
    for _ in range(repeats):
        times_a.append(timed(a))
        times_b.append(timed(b))
    return statistics.median(times_a), statistics.median(times_b)


def api_get(client: load.Client, path: str) -> Callable[[], Any]:
    def call() -> Any:
        response = client.request("GET", path)
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {response.body[:300]!r}")
        return response

    return call


def sql_fetch(conn: psycopg.Connection, sql: str) -> Callable[[], Any]:
    def call() -> Any:
        with conn.cursor() as cur:
            cur.execute(sql)
            rows = cur.fetchall()
        conn.commit()
        return rows

    return call


MEASURES_SQL = """
    coalesce(sum(t.amount) FILTER (WHERE t.status <> 'cancelled'), 0), count(*) FILTER (WHERE t.status <> 'cancelled'),
    coalesce(sum(t.amount) FILTER (WHERE t.status = 'planned'), 0), count(*) FILTER (WHERE t.status = 'planned'),
    coalesce(sum(t.amount) FILTER (WHERE t.status = 'payable'), 0), count(*) FILTER (WHERE t.status = 'payable'),
    coalesce(sum(t.amount) FILTER (WHERE t.status = 'withheld'), 0), count(*) FILTER (WHERE t.status = 'withheld'),
    coalesce(sum(t.amount) FILTER (WHERE t.status = 'paid'), 0), count(*) FILTER (WHERE t.status = 'paid'),
    coalesce(sum(t.amount) FILTER (WHERE t.status = 'cancelled'), 0), count(*) FILTER (WHERE t.status = 'cancelled')
"""
DISBURSEMENT_SQL = {
    # Grouped by fiscal year the report also shows each year's budget (the allotments' figures), as here.
    "pool,fiscal_year": f"""
        SELECT g.*, b.allotted, b.carried_in, b.carried_out, b.lapsed, b.committed
        FROM (
            SELECT a.pool_id, p.code, t.fiscal_year, {MEASURES_SQL}
            FROM grants_tranche t JOIN grants_award a ON a.id = t.award_id
            JOIN grants_fundingpool p ON p.id = a.pool_id
            GROUP BY a.pool_id, p.code, t.fiscal_year
        ) AS g
        LEFT JOIN (
            SELECT pool_id, fiscal_year, sum(amount) AS allotted, sum(carried_in) AS carried_in,
                   sum(carried_out) AS carried_out, sum(lapsed) AS lapsed, sum(committed) AS committed
            FROM grants_fiscalyearallotment GROUP BY pool_id, fiscal_year
        ) AS b ON b.pool_id = g.pool_id AND b.fiscal_year = g.fiscal_year
        ORDER BY 1, 2, 3
    """,
    "institution": f"""
        SELECT a.institution_id, i.credit_code, i.name_en, {MEASURES_SQL}
        FROM grants_tranche t JOIN grants_award a ON a.id = t.award_id
        JOIN grants_institution i ON i.id = a.institution_id
        GROUP BY a.institution_id, i.credit_code, i.name_en ORDER BY 1, 2, 3
    """,
}
EXPORT_SQL = """
    SELECT t.id, a.reference, c.code, pr.code, p.code, i.credit_code, i.name_en, t.sequence, t.fiscal_year,
           t.scheduled_date, t.amount, t.status, t.paid_on, t.payment_reference
    FROM grants_tranche t
    JOIN grants_award a ON a.id = t.award_id
    JOIN grants_fundingpool p ON p.id = a.pool_id
    JOIN grants_programme pr ON pr.id = p.programme_id
    JOIN cities_city c ON c.id = pr.city_id
    JOIN grants_institution i ON i.id = a.institution_id
    ORDER BY t.id
"""
LEDGER_GROUP_BY_SQL = """
    SELECT pool_id,
           sum(CASE kind WHEN 'commit' THEN amount WHEN 'decommit' THEN -amount ELSE 0 END),
           sum(CASE kind WHEN 'disburse' THEN amount WHEN 'recover' THEN -amount ELSE 0 END)
    FROM grants_ledgerentry GROUP BY pool_id
"""
PGBENCH_SCRIPT = """\\set amount random(1, 1000)
BEGIN;
UPDATE bench_pool SET committed = committed + :amount WHERE id = 1 AND committed + :amount <= cap;
INSERT INTO bench_ledger (kind, amount, pool_id, fiscal_year, created_at, reason, idempotency_key)
    VALUES ('commit', :amount, 1, 2026, now(), 'pgbench', 'pgbench|' || nextval('bench_key'));
END;
"""


def pgbench_tables(conn: psycopg.Connection) -> None:
    """The minimal cap transaction's tables: copies of the pool and ledger tables with their CHECK constraints,
    indexes and defaults (not their foreign keys), so pgbench's money never mixes with the service's ledger."""
    conn.execute("CREATE TABLE bench_pool (LIKE grants_fundingpool INCLUDING ALL)")
    conn.execute("INSERT INTO bench_pool SELECT * FROM grants_fundingpool WHERE id = %s", (datagen.HOT_POOL,))
    conn.execute("UPDATE bench_pool SET id = 1, cap = 9999999999999999.99, committed = 0, disbursed = 0")
    conn.execute("CREATE TABLE bench_ledger (LIKE grants_ledgerentry INCLUDING ALL)")
    conn.execute("CREATE SEQUENCE bench_key")
    conn.commit()


def run_pgbench(clients: int, cpu: int) -> dict[str, Any]:
    script = RESULTS / "pgbench_cap.sql"
    script.write_text(PGBENCH_SCRIPT)
    host_url = psycopg.conninfo.conninfo_to_dict(DB_URL)
    argv = [
        "taskset", "-c", str(cpu),
        "pgbench", "-n", "-c", str(clients), "-j", "1", "-T", str(PGBENCH_SECONDS), "-f", str(script),
        "-h", str(host_url.get("host", HOST)), "-p", str(host_url.get("port", 5432)),
        "-U", str(host_url.get("user", "postgres")), str(host_url["dbname"]),
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    tps = next(float(line.split("=")[1].split()[0]) for line in out.splitlines() if line.startswith("tps ="))
    return {"clients": clients, "tps": tps, "command": " ".join(argv[3:])}


def cursor_for(position: Any) -> str:
    """A DRF CursorPagination cursor pointing just past `position` (its own encoding: base64 of a query string)."""
    return base64.b64encode(urlencode({"p": str(position)}).encode()).decode()


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    with psycopg.connect(DB_URL) as conn:
        pg = conn.execute("SHOW server_version").fetchone()
    mem_kb = rss_mem_total()
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "postgresql": pg[0] if pg else "",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def rss_mem_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


# --- The run ------------------------------------------------------------------------------------------------------


def attempt(results: Results, key: str, fn: Callable[[], Any]) -> Any:
    """Run one measurement; a failure is recorded (and fails the run) without stopping the others."""
    try:
        return fn()
    except Exception as exc:
        results.failed(key, exc)
        return None


def main() -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(RESULTS / "media", ignore_errors=True)  # the last run's claim documents
    for tool in ("pgbench", "psql", "taskset"):
        if shutil.which(tool) is None:
            print(f"{tool} is needed (Debian: apt-get install postgresql-client util-linux)", file=sys.stderr)
            return 2
    results = Results()
    cpu = load.client_cpu()
    log(
        f"database {DB_NAME}, redis {REDIS_URL}, load generator pinned to CPU {cpu}{' (quick)' if QUICK else ''}"
    )

    create_database()
    results.figures["migrate_seconds"] = round(timed(lambda: manage("migrate", "--no-input", "-v", "0")), 2)
    setup_django()
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    users = make_users()
    conn = psycopg.connect(DB_URL)

    # Data: the small stage first (the budget report at 10k tranches), then the rest.
    generation: dict[str, float] = {}
    generation["base"] = timed(lambda: datagen.base(conn, SCALE, officer_id=users["officer"].pk))
    scope_officer(users["officer"])

    def stage(first: int, last: int) -> None:
        with datagen.plain_indexes_rebuilt(conn):
            datagen.awards(conn, SCALE, first=first, last=last, approver_id=users["officer"].pk)
        datagen.recompute_counters(conn)
        datagen.reset_sequences(conn)
        datagen.analyze(conn)

    generation["awards_10k_tranches"] = timed(lambda: stage(1, SMALL_AWARDS))

    server = Server()
    server.start()
    log(f"gunicorn on port {server.port}, workers {server.workers()}: {' '.join(server.command)}")
    try:
        auditor = load.Client(HOST, server.port, users["auditor_key"])
        # Every worker imports and connects before anything is timed.
        results.figures["warm_up"] = warm_workers(server, users["auditor_key"], cpu)

        budget_small = attempt(
            results, "budget_report_1m_vs_10k", lambda: p50_of(api_get(auditor, BUDGET), REPORT_REPEATS)
        )

        generation["awards_rest"] = timed(lambda: stage(SMALL_AWARDS + 1, SCALE.awards))
        race_cap = datagen.fix_race_cap(conn, SCALE)
        describe_data(results, conn, generation)

        if budget_small is not None:
            attempt(
                results, "budget_report_1m_vs_10k", lambda: measure_budget(results, auditor, budget_small)
            )
        attempt(results, "disbursement_report", lambda: measure_disbursements(results, conn, auditor))
        attempt(results, "tranche_deep_page_vs_first", lambda: measure_pages(results, conn, auditor))
        attempt(
            results, "csv_export_vs_psql_copy", lambda: measure_export(results, server, users["auditor_key"])
        )
        attempt(results, "tracking_all_pools_vs_group_by", lambda: measure_tracking(results, conn))
        claims = attempt(results, "claims_setup", lambda: set_up_claims(users))
        attempt(results, "approvals", lambda: measure_throughput(results, conn, server, users, cpu, claims))
        if claims is not None:
            attempt(
                results, "claims_contention", lambda: measure_claim_race(results, conn, server, cpu, claims)
            )
        attempt(
            results,
            "over_commit",
            lambda: measure_race(results, conn, server, users["officer_key"], cpu, race_cap),
        )
    finally:
        server.stop()
        conn.close()

    total = time.perf_counter() - results.started
    results.figures["total_seconds"] = round(total, 1)
    output = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "command": "make bench" + (" (BENCH_QUICK=1)" if QUICK else ""),
        "machine": machine(),
        "load_generator": f"one process of client threads pinned to CPU {cpu} (sched_setaffinity); "
        f"pgbench pinned to the same CPU (taskset -c {cpu}, -j 1); gunicorn and PostgreSQL unpinned",
        "server": " ".join(server.command[1:]),
        "ratios": results.ratios,
        "errors": results.errors,
        "figures": results.figures,
    }
    (RESULTS / "latest.json").write_text(json.dumps(output, indent=2, default=str))
    print()
    print(results.markdown())
    print()
    missed = [r["key"] for r in results.ratios if r["met"] is False]
    met = [r["key"] for r in results.ratios if r["met"] is True]
    log(
        f"done in {total:.0f} s; bench/results/latest.json written; "
        f"{len(met)} targets met, {len(missed)} missed, {len(results.errors)} not measured"
    )
    return 1 if results.errors else 0


def describe_data(results: Results, conn: psycopg.Connection, generation: dict[str, float]) -> None:
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM grants_fundingpool), (SELECT count(*) FROM grants_award), "
        "(SELECT count(*) FROM grants_tranche), (SELECT count(*) FROM grants_ledgerentry)"
    ).fetchone()
    conn.commit()
    assert counts is not None
    results.figures["data"] = {
        "pools": counts[0],
        "awards": counts[1],
        "tranches": counts[2],
        "ledger_entries": counts[3],
        "generation_seconds": {k: round(v, 2) for k, v in generation.items()},
        "generation_total_seconds": round(sum(generation.values()), 2),
    }
    log(
        f"data: {counts[0]:,} pools, {counts[1]:,} awards, {counts[2]:,} tranches, {counts[3]:,} ledger entries "
        f"in {sum(generation.values()):.1f} s"
    )
    consistency = datagen.check_consistency(conn)
    if any(consistency.values()):
        raise RuntimeError(f"the generated data breaks §4: {consistency}")


def measure_budget(results: Results, client: load.Client, small_p50: float) -> None:
    """The budget report is served from maintained counters: its cost should not follow the number of tranches."""
    large_p50 = p50_of(api_get(client, BUDGET), REPORT_REPEATS)
    tranches = results.figures["data"]["tranches"]
    results.ratio(
        "budget_report_1m_vs_10k",
        f"budget report p50 at {tranches:,} tranches vs at {SMALL_AWARDS * 5:,}",
        large_p50 * 1000,
        small_p50 * 1000,
        unit="ms",
        target=1.5,
        higher_is_better=False,
    )


def measure_disbursements(results: Results, conn: psycopg.Connection, client: load.Client) -> None:
    """The disbursement report through the API vs the raw SQL of the same aggregate."""
    for group_by, sql in DISBURSEMENT_SQL.items():
        api, raw = paired_p50(
            api_get(client, f"{DISBURSEMENTS}?{urlencode({'group_by': group_by})}"),
            sql_fetch(conn, sql),
            REPORT_REPEATS,
        )
        results.ratio(
            f"disbursement_report_{group_by.replace(',', '_x_')}",
            f"disbursement report p50, group by {group_by.replace(',', ' x ')} (API vs raw SQL)",
            api * 1000,
            raw * 1000,
            unit="ms",
            target=1.25,
            higher_is_better=False,
        )


@dataclass
class Claims:
    """The claim runs' fixed parts (bench/datagen.py `vouchers`): who claims, under which offering, against which
    vouchers, and a claim's figures. Each claim gets a fresh invoice and contract number (`run`, `n`)."""

    setup: datagen.VoucherSetup
    token: str
    runs: itertools.count = field(default_factory=lambda: itertools.count(1))

    def request(
        self, run: int, n: int, voucher: datagen.BenchVoucher
    ) -> tuple[str, str, Any, dict[str, str]]:
        s = self.setup
        fields = {
            "voucher_code": voucher.code,
            "offering": str(s.offering_id),
            "contract_number": f"BENCH-{run:03d}-{n:07d}",
            "contract_value": str(s.invoice_amount + s.invoice_tax),
            "invoice_code": "",
            # A fully digital invoice's 20 digits: year, run and a serial, never repeated in one database.
            "invoice_number": f"{s.invoice_date:%y}{run:06d}{n:012d}",
            "invoice_date": s.invoice_date.isoformat(),
            "invoice_amount": str(s.invoice_amount),
            "invoice_tax": str(s.invoice_tax),
            "amount_paid": str(s.invoice_amount + s.invoice_tax),
            "amount": str(s.claim_amount),
            "usage_statement": "A800 GPU-hours for model training (benchmark)",
            "usage_quantity": "100",
        }
        files = {
            "invoice_file": ("invoice.pdf", "application/pdf", datagen.PDF),
            "payment_proof": ("payment.pdf", "application/pdf", datagen.PDF),
        }
        body, content_type = load.multipart(fields, files)
        headers = {"Content-Type": content_type, "Idempotency-Key": f"bench-claim-{run}-{n}"}
        return "POST", CLAIMS, body, headers

    def drive(
        self, server: Server, vouchers: list[datagen.BenchVoucher], *, clients: int, cpu: int, duration: float,
        count: int = 100_000, label: str,
    ) -> load.LoadResult:  # fmt: skip
        """`clients` clients submit claims for up to `duration` s (or `count` claims), the n-th against
        vouchers[n % len(vouchers)]: spread, consecutive claims never meet on one voucher."""
        run = next(self.runs)
        result = load.drive(
            host=HOST,
            port=server.port,
            token=self.token,
            clients=clients,
            jobs=list(range(count)),
            request_of=lambda n: self.request(run, n, vouchers[n % len(vouchers)]),
            duration=duration,
            cpu=cpu,
        )
        log(
            f"claims ({label}), {clients} clients: {result.count(201)} accepted in {result.seconds:.1f} s "
            f"= {result.rate(201):.1f}/s, p50 {result.percentile(0.5) * 1000:.0f} ms, statuses "
            f"{dict(result.statuses)}{', codes ' + str(dict(result.codes)) if result.codes else ''}"
        )
        return result


def set_up_claims(users: dict[str, Any]) -> Claims:
    """A voucher scheme on a compute pool of the officer's city, one accredited provider, vouchers issued in bulk
    through the voucher service (bench/datagen.py), and an API token for the provider's user, who claims."""
    from grants.api.authentication import create_token

    started = time.perf_counter()
    setup = datagen.vouchers(
        SCALE,
        officer=users["officer"],
        spread=SPREAD_VOUCHERS,
        race_fits=CLAIM_RACE_FITS,
        contention_claims=20_000,
    )
    _token, key = create_token(user=setup.provider_user, actor=users["admin"], name="bench claims")
    log(
        f"vouchers: scheme on pool {setup.pool_id}, {len(setup.spread) + 2} vouchers issued in bulk, provider "
        f"{setup.provider_credit_code}, in {time.perf_counter() - started:.1f} s"
    )
    return Claims(setup=setup, token=key)


class Ids:
    """Ids handed out in order across runs: each run is offered the rest, and moves on by what it sent."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids
        self.position = 0

    def rest(self) -> list[int]:
        return self.ids[self.position :]

    def used(self, result: load.LoadResult) -> load.LoadResult:
        self.position += result.sent
        return result


def measure_throughput(
    results: Results, conn: psycopg.Connection, server: Server, users: dict[str, Any], cpu: int,
    claims: Claims | None,
) -> None:  # fmt: skip
    """ROUNDS rounds, each: through the API claims at 8 clients on one voucher and at 8 clients spread over many
    vouchers of one scheme, pgbench's minimal cap transaction at 8 clients, then approvals at 8 and at 64 clients on
    one pool. Every ratio is of the medians over the rounds."""
    token = users["officer_key"]
    pgbench_tables(conn)
    # The data generation and the measurements before may have outlasted the workers' connections (CONN_MAX_AGE).
    results.figures["warm_up_before_rounds"] = warm_workers(server, users["auditor_key"], cpu)
    hot = Ids(list(range(SCALE.awards + 1, SCALE.awards + SCALE.hot_applications + 1)))
    # Each worker runs the measured paths before anything is timed (the import and connection are done already).
    hot.used(approve(server, token, hot.rest(), clients=8, cpu=cpu, duration=2.0, label="warm-up"))
    if claims is not None:
        claims.drive(server, claims.setup.spread, clients=8, cpu=cpu, duration=2.0, label="warm-up")
    workers_before = sorted(server.workers())
    rounds: list[dict[str, Any]] = []
    for number in range(1, ROUNDS + 1):
        # pgbench sits between the claims and the approvals: each figure next to what it is divided by.
        log(f"round {number} of {ROUNDS}")
        r: dict[str, Any] = {}
        if claims is not None:
            r["claims_8_one"] = claims.drive(
                server,
                [claims.setup.contention],
                clients=8,
                cpu=cpu,
                duration=CLAIM_SECONDS,
                label="one voucher",
            )
            r["claims_8"] = claims.drive(
                server, claims.setup.spread, clients=8, cpu=cpu, duration=CLAIM_SECONDS, label="spread"
            )
        r["pgbench_8"] = run_pgbench(8, cpu)
        log(f"pgbench, 8 clients: {r['pgbench_8']['tps']:.0f} tps")
        r["api_8"] = hot.used(approve(server, token, hot.rest(), clients=8, cpu=cpu))
        r["api_64"] = hot.used(approve(server, token, hot.rest(), clients=64, cpu=cpu))
        rounds.append(r)
    workers_after = sorted(server.workers())
    recycled = len(set(workers_before) - set(workers_after))

    def median_rate(key: str) -> float:
        return statistics.median(ok_rate(r[key]) for r in rounds)

    pg8 = statistics.median(r["pgbench_8"]["tps"] for r in rounds)
    rate8, rate64 = median_rate("api_8"), median_rate("api_64")
    latencies64 = sorted(x for r in rounds for x in r["api_64"].latencies)
    results.figures["approvals"] = {
        "rounds": [
            {k: (v.summary() if isinstance(v, load.LoadResult) else v) for k, v in r.items()} for r in rounds
        ],
        "pgbench_8_tps_median": pg8,
        "api_8_per_s_median": round(rate8, 2),
        "api_64_per_s_median": round(rate64, 2),
        "latency_64_ms": {"p50": ms(percentile(latencies64, 0.5)), "p99": ms(percentile(latencies64, 0.99))},
        "workers": {"before": workers_before, "after": workers_after, "recycled": recycled},
    }
    pairs = ", ".join(f"{ok_rate(r['api_8']):.1f}/{r['pgbench_8']['tps']:.0f}" for r in rounds)
    results.ratio(
        "approvals_8_vs_pgbench_8",
        "approvals/s through the API on one pool, 8 clients vs pgbench's minimal cap transaction, 8 clients "
        f"(medians of {ROUNDS} alternating pairs)",
        rate8,
        pg8,
        unit="/s",
        target=0.25,
        higher_is_better=True,
        note=f"pairs (API/pgbench): {pairs}; workers recycled during the rounds: {recycled}",
    )
    results.ratio(
        "approvals_64_vs_8",
        f"approvals/s through the API on one pool, 64 clients vs 8 clients (medians of {ROUNDS})",
        rate64,
        rate8,
        unit="/s",
        target=0.70,
        higher_is_better=True,
    )
    results.report(
        "approval_latency_64",
        f"approval latency at 64 clients, p50 / p99 ({len(latencies64)} approvals in {ROUNDS} runs)",
        f"{ms(percentile(latencies64, 0.5)):.0f} / {ms(percentile(latencies64, 0.99)):.0f} ms",
    )
    if claims is None:
        return
    claims8, one8 = median_rate("claims_8"), median_rate("claims_8_one")
    results.figures["claims"] = {
        "claims_8_per_s_median": round(claims8, 2),
        "claims_8_one_voucher_per_s_median": round(one8, 2),
        "vouchers_spread": len(claims.setup.spread),
    }
    results.ratio(
        "claims_8_vs_pgbench_8",
        f"voucher claims/s through the API (multipart, 2 files), 8 clients over {len(claims.setup.spread)} vouchers "
        f"of one scheme vs pgbench's minimal cap transaction, 8 clients (medians of {ROUNDS})",
        claims8,
        pg8,
        unit="/s",
        target=None,
        higher_is_better=True,
    )
    results.ratio(
        "claims_one_voucher_vs_spread",
        f"voucher claims/s, 8 clients all on one voucher vs spread over {len(claims.setup.spread)} (medians)",
        one8,
        claims8,
        unit="/s",
        target=None,
        higher_is_better=True,
    )


def measure_claim_race(
    results: Results, conn: psycopg.Connection, server: Server, cpu: int, claims: Claims
) -> None:
    """64 clients send CLAIM_RACE_FACTOR times as many claims as one voucher's balance fits: exactly the ones that
    fit are accepted. Then a few claims are paid through the service, and every voucher of the scheme is checked:
    balance never below zero, `held` = the claims awaiting verification, `paid` = the paid claims = the ledger's
    DISBURSE entries, face value less lapsed = its COMMIT less DECOMMIT entries, and every pool counter = ledger."""
    setup = claims.setup
    race = claims.drive(
        server, [setup.race], clients=64, cpu=cpu, duration=120, count=CLAIM_RACE_FITS * CLAIM_RACE_FACTOR,
        label="one voucher, balance for a quarter",
    )  # fmt: skip
    paid = datagen.pay_claims(setup, count=10)
    drift = datagen.voucher_drift(conn, setup.scheme_id)
    consistency = datagen.check_consistency(conn)
    accepted = race.count(201)
    problems = sum(drift.values()) + sum(consistency.values())
    results.figures["claim_race"] = {
        "fits": CLAIM_RACE_FITS,
        "sent": race.sent,
        "accepted": accepted,
        **race.summary(),
        "paid_through_the_service": paid,
        "voucher_drift": drift,
        "consistency": consistency,
    }
    results.check(
        "claims_over_spent",
        "over-spent vouchers after the claim runs (balance < 0 + counters ≠ claims and ledger)",
        float(problems),
        target="= 0",
        met=problems == 0 and accepted == CLAIM_RACE_FITS,
        note=f"race: {accepted} of {race.sent} claims accepted at 64 clients on one voucher whose balance fits "
        f"{CLAIM_RACE_FITS}; refusals {dict(race.codes)}; {paid} claims then paid by the service; drift {drift}",
    )


def ok_rate(result: load.LoadResult) -> float:
    return result.rate(201) + result.rate(200)


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def measure_race(
    results: Results, conn: psycopg.Connection, server: Server, token: str, cpu: int, race_cap: Any
) -> None:
    """64 clients approve several times more applications than the race pool's cap fits: exactly the ones that
    fit are approved, the pool ends exactly full, and every counter still equals its ledger sums."""
    first = SCALE.awards + SCALE.hot_applications + 1
    race_ids = list(range(first, first + SCALE.race_applications))
    race = approve(server, token, race_ids, clients=64, cpu=cpu, duration=120)
    row = conn.execute(
        "SELECT cap, committed FROM grants_fundingpool WHERE id = %s", (datagen.RACE_POOL,)
    ).fetchone()
    conn.commit()
    assert row is not None
    cap, committed = row
    over = max(committed - cap, 0)
    consistency = datagen.check_consistency(conn)
    approved = race.count(201) + race.count(200)
    problems = sum(consistency.values())
    results.figures["race"] = {
        "cap": str(race_cap),
        "committed": str(committed),
        "fits": SCALE.race_fits,
        "approved": approved,
        **race.summary(),
        "consistency": consistency,
    }
    results.check(
        "over_commit",
        "over-commit after the approval runs (Σ over cap + counters ≠ ledger sums)",
        float(over) + problems,
        target="= 0",
        met=over == 0 and problems == 0 and approved == SCALE.race_fits,
        note=f"race pool: {approved} of {len(race_ids)} approved at 64 clients, {SCALE.race_fits} fit; "
        f"cap - committed = {cap - committed}; rows drifting from the ledger: {problems}",
    )


def approve(
    server: Server,
    token: str,
    ids: list[int],
    *,
    clients: int,
    cpu: int,
    duration: float | None = None,
    label: str = "",
) -> load.LoadResult:
    def request_of(application_id: int) -> tuple[str, str, Any, dict[str, str]]:
        return "POST", APPROVE.format(id=application_id), {}, {"Idempotency-Key": f"bench-{application_id}"}

    result = load.drive(
        host=HOST,
        port=server.port,
        token=token,
        clients=clients,
        jobs=ids,
        request_of=request_of,
        duration=APPROVAL_SECONDS if duration is None else duration,
        cpu=cpu,
    )
    log(
        f"approvals{' (' + label + ')' if label else ''}, {clients} clients: {result.count(201) + result.count(200)} "
        f"in {result.seconds:.1f} s = {ok_rate(result):.1f}/s, p50 {result.percentile(0.5) * 1000:.0f} ms, "
        f"p99 {result.percentile(0.99) * 1000:.0f} ms, statuses {dict(result.statuses)}"
    )
    return result


def warm_workers(server: Server, token: str, cpu: int) -> dict[str, Any]:
    """Concurrent reads (three clients per worker) until every gunicorn worker has served a request: each then
    holds its imports and its PostgreSQL connection, so no figure times a worker's first request."""
    workers = set(server.workers())
    warmed: set[int] = set()
    bursts = 0
    while bursts < 20 and not workers <= warmed:
        bursts += 1
        load.drive(
            host=HOST,
            port=server.port,
            token=token,
            clients=3 * len(workers),
            jobs=[TRANCHES] * (6 * len(workers)),
            request_of=lambda path: ("GET", path, None, {}),
            duration=30,
            cpu=cpu,
        )
        warmed = server.workers_with_database()
    log(f"warm-up: {len(warmed & workers)} of {len(workers)} workers served a request ({bursts} bursts)")
    return {"workers": sorted(workers), "warmed": sorted(warmed & workers), "bursts": bursts}


def measure_pages(results: Results, conn: psycopg.Connection, client: load.Client) -> None:
    """The first page of the tranche list vs a page 90% of the way through 1M tranches, by cursor."""
    first = api_get(client, TRANCHES)
    body = first().json()
    results.figures["tranche_page_size"] = len(body.get("results", []))
    row = conn.execute(
        "SELECT id FROM grants_tranche ORDER BY id OFFSET (SELECT count(*) * 9 / 10 FROM grants_tranche) LIMIT 1"
    ).fetchone()
    conn.commit()
    assert row is not None
    deep_path = f"{TRANCHES}?{urlencode({'cursor': cursor_for(row[0])})}"
    deep = api_get(client, deep_path)
    deep_body = deep().json()
    if not deep_body.get("results"):
        raise RuntimeError(f"the deep page is empty: {deep_path}")
    deep_p50, first_p50 = paired_p50(deep, first, PAGE_REPEATS)
    results.ratio(
        "tranche_deep_page_vs_first",
        "tranche list, a cursor page 90% deep vs the first page (p50)",
        deep_p50 * 1000,
        first_p50 * 1000,
        unit="ms",
        target=1.2,
        higher_is_better=False,
    )


def measure_export(results: Results, server: Server, token: str) -> None:
    """The streamed CSV export of every tranche vs psql's \\copy of the same query, and the worker's RSS growth."""
    client = load.Client(HOST, server.port, token)
    with RssWatch(server) as watch:
        status, size, seconds = client.stream(TRANCHE_EXPORT)
    if status != 200:
        raise RuntimeError(f"export: HTTP {status}")
    out = RESULTS / "psql_copy.csv"
    info = psycopg.conninfo.conninfo_to_dict(DB_URL)
    sql = " ".join(EXPORT_SQL.split())
    argv = [
        "psql", "-X", "-q", "-h", str(info.get("host", HOST)), "-p", str(info.get("port", 5432)),
        "-U", str(info.get("user", "postgres")), "-d", str(info["dbname"]),
        "-c", f"\\copy ({sql}) TO '{out}' WITH (FORMAT csv, HEADER)",
    ]  # fmt: skip
    psql_seconds = timed(lambda: subprocess.run(argv, check=True))
    psql_size = out.stat().st_size
    out.unlink()
    growth = watch.growth_mb()
    results.figures["export"] = {
        "api_bytes": size,
        "api_seconds": round(seconds, 2),
        "psql_bytes": psql_size,
        "psql_seconds": round(psql_seconds, 2),
        "worker_rss_growth_mb": round(growth, 1),
        "worker_rss_kb_before": watch.before,
        "worker_rss_kb_peak": watch.peak,
        "rss_samples": watch.samples,
    }
    results.ratio(
        "csv_export_vs_psql_copy",
        "streamed CSV export of every tranche vs psql \\copy of the same query (wall time)",
        seconds,
        psql_seconds,
        unit="s",
        target=2.0,
        higher_is_better=False,
    )
    results.check(
        "csv_export_rss_growth_mb",
        "gunicorn worker RSS growth during the export (MB)",
        round(growth, 1),
        target="≤ 50",
        met=growth <= 50,
    )


def procfile_command(name: str, default: str) -> list[str]:
    """A line of the Procfile (which docker-compose.yml runs too), with this venv's executables."""
    procfile = ROOT / "Procfile"
    lines = procfile.read_text().splitlines() if procfile.exists() else []
    line = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(f"{name}:")), default)
    argv = line.split()
    local = Path(sys.executable).with_name(argv[0])
    if local.exists():
        argv[0] = str(local)
    return argv


def measure_tracking(results: Results, conn: psycopg.Connection) -> None:
    """One scheduled tracking run over every pool vs one GROUP BY over the ledger.

    The run is the real one: the beat task `grants.sweep_tracking` queues one `grants.track_pool` per pool due, and
    a Celery worker started with the service's own command (Procfile `worker`) runs them. Timed from the sweep to
    the moment every pool has been tracked.
    """
    from grants import tasks

    pools = conn.execute("SELECT count(*) FROM grants_fundingpool").fetchone()
    conn.commit()
    assert pools is not None
    command = procfile_command("worker", "celery --app config worker --loglevel INFO")
    log_path = RESULTS / "worker.log"
    with log_path.open("wb") as logfile:
        worker = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **SERVICE_ENV},
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.time() + 60
        while b"ready" not in log_path.read_bytes():
            if worker.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the Celery worker did not start; see {log_path}")
            time.sleep(0.2)
        started = datetime.now(UTC)
        begin = time.perf_counter()
        queued = tasks.sweep_tracking.run()
        tracked = 0
        while time.perf_counter() - begin < 300:
            row = conn.execute(
                "SELECT count(*) FROM grants_fundingpool WHERE tracked_at >= %s", (started,)
            ).fetchone()
            conn.commit()
            tracked = row[0] if row else 0
            if tracked >= pools[0]:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - begin
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    if tracked < pools[0]:
        raise RuntimeError(f"only {tracked} of {pools[0]} pools were tracked within 300 s")
    raw = p50_of(sql_fetch(conn, LEDGER_GROUP_BY_SQL), 3)
    results.figures["tracking"] = {
        "seconds": round(seconds, 2),
        "queued": queued,
        "pools_tracked": tracked,
        "group_by_seconds": round(raw, 3),
        "worker": " ".join(command[1:]),
    }
    results.ratio(
        "tracking_all_pools_vs_group_by",
        f"tracking all {tracked:,} pools in one scheduled run (beat sweep + worker) vs one GROUP BY over the ledger",
        seconds,
        raw,
        unit="s",
        target=3.0,
        higher_is_better=False,
    )


if __name__ == "__main__":
    sys.exit(main())
