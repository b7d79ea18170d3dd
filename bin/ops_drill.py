"""Operations drill: the metrics scraped around a real approval, then a backup restored and proved (`make ops-drill`).

1. Against DATABASE_URL (PostgreSQL) it creates its own database (DRILL_DATABASE, default grants_drill), runs the
   Procfile's `release` command, loads the demo data, and starts gunicorn with the Procfile's `web` command and
   production settings (DEBUG off, HTTPS only behind X-Forwarded-Proto, METRICS_TOKEN, PROMETHEUS_MULTIPROC_DIR,
   two worker processes) on DRILL_PORT (default: a free port).
2. /metrics refuses a scrape without the token; with it, the pool gauges are read; a programme officer approves
   one submitted application over HTTP (reviewer assigned, review submitted, as docs/api.md shows); a second scrape
   shows the pool's committed moved by exactly the award, every other pool unchanged, and one more approval.
3. gunicorn stopped, `pg_dump --format=custom`, a new database (DRILL_DATABASE_restore), `pg_restore` into it, and
   the restored copy checked: every pool's, allotment's and programme's counters equal to the ledger's sums; the
   append-only triggers present and refusing an UPDATE; the ledger's last entry and the row counts of the ledger,
   the audit log and the awards equal to the original's.

One line per check; exit status 1 on any failure. Both databases, the dump and the scratch folder are dropped
at the end (kept with --keep). With REDIS_URL set the broker is that server's database DRILL_REDIS_DB (default 12,
emptied first and last); without it, the file broker in the scratch folder.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from contextlib import suppress
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# The end-to-end run beside this file starts the same processes the same way (this folder is on sys.path when a
# script in it runs).
from e2e import LOGS, Authenticators, Processes, free_port, procfile, with_path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
READY_TIMEOUT = 90
STOP_TIMEOUT = 30
CENT = Decimal("0.01")
TABLES_COMPARED = ("grants_ledgerentry", "grants_auditevent", "grants_award")


class Failed(Exception):
    """A check of the drill did not hold."""


def report(ok: bool, what: str) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        raise Failed(what)


# --- PostgreSQL -------------------------------------------------------------------------------------------------


def admin_sql(server: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(with_path(server, "/postgres"), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # our own names, quoted


def fresh_database(server: str, name: str) -> str:
    admin_sql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return with_path(server, f"/{name}", "connect_timeout=5")


def libpq_args(url: str) -> list[str]:
    """pg_dump/pg_restore connection options from a URL; the password goes through PGPASSWORD."""
    parts = urlsplit(url)
    return [
        f"--host={parts.hostname or '127.0.0.1'}",
        f"--port={parts.port or 5432}",
        f"--username={parts.username or 'postgres'}",
        f"--dbname={parts.path.lstrip('/')}",
    ]


def pg_env(url: str) -> dict[str, str]:
    password = urlsplit(url).password
    return {**os.environ, **({"PGPASSWORD": password} if password else {})}


SIGNED_LEDGER = """
    SELECT pool_id, fiscal_year,
           SUM(CASE kind WHEN 'commit' THEN amount WHEN 'decommit' THEN -amount ELSE 0 END) AS committed,
           SUM(CASE kind WHEN 'disburse' THEN amount WHEN 'recover' THEN -amount ELSE 0 END) AS disbursed
    FROM grants_ledgerentry GROUP BY pool_id, fiscal_year
