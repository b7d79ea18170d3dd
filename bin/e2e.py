"""End-to-end run of the production shape on this machine: `make e2e`.

What docker-compose.yml does, without Docker: a fresh PostgreSQL database, migrations (Procfile `release`), static
files collected, then gunicorn, a Celery worker and beat started with the very commands of Procfile (the ones the
compose file runs; tests/deploy checks both), with production settings: DEBUG off, HTTPS only behind a proxy
header, JSON logs. Then it drives the service over HTTP as its users would, checks what the background jobs left,
and stops every process it started, whatever happens. Exit status 0 only if every step passed.

Environment: DATABASE_URL (postgres://..., the run creates and drops its own database E2E_DATABASE, default
grants_e2e, on that server) and REDIS_URL (the run uses its own database numbers on that server, default 15 for the
broker and 14 for the cache, and empties them first). Logs of the processes: artifacts/e2e/.

`bin/e2e.py --print-commands` prints the commands it runs, as JSON.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import suppress
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
LOGS = ROOT / "artifacts" / "e2e"
SERVICES = ("web", "worker", "beat")
READY_TIMEOUT = 90
JOB_TIMEOUT = 90
STOP_TIMEOUT = 30


class Failed(Exception):
    """A step of the run did not do what the service promises."""


def procfile() -> dict[str, str]:
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = command.strip()
    return commands


def step(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


# --- The services this machine provides -------------------------------------------------------------------------


def with_path(url: str, path: str, query: str = "") -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


def fresh_database(server_url: str, name: str) -> str:
    """Drop and create the run's own database; returns its URL."""
    import psycopg

    check(urlsplit(server_url).scheme.startswith("postgres"), "DATABASE_URL must point at PostgreSQL.")
    with psycopg.connect(with_path(server_url, "/postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_path(server_url, f"/{name}", "connect_timeout=5")


def drop_database(server_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(with_path(server_url, "/postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- The processes ----------------------------------------------------------------------------------------------


class Processes:
    """The long-running processes, each in its own process group so that stopping one stops its children."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def run_once(self, name: str, command: str) -> str:
        step(f"{name}: {command}")
        # The commands are Procfile's, the project's own; no input from outside reaches them.
        result = subprocess.run(  # noqa: S603
            shlex.split(command), cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600
        )
        (LOGS / f"{name}.log").write_text(result.stdout + result.stderr)
        check(result.returncode == 0, f"{name} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        return result.stdout

    def start(self, name: str, command: str) -> None:
        step(f"start {name}: {command}")
        log = (LOGS / f"{name}.log").open("wb")
        self.running[name] = subprocess.Popen(  # noqa: S603
            shlex.split(command),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        for name, process in self.running.items():
            check(
                process.poll() is None,
                f"{name} exited with {process.returncode}; see {LOGS / (name + '.log')}",
            )

    def stop(self) -> dict[str, int | None]:
        """SIGTERM to every group (gunicorn, Celery and beat all shut down gracefully on it), then SIGKILL."""
        for process in self.running.values():
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        codes: dict[str, int | None] = {}
        for name, process in self.running.items():
            try:
                codes[name] = process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[name] = None
            # Whatever a process left behind in its group (prefork children) goes too.
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self.running.clear()
        return codes


# --- HTTP ---------------------------------------------------------------------------------------------------------


class Response:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<{self.status} {self.body[:600]!r}>"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Client:
    """Speaks to gunicorn as the TLS proxy in front of it would: with X-Forwarded-Proto: https."""

    opener = urllib.request.build_opener(_NoRedirects)

    def __init__(self, base: str, *, token: str | None = None, basic: tuple[str, str] | None = None) -> None:
        self.base = base
        self.headers = {"X-Forwarded-Proto": "https", "Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if basic:
            self.headers["Authorization"] = "Basic " + base64.b64encode(":".join(basic).encode()).decode()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        proxied: bool = True,
    ) -> Response:
        url = self.base + path + (("?" + urlencode(params)) if params else "")
        all_headers = {**self.headers, **(headers or {})}
        if not proxied:
            all_headers.pop("X-Forwarded-Proto")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=all_headers, method=method)  # noqa: S310
        try:
            with self.opener.open(request, timeout=30) as answer:
                return Response(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, error.headers, error.read())

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, *, key: str | None = None, **kw: Any) -> Response:
        headers = {"Idempotency-Key": key} if key else {}
        return self.request("POST", path, body if body is not None else {}, headers=headers, **kw)

    def expect(self, response: Response, status: int, what: str) -> Any:
        check(response.status == status, f"{what}: expected {status}, got {response!r}")
        return response.json() if "json" in response.headers.get("Content-Type", "") else response.body

    def all(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a listing, following its pages or cursor."""
        items: list[dict[str, Any]] = []
        url: str | None = path
        query = dict(params or {})
        while url:
            page = self.expect(self.get(url, params=query), 200, f"GET {url}")
            if isinstance(page, list):
                return page
            items += page["results"]
            url = page.get("next")
            query = {}
            if url:
                url = url.split("/api/", 1)[1]
                url = "/api/" + url
        return items


def wait_for(what: str, probe: Callable[[], Any], timeout: float, processes: Processes) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        processes.check_alive()
        try:
            last = probe()
        except (OSError, urllib.error.URLError) as error:
            last = error
        else:
            if last:
                return last
        time.sleep(0.5)
    raise Failed(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


# --- The run ----------------------------------------------------------------------------------------------------


def money(value: Any) -> Decimal:
    return Decimal(str(value))


def new_credit_code() -> str:
    """A Unified Social Credit Code no demo institution has: Shanghai region, random body, valid check character."""
    from stdnum.cn import uscc

    body = f"91310000MA{secrets.randbelow(10**7):07d}"
    return body + uscc.calc_check_digit(body)


def exercise(base: str, password: str, env: dict[str, str], processes: Processes) -> list[str]:
    """Drive the service as its users would. Returns what was exercised."""
    done: list[str] = []
    anonymous = Client(base)

    health = anonymous.expect(anonymous.get("/healthz", proxied=False), 200, "/healthz")
    check(health == {"status": "ok"}, f"/healthz said {health}")
    ready = anonymous.expect(anonymous.get("/readyz", proxied=False), 200, "/readyz")
    check(ready["checks"]["broker"] == "ok", f"the broker should be Redis: {ready}")
    done.append("/healthz and /readyz over plain HTTP on the container address (database, migrations, Redis)")

    plain = anonymous.get("/admin/login/", proxied=False)
    check(plain.status == 301, f"plain HTTP must be redirected to HTTPS: {plain!r}")
    check(plain.headers["Location"].startswith("https://"), f"redirect to {plain.headers['Location']}")
    page = anonymous.get("/admin/login/")
    check(page.status == 200, f"admin login page: {page!r}")
    check(
        "script-src 'self'" in page.headers.get("Content-Security-Policy", ""), "no content security policy"
    )
    check("max-age=" in page.headers.get("Strict-Transport-Security", ""), "no HSTS header")
    cookies = page.headers.get_all("Set-Cookie") or []
    check(bool(cookies) and all("Secure" in c for c in cookies), f"cookies must be Secure: {cookies}")
    static = anonymous.get("/static/admin/css/base.css")
    check(static.status == 200 and b"{" in static.body, f"static file through whitenoise: {static.status}")
    done.append("HTTPS redirect, HSTS, content security policy, secure cookies, static files (whitenoise)")

    def token_for(username: str) -> tuple[Client, int]:
        basic = Client(base, basic=(username, password))
        body = basic.expect(basic.post("/api/v1/tokens/", {"name": "e2e"}), 201, f"token for {username}")
        check(body["key"].startswith("gm_"), f"token key {body}")
        return Client(base, token=body["key"]), int(body["user"])

    applicant, _ = token_for("applicant1")
    officer, _ = token_for("sh_officer")
    finance, _ = token_for("sh_finance")
    reviewer, reviewer_id = token_for("reviewer1")
    auditor, _ = token_for("auditor")
    forged = "gm_0000_" + secrets.token_urlsafe(32)
    check(Client(base, token=forged).get("/api/v1/pools/").status == 401, "a bad token must get 401")
    done.append("API tokens created over HTTP Basic for five roles; a bad token refused (401)")

    pools = officer.all("/api/v1/pools/")
    pool = next(
        (p for p in pools if (p["city"], p["programme_code"], p["code"]) == ("SH", "2025", "CMP")), None
    )
    check(pool is not None, f"no Shanghai computing-power pool in {[(p['city'], p['code']) for p in pools]}")
    assert pool is not None
    pool_path = f"/api/v1/pools/{pool['id']}/"
    before = officer.expect(officer.get(pool_path), 200, "pool before")

    code = new_credit_code()
    institution = applicant.expect(
        applicant.post(
            "/api/v1/institutions/",
            {"name_en": "E2E Compute Startup", "credit_code": code, "type": "startup", "city": "SH"},
            key=str(uuid.uuid4()),
        ),
        201,
        "register an institution",
    )
    today = date.today().isoformat()
    draft_key = str(uuid.uuid4())
    draft_body = {
        "institution": institution["id"],
        "pool": pool["id"],
        "title": "GPU hours for a speech model",
        "summary": "Training on rented computing power.",
        "eligible_cost": "1000000.00",
        "requested_amount": "300000.00",
        "duration_years": 2,
        "proposed_start": today,
    }
    draft = applicant.expect(applicant.post("/api/v1/applications/", draft_body, key=draft_key), 201, "draft")
    again = applicant.expect(
        applicant.post("/api/v1/applications/", draft_body, key=draft_key), 201, "replay"
    )
    check(again["id"] == draft["id"], "a repeated create with the same Idempotency-Key must not create twice")
    app_path = f"/api/v1/applications/{draft['id']}/"
    submitted = applicant.expect(applicant.post(app_path + "submit/"), 200, "submit")
    check(submitted["status"] == "submitted", f"submitted: {submitted['status']}")
    check(bool(submitted.get("reference")), "a submitted application has a reference")
    done.append(f"applicant registered an institution and submitted application {submitted['reference']}")

    officer.expect(officer.post(app_path + "assign-reviewers/", {"reviewers": [reviewer_id]}), 200, "assign")
    reviewer.expect(
        reviewer.post(
            app_path + "review/",
            {
                "technical_merit": 4,
                "feasibility": 4,
                "impact": 5,
                "recommendation": "fund",
                "comment": "Sound.",
            },
        ),
        200,
        "review",
    )
    approve_key = str(uuid.uuid4())
    award = officer.expect(
        officer.post(app_path + "approve/", {"milestone_gated": False}, key=approve_key), 201, "approve"
    )
    replay = officer.expect(
        officer.post(app_path + "approve/", {"milestone_gated": False}, key=approve_key), 201, "approve again"
    )
    check(replay["id"] == award["id"], "a repeated approval must return the first award")
    check(money(award["amount"]) == Decimal("300000.00"), f"award amount {award['amount']}")
    done.append(
        "reviewer assigned and review submitted; officer approved (repeat with the same key: same award)"
    )

    tranches = sorted(finance.all("/api/v1/tranches/", {"award": award["id"]}), key=lambda t: t["sequence"])
    check(len(tranches) >= 1, "the award has tranches")
    check(sum(money(t["amount"]) for t in tranches) == money(award["amount"]), "tranches sum to the award")
    first = tranches[0]
    tranche_path = f"/api/v1/tranches/{first['id']}/"
    if first["status"] == "planned":
        released = finance.expect(finance.post(tranche_path + "release/"), 200, "release")
        check(released["status"] == "payable", f"released tranche is {released['status']}")
    pay_key = str(uuid.uuid4())
    pay_body = {"payment_reference": f"E2E-{uuid.uuid4().hex[:12]}"}
    paid = finance.expect(finance.post(tranche_path + "pay/", pay_body, key=pay_key), 200, "pay")
    check(paid["status"] == "paid", f"paid tranche is {paid['status']}")
    repaid = finance.expect(finance.post(tranche_path + "pay/", pay_body, key=pay_key), 200, "pay again")
    check(repaid["id"] == paid["id"], "a repeated payment returns the first answer")
    paid_amount = money(first["amount"])
    done.append(
        f"finance released and paid tranche 1 ({paid_amount} yuan); the repeated payment moved nothing"
    )

    after = officer.expect(officer.get(pool_path), 200, "pool after")
    committed = money(after["committed"]) - money(before["committed"])
    disbursed = money(after["disbursed"]) - money(before["disbursed"])
    check(committed == money(award["amount"]), f"pool committed moved by {committed}, not the award amount")
    check(disbursed == paid_amount, f"pool disbursed moved by {disbursed}, not the paid amount {paid_amount}")
    done.append("pool counters moved by exactly the award (committed) and the tranche (disbursed)")

    report = auditor.get(
        "/api/v1/reports/disbursements/", params={"institution": institution["id"], "format": "csv"}
    )
    check(report.status == 200, f"disbursement report as CSV: {report!r}")
    check(report.headers.get("Content-Type", "").startswith("text/csv"), f"CSV type: {report.headers}")
    rows = list(csv.DictReader(io.StringIO(report.body.decode("utf-8-sig"))))
    check(len(rows) == 1, f"one total row for the institution: {rows}")
    check(money(rows[0]["paid_amount"]) == paid_amount, f"paid in the report: {rows[0]}")
    check(int(rows[0]["paid_count"]) == 1, f"one paid tranche in the report: {rows[0]}")
    done.append("auditor pulled the disbursement report as CSV: paid amount and count match")

    package = auditor.expect(
        auditor.get("/api/v1/reports/360giving/", params={"pool": pool["id"]}), 200, "360Giving package"
    )
    grant = next((g for g in package["grants"] if g["id"].endswith(award["reference"])), None)
    check(grant is not None, f"award {award['reference']} not in the 360Giving package")
    assert grant is not None
    check(grant["id"].startswith("360G-"), f"360Giving id {grant['id']}")
    check(
        grant["recipientOrganization"][0]["id"] == f"CN-USCI-{code}",
        f"recipient {grant['recipientOrganization']}",
    )
    transactions = grant.get("disbursementTransaction", [])
    check([Decimal(str(t["value"])) for t in transactions] == [paid_amount], f"disbursements {transactions}")
    check(
        Decimal(str(grant["amountAwarded"])) == money(award["amount"]),
        f"amountAwarded {grant['amountAwarded']}",
    )
    done.append("auditor pulled the 360Giving package: the award, its recipient and its disbursement")

    snapshot = wait_for(
        "the tracking job's usage snapshot of the pool",
        lambda: latest_snapshot(env["DATABASE_URL"], pool["id"], money(after["disbursed"])),
        JOB_TIMEOUT,
        processes,
    )
    check(snapshot["committed"] == money(after["committed"]), f"snapshot committed {snapshot}")
    check(snapshot["ledger_disbursed"] == snapshot["disbursed"], f"ledger and counters agree {snapshot}")
    done.append(
        "the tracking job (queued after the payment commits, and by beat) wrote a usage snapshot with the new figures"
    )

    ready = anonymous.expect(anonymous.get("/readyz", proxied=False), 200, "/readyz at the end")
    check(all(v.startswith("ok") for v in ready["checks"].values()), f"/readyz {ready}")
    done.append("/readyz still ready at the end")
    return done


def latest_snapshot(database_url: str, pool_id: int, disbursed: Decimal) -> dict[str, Any] | None:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT committed, disbursed, ledger_committed, ledger_disbursed, taken_at FROM grants_usagesnapshot "
            "WHERE pool_id = %s AND disbursed = %s ORDER BY taken_at DESC LIMIT 1",
            (pool_id, disbursed),
        ).fetchone()


def json_logs(name: str) -> list[dict[str, Any]]:
    """The JSON records of a process's log (Celery prints its start-up banner as plain text before logging)."""
    records = []
    for line in (LOGS / f"{name}.log").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def beat_sweeps() -> list[dict[str, Any]]:
    return [r for r in json_logs("beat") if "Sending due task track-pools" in r.get("message", "")]


def worker_sweeps() -> list[dict[str, Any]]:
    return [
        r
        for r in json_logs("worker")
        if "grants.sweep_tracking" in r.get("message", "") and "succeeded" in r["message"]
    ]


def wait_for_a_scheduled_sweep() -> None:
    """Beat's first sweep comes one interval after it started; a fast run's API flow can be over before that."""
    deadline = time.monotonic() + 60
    while not (beat_sweeps() and worker_sweeps()) and time.monotonic() < deadline:
        time.sleep(0.5)


def check_logs() -> str:
    web = json_logs("web")
    lines = [line for line in (LOGS / "web.log").read_text().splitlines() if line.strip()]
    check(len(web) == len(lines), "every line gunicorn and Django wrote is a JSON object")
    access = [r for r in web if r.get("logger") == "gunicorn.access"]
    check(any(str(r.get("path", "")).startswith("/api/v1/") for r in access), "access log records of the API")
    worker = json_logs("worker")
    check(any("succeeded" in r.get("message", "") for r in worker), "the worker logged finished jobs as JSON")
    sent = beat_sweeps()
    check(bool(sent), "beat queued the tracking sweep")
    swept = worker_sweeps()
    check(bool(swept), "the worker ran the sweep beat queued")
    return (
        f"structured logs: {len(web)} JSON records from web ({len(access)} access), {len(worker)} from the worker; "
        f"beat queued the tracking sweep {len(sent)} times and the worker ran it {len(swept)} times"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--print-commands", action="store_true", help="print the commands run, as JSON, and exit"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database after a successful run")
    args = parser.parse_args()
    commands = procfile()
    if args.print_commands:
        print(json.dumps(commands, indent=2))
        return 0

    database_server = os.environ.get("DATABASE_URL", "")
    redis_server = os.environ.get("REDIS_URL", "")
    if not database_server.startswith("postgres") or not redis_server.startswith("redis"):
        print(
            "bin/e2e needs DATABASE_URL=postgres://... and REDIS_URL=redis://... (see .ci/run).",
            file=sys.stderr,
        )
        return 2

    LOGS.mkdir(parents=True, exist_ok=True)
    database_name = os.environ.get("E2E_DATABASE", "grants_e2e")
    broker = with_path(redis_server, "/" + os.environ.get("E2E_REDIS_DB", "15"))
    cache = with_path(redis_server, "/" + os.environ.get("E2E_CACHE_DB", "14"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    scratch = Path(tempfile.mkdtemp(prefix="grants-e2e-"))
    drop_on_success = not args.keep

    # Stop cleanly on Ctrl-C or a CI timeout as on any other failure: the finally below does the work.
    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)

    step(f"database {database_name} on {urlsplit(database_server).hostname}, Redis {broker}, web on {base}")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"CELERY_TASK_ALWAYS_EAGER", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CSRF_TRUSTED_ORIGINS": f"https://127.0.0.1:{port}",
            "HTTPS_ONLY": "1",
            "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
            "DATABASE_URL": fresh_database(database_server, database_name),
            "REDIS_URL": broker,
            "CACHE_URL": cache,
            "MEDIA_ROOT": str(scratch / "media"),
            "CELERY_DATA_DIR": str(scratch / "celery"),
            "WEB_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "2",
            "CELERY_WORKER_CONCURRENCY": "2",
            "LOG_FORMAT": "json",
            "JOBS_TRACKING_COALESCE_SECONDS": "1",
            # Beat's sweeps come round within the run, so the run sees beat queue work and the worker do it.
            "JOBS_SWEEP_TRACKING_SECONDS": "5",
        }
    )
    # As in the image: the folders of the volumes exist before the processes start.
    for folder in ("media", "celery"):
        (scratch / folder).mkdir()
    empty_redis(broker)
    empty_redis(cache)
    processes = Processes(env)
    started = time.monotonic()
    status = 1
    try:
        processes.run_once("release", commands["release"])
        processes.run_once("collectstatic", "python manage.py collectstatic --no-input -v 0")
        output = processes.run_once("load_demo", "python manage.py load_demo")
        password = output.split("password ", 1)[1].split(":", 1)[0].strip()
        for name in SERVICES:
            processes.start(name, commands[name])
        wait_for(
            "/readyz",
            lambda: Client(base).get("/readyz", proxied=False).status == 200,
            READY_TIMEOUT,
            processes,
        )
        step(f"ready after {time.monotonic() - started:.1f} s")
        done = exercise(base, password, env, processes)
        wait_for_a_scheduled_sweep()
        processes.check_alive()
        codes = processes.stop()
        check(all(code == 0 for code in codes.values()), f"every process stops cleanly on SIGTERM: {codes}")
        done.append(f"web, worker and beat stopped on SIGTERM with exit status 0 ({codes})")
        done.append(check_logs())
        status = 0
    except Failed as failure:
        step(f"FAILED: {failure}")
    except KeyboardInterrupt as interruption:
        step(f"interrupted ({interruption})")
        status = 130
    finally:
        if processes.running:
            step(f"stopped: {processes.stop()}")
        if status == 0 and drop_on_success:
            drop_database(database_server, database_name)
    if status == 0:
        step(f"passed in {time.monotonic() - started:.1f} s; exercised:")
        for line in done:
            print(f"  - {line}")
    else:
        step(f"logs of the processes: {LOGS}")
        for name in ("release", *SERVICES):
            log = LOGS / f"{name}.log"
            if log.exists():
                print(f"--- last lines of {log.name}:")
                print("\n".join(log.read_text(errors="replace").splitlines()[-25:]))
    return status


if __name__ == "__main__":
    sys.exit(main())