"""


def counters_against_ledger(url: str) -> dict[str, list[Any]]:
    """The rows whose counters differ from the ledger's sums, per level (empty lists when consistent)."""
    import psycopg

    with psycopg.connect(url) as conn:
        pools = conn.execute(
            f"""
            WITH l AS ({SIGNED_LEDGER}),
                 per_pool AS (SELECT pool_id, SUM(committed) c, SUM(disbursed) d FROM l GROUP BY pool_id)
            SELECT p.id, p.committed, p.disbursed, COALESCE(per_pool.c, 0), COALESCE(per_pool.d, 0)
            FROM grants_fundingpool p LEFT JOIN per_pool ON per_pool.pool_id = p.id
            WHERE (p.committed, p.disbursed) <> (COALESCE(per_pool.c, 0), COALESCE(per_pool.d, 0))
               OR NOT (0 <= p.disbursed AND p.disbursed <= p.committed AND p.committed <= p.cap)
            """  # noqa: S608  (no input: a constant)
        ).fetchall()
        allotments = conn.execute(
            f"""
            WITH l AS ({SIGNED_LEDGER})
            SELECT a.pool_id, a.fiscal_year, a.committed, a.disbursed, COALESCE(l.committed, 0), COALESCE(l.disbursed, 0)
            FROM grants_fiscalyearallotment a
            LEFT JOIN l ON l.pool_id = a.pool_id AND l.fiscal_year = a.fiscal_year
            WHERE (a.committed, a.disbursed) <> (COALESCE(l.committed, 0), COALESCE(l.disbursed, 0))
               OR NOT (0 <= a.disbursed AND a.disbursed <= a.committed AND a.committed <= a.amount)
            """  # noqa: S608
        ).fetchall()
        programmes = conn.execute(
            f"""
            WITH l AS ({SIGNED_LEDGER}),
                 per_programme AS (
                    SELECT p.programme_id, SUM(p.committed) counters, SUM(COALESCE(l.committed, 0)) ledger
                    FROM grants_fundingpool p
                    LEFT JOIN (SELECT pool_id, SUM(committed) committed FROM l GROUP BY pool_id) l
                           ON l.pool_id = p.id
                    GROUP BY p.programme_id)
            SELECT g.id, g.committed, COALESCE(pp.counters, 0), COALESCE(pp.ledger, 0)
            FROM grants_programme g LEFT JOIN per_programme pp ON pp.programme_id = g.id
            WHERE g.committed <> COALESCE(pp.counters, 0) OR g.committed <> COALESCE(pp.ledger, 0)
               OR g.committed > g.total_budget
            """  # noqa: S608
        ).fetchall()
    return {"pools": pools, "allotments": allotments, "programmes": programmes}


def fingerprint(url: str) -> dict[str, Any]:
    """What must be identical in the original and the restored copy."""
    import psycopg

    with psycopg.connect(url) as conn:
        last = conn.execute(
            "SELECT id, kind, amount, pool_id, fiscal_year, award_id, tranche_id, created_at, idempotency_key "
            "FROM grants_ledgerentry ORDER BY id DESC LIMIT 1"
        ).fetchone()
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]  # noqa: S608
            for table in TABLES_COMPARED
        }
        totals = conn.execute(
            "SELECT SUM(committed), SUM(disbursed), SUM(cap) FROM grants_fundingpool"
        ).fetchone()
    return {"last_ledger_entry": last, "rows": counts, "pool_totals": totals}


def append_only(url: str) -> tuple[list[str], list[str]]:
    """(tables with an enabled append-only trigger, tables that let an UPDATE through)."""
    import psycopg

    tables = ["grants_ledgerentry", "grants_auditevent"]
    with psycopg.connect(url) as conn:
        guarded = [
            table
            for (table,) in conn.execute(
                "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' AND t.tgname = c.relname || '_append_only'"
            ).fetchall()
            if table in tables
        ]
        let_through = []
        for table in tables:
            try:
                with conn.transaction():
                    conn.execute(f"UPDATE {table} SET id = id WHERE id = (SELECT max(id) FROM {table})")  # noqa: S608
                let_through.append(table)
            except psycopg.errors.IntegrityConstraintViolation:
                pass  # refused by the trigger, and rolled back
    return sorted(guarded), let_through


# --- HTTP -------------------------------------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


OPENER = urllib.request.build_opener(_NoRedirects)


def http(
    base: str, method: str, path: str, body: Any = None, *, auth: str | None = None, key: str | None = None
) -> tuple[int, Any]:
    """As the TLS proxy in front of gunicorn would send it (X-Forwarded-Proto: https)."""
    headers = {"X-Forwarded-Proto": "https", "Accept": "application/json"}
    if auth:
        headers["Authorization"] = auth
    if key:
        headers["Idempotency-Key"] = key
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with OPENER.open(request, timeout=30) as answer:
            status, raw, kind = answer.status, answer.read(), answer.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        status, raw, kind = error.code, error.read(), error.headers.get("Content-Type", "")
    return status, (json.loads(raw) if "json" in kind else raw.decode(errors="replace"))


def scrape(base: str, token: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    status, text = http(base, "GET", "/metrics", auth=f"Bearer {token}")
    if status != 200:
        raise Failed(f"/metrics answered {status}")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def gauge(samples: dict[Any, float], name: str, **labels: str) -> Decimal:
    value = samples.get((name, tuple(sorted(labels.items()))), 0.0)
    return Decimal(repr(value)).quantize(CENT)


def by_pool(samples: dict[Any, float], name: str) -> dict[str, Decimal]:
    return {
        dict(labels)["pool"]: gauge(samples, name, **dict(labels)) for (n, labels) in samples if n == name
    }


# --- The drill --------------------------------------------------------------------------------------------------


def metrics_around_an_approval(base: str, token: str, password: str, authenticators: Authenticators) -> None:
    status, _ = http(base, "GET", "/metrics")
    report(status == 401, f"/metrics without the token refused ({status})")
    before = scrape(base, token)
    report(gauge(before, "grants_database_up") == 1, "/metrics read the database (grants_database_up 1)")
    committed_before = by_pool(before, "grants_pool_committed_yuan")
    report(len(committed_before) >= 5, f"pool gauges for {len(committed_before)} pools")

    def token_for(username: str) -> tuple[str, int]:
        basic = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        # Staff need their authenticator's code beside the password (grants/second_factor.py).
        request = authenticators.body(username, {"name": "ops drill"})
        status, body = http(base, "POST", "/api/v1/tokens/", request, auth=basic)
        if status != 201:
            raise Failed(f"token for {username}: {status} {body}")
        return f"Bearer {body['key']}", int(body["user"])

    (officer, _), (reviewer, reviewer_id) = token_for("sh_officer"), token_for("reviewer1")
    status, page = http(base, "GET", "/api/v1/applications/?status=submitted", auth=officer)
    if status != 200:
        raise Failed(f"applications: {status} {page}")
    candidates = page["results"] if isinstance(page, dict) else page
    report(bool(candidates), f"{len(candidates)} submitted application(s) in the officer's scope")
    app = candidates[0]
    path = f"/api/v1/applications/{app['id']}/"
    status, body = http(base, "POST", path + "assign-reviewers/", {"reviewers": [reviewer_id]}, auth=officer)
    if status != 200:
        raise Failed(f"assign a reviewer: {status} {body}")
    # The reviewer declares no conflict of interest first: until then the application is not theirs to read.
    status, reviews = http(base, "GET", "/api/v1/reviews/?page_size=100", auth=reviewer)
    mine = [
        r
        for r in (reviews["results"] if isinstance(reviews, dict) else reviews)
        if r["application"] == app["id"]
    ]
    if status != 200 or len(mine) != 1:
        raise Failed(f"the reviewer's review: {status} {reviews}")
    status, body = http(
        base, "POST", f"/api/v1/reviews/{mine[0]['id']}/declare/", {"conflict": False}, auth=reviewer
    )
    if status != 200:
        raise Failed(f"declare no conflict: {status} {body}")
    review = {
        "technical_merit": 4,
        "feasibility": 4,
        "impact": 5,
        "recommendation": "fund",
        "comment": "Drill.",
    }
    status, body = http(base, "POST", path + "review/", review, auth=reviewer)
    if status != 200:
        raise Failed(f"review: {status} {body}")
    key = str(uuid.uuid4())
    status, award = http(base, "POST", path + "approve/", {"milestone_gated": False}, auth=officer, key=key)
    if status != 201:
        raise Failed(f"approve: {status} {award}")
    replay_status, _ = http(
        base, "POST", path + "approve/", {"milestone_gated": False}, auth=officer, key=key
    )
    amount = Decimal(str(award["amount"])).quantize(CENT)
    report(
        replay_status == 201, f"application {app.get('reference')} approved over HTTP: award of {amount} yuan"
    )

    after = scrape(base, token)
    committed_after = by_pool(after, "grants_pool_committed_yuan")
    moved = {pool: committed_after[pool] - committed_before.get(pool, Decimal(0)) for pool in committed_after}
    changed = {pool: delta for pool, delta in moved.items() if delta}
    report(
        list(changed.values()) == [amount],
        f"grants_pool_committed_yuan moved by exactly the award in one pool: {changed}",
    )
    approvals = ("grants_transitions_total", {"action": "application.approve"})
    counted = gauge(after, approvals[0], **approvals[1]) - gauge(before, approvals[0], **approvals[1])
    report(counted == 1, f"grants_transitions_total{{action=application.approve}} went up by {counted}")
    replays = gauge(after, "grants_idempotent_replays_total", view="applications-approve")
    report(replays == 1, f"the repeated approval was one idempotent replay ({replays}) and moved nothing")
    # No worker runs in the drill: the approval's notice waits in the outbox and its kick in the queue.
    backlog = gauge(after, "grants_outbox_backlog")
    report(
        backlog >= 1,
        f"the approval's money-moved notice waits in the outbox (grants_outbox_backlog {backlog})",
    )
    if gauge(after, "grants_broker_up") == 1:
        queued = gauge(after, "grants_celery_queue_length", queue="celery")
        report(
            queued >= 1, f"its job waits in the broker (grants_celery_queue_length{{queue=celery}} {queued})"
        )
    seconds = gauge(
        after, "grants_http_request_duration_seconds_count", view="applications-approve", method="POST"
    )
    report(seconds == 2, f"request latency recorded for the approve view ({seconds} requests)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the databases and the dump")
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "")
    if not server.startswith("postgres"):
        print(
            "bin/ops_drill.py needs DATABASE_URL=postgres://... (a server it may create databases on).",
            file=sys.stderr,
        )
        return 2
    name = os.environ.get("DRILL_DATABASE", "grants_drill")
    restored_name = f"{name}_restore"
    port = int(os.environ.get("DRILL_PORT") or free_port())
    base = f"http://127.0.0.1:{port}"
    scratch = Path(tempfile.mkdtemp(prefix="grants-drill-"))
    token = secrets.token_urlsafe(32)
    commands = procfile()
    env = {
        k: v for k, v in os.environ.items() if k not in {"CELERY_TASK_ALWAYS_EAGER", "DJANGO_SETTINGS_MODULE"}
    }
    redis_server = os.environ.get("REDIS_URL", "")
    broker = with_path(redis_server, "/" + os.environ.get("DRILL_REDIS_DB", "12")) if redis_server else ""
    env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1",
            "HTTPS_ONLY": "1",
            "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
            "REDIS_URL": broker,
            "CACHE_URL": "",
            "MEDIA_ROOT": str(scratch / "media"),
            "CELERY_DATA_DIR": str(scratch / "celery"),
            "WEB_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "2",
            "METRICS_TOKEN": token,
            "PROMETHEUS_MULTIPROC_DIR": str(scratch / "prometheus"),
            "LOG_FORMAT": "json",
        }
    )
    if broker:
        import redis

        redis.Redis.from_url(broker).flushdb()
    web: subprocess.Popen[bytes] | None = None
    log_path = scratch / "web.log"
    status = 1
    try:
        env["DATABASE_URL"] = url = fresh_database(server, name)
        print(f"drill: database {name}, web on {base}, scratch {scratch}", flush=True)
        for label, command in (("release", commands["release"]), ("load_demo", "python manage.py load_demo")):
            # Procfile's commands and our own: no outside input reaches them.
            done = subprocess.run(  # noqa: S603
                shlex.split(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
            )
            report(
                done.returncode == 0,
                f"{label}: {command}" + ("" if done.returncode == 0 else done.stderr[-2000:]),
            )
        password = done.stdout.split("password ", 1)[1].split(":", 1)[0].strip()

        with log_path.open("wb") as log:
            web = subprocess.Popen(  # noqa: S603
                shlex.split(commands["web"]), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready(base, port):
            if web.poll() is not None or time.monotonic() > deadline:
                raise Failed(f"gunicorn did not become ready; see {log_path}")
            time.sleep(0.3)
        report(True, f"gunicorn ready: {commands['web']}")

        LOGS.mkdir(parents=True, exist_ok=True)
        authenticators = Authenticators(Processes(env))
        authenticators.enrol("sh_officer", "reviewer1")
        metrics_around_an_approval(base, token, password, authenticators)

        os.killpg(web.pid, signal.SIGTERM)
        code = web.wait(timeout=STOP_TIMEOUT)
        web = None
        report(code == 0, f"gunicorn stopped on SIGTERM (exit status {code})")

        dump = scratch / "grants.dump"
        started = time.monotonic()
        dumped = subprocess.run(  # noqa: S603
            ["pg_dump", "--format=custom", f"--file={dump}", *libpq_args(url)],  # noqa: S607
            env=pg_env(url), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        report(
            dumped.returncode == 0,
            f"pg_dump --format=custom: {dump.stat().st_size if dump.exists() else 0} bytes {dumped.stderr}",
        )
        restored = fresh_database(server, restored_name)
        loaded = subprocess.run(  # noqa: S603
            ["pg_restore", "--no-owner", "--exit-on-error", *libpq_args(restored), str(dump)],  # noqa: S607
            env=pg_env(restored), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        report(
            loaded.returncode == 0,
            f"pg_restore into {restored_name} ({time.monotonic() - started:.1f} s for dump and restore) {loaded.stderr}",
        )

        original, copy = fingerprint(url), fingerprint(restored)
        report(
            copy["last_ledger_entry"] == original["last_ledger_entry"]
            and copy["last_ledger_entry"] is not None,
            f"the ledger's last entry is the same: id {copy['last_ledger_entry'][0] if copy['last_ledger_entry'] else None}",
        )
        report(copy["rows"] == original["rows"], f"row counts equal: {copy['rows']}")
        report(copy["pool_totals"] == original["pool_totals"], f"pool totals equal: {copy['pool_totals']}")
        for level, rows in counters_against_ledger(restored).items():
            report(
                not rows, f"{level}: counters equal the ledger's sums and stay within their caps ({rows[:3]})"
            )
        guarded, let_through = append_only(restored)
        report(
            guarded == ["grants_auditevent", "grants_ledgerentry"],
            f"append-only triggers present on {guarded}",
        )
        report(
            not let_through, f"an UPDATE of the ledger and the audit log is refused ({let_through or 'both'})"
        )
        status = 0
    except Failed:
        pass
    except Exception as error:  # any other surprise fails the drill with its reason, after cleaning up
        print(f"FAIL {type(error).__name__}: {error}", flush=True)
    finally:
        if web is not None and web.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(web.pid, signal.SIGKILL)
            web.wait()
        if status != 0 and log_path.exists():
            print("--- last lines of the web log:")
            print("\n".join(log_path.read_text(errors="replace").splitlines()[-20:]))
        if not args.keep:
            with suppress(Exception):
                admin_sql(
                    server,
                    f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                    f'DROP DATABASE IF EXISTS "{restored_name}" WITH (FORCE)',
                )
            shutil.rmtree(scratch, ignore_errors=True)
            if broker:
                import redis

                with suppress(Exception):
                    redis.Redis.from_url(broker).flushdb()
    print(f"drill {'passed' if status == 0 else 'FAILED'}", flush=True)
    return status


def ready(base: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        if s.connect_ex(("127.0.0.1", port)) != 0:
            return False
    return http(base, "GET", "/readyz")[0] == 200


if __name__ == "__main__":
    sys.exit(main())
