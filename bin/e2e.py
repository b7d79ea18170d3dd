"""End-to-end run of the production shape on this machine: `make e2e`.

What docker-compose.yml does, without Docker: a fresh PostgreSQL database, migrations (Procfile `release`), static
files collected, then gunicorn, a Celery worker and beat started with the very commands of Procfile (the ones the
compose file runs; tests/deploy checks both), with production settings: DEBUG off, HTTPS only behind a proxy
header, JSON logs. Then it drives the service over HTTP as its users would, checks what the background jobs left,
and stops every process it started, whatever happens. Exit status 0 only if every step passed.

Environment: DATABASE_URL (postgres://..., the run creates and drops its own database E2E_DATABASE, default
grants_e2e, on that server). Redis is the run's own redis-server on a free port, the broker and the cache on it as
in docker-compose.yml, because the run stops it during approvals: no request may fail and no notice be lost.
Logs of the processes: artifacts/e2e/.

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
from collections.abc import Callable
from contextlib import suppress
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple
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


class OwnRedis:
    """A redis-server of the run's own, without persistence: after a stop it comes back empty, as after losing its
    disk, so whatever was queued before is gone too."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port, self.folder = port, folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        step(f"start redis-server on port {self.port}")
        self.process = subprocess.Popen(  # noqa: S603
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while not self.answers():
            check(time.monotonic() < deadline, f"redis-server on port {self.port} did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None:
            return
        with suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


class WebhookReceiver:
    """Records the event ids of the webhooks it receives (a city's integration, on this machine), over HTTPS as
    production sends them, with a self-signed certificate for 127.0.0.1 that the run's processes trust through
    SSL_CERT_FILE."""

    def __init__(self, folder: Path) -> None:
        import ssl
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        events = self.events = []  # type: list[tuple[str, str]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                events.append(
                    (self.headers.get("X-Grants-Event", ""), self.headers.get("X-Grants-Event-Id", ""))
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.certificate, key = folder / "receiver-cert.pem", folder / "receiver-key.pem"
        subprocess.run(  # noqa: S603
            ["/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(self.certificate)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(self.certificate, key)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def money_moved(self) -> list[str]:
        return [event_id for event, event_id in self.events if event == "money.moved"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MailReceiver:
    """A local SMTP server (aiosmtpd) the web and the worker send their e-mail to, as to a city's relay: records
    each message it receives (recipients, subject, body)."""

    def __init__(self) -> None:
        from email import message_from_bytes, policy

        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        received = self.messages

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = message_from_bytes(envelope.original_content, policy=policy.default)
                received.append(message)
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def to(self, address: str) -> list[Any]:
        return [m for m in self.messages if address in str(m.get("To", ""))]

    def close(self) -> None:
        self.controller.stop()


class Outage(NamedTuple):
    """What the run needs to stop Redis and see what comes out: its own Redis and a webhook receiver."""

    redis: OwnRedis
    receiver: WebhookReceiver
    mail: MailReceiver


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


class Raw(NamedTuple):
    """A request body sent as it is (a CSV file, a multipart form)."""

    data: bytes
    content_type: str

    @classmethod
    def multipart(cls, fields: dict[str, Any], files: dict[str, tuple[str, bytes, str]]) -> Raw:
        boundary = uuid.uuid4().hex
        parts: list[bytes] = []
        for name, value in fields.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            )
        for name, (filename, content, mime) in files.items():
            head = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {mime}\r\n\r\n"
            )
            parts.append(head.encode() + content + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        return cls(b"".join(parts), f"multipart/form-data; boundary={boundary}")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def declare_path(reviewer: Client, application_id: int) -> str:
    """Where the assigned reviewer declares no conflict of interest, before the application is theirs to read."""
    (review,) = [r for r in reviewer.all("/api/v1/reviews/") if r["application"] == application_id]
    return f"/api/v1/reviews/{review['id']}/declare/"


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
        if isinstance(body, Raw):
            data = body.data
            all_headers["Content-Type"] = body.content_type
        elif body is not None:
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


class Authenticators:
    """Staff need a second factor under production settings (grants/second_factor.py): each member of staff the run
    acts as gets an authenticator enrolled (a confirmed TOTP device with a key made here, as the enrolment page
    would confirm it), and every HTTP Basic request for a token carries the code the app would show, computed
    with django-otp's own TOTP function. A code is accepted once, so each use takes the next time step (the device
    accepts one step ahead) and waits for the clock when it runs out of steps."""

    def __init__(self, processes: Processes) -> None:
        self.processes = processes
        self.keys: dict[str, str] = {}
        self.last_step: dict[str, int] = {}

    def enrol(self, *usernames: str) -> None:
        keys = {name: secrets.token_hex(20) for name in usernames}
        script = (
            "from django.contrib.auth.models import User; "
            "from django_otp.plugins.otp_totp.models import TOTPDevice; "
            f"keys = {keys!r}; "
            "[TOTPDevice.objects.create(user=User.objects.get(username=n), name='authenticator', key=k, "
            "confirmed=True) for n, k in keys.items()]"
        )
        self.processes.run_once(
            "enrol-authenticators", shlex.join(["python", "manage.py", "shell", "-c", script])
        )
        self.keys.update(keys)

    def code(self, username: str) -> str:
        from django_otp.oath import totp

        now = int(time.time()) // 30
        step = max(now, self.last_step.get(username, now - 1) + 1)
        while step > now + 1:  # both steps the device accepts now are used: the next one comes within 30 s
            time.sleep(1)
            now = int(time.time()) // 30
        self.last_step[username] = step
        return f"{totp(bytes.fromhex(self.keys[username]), drift=step - now):06d}"

    def body(self, username: str, body: dict[str, Any]) -> dict[str, Any]:
        """The token request's body, with the code for staff (applicants have no authenticator)."""
        return {**body, "otp": self.code(username)} if username in self.keys else body


STAFF = ("sh_officer", "sh_finance", "sh_finance2", "reviewer1", "auditor")


def exercise(
    base: str, password: str, env: dict[str, str], processes: Processes, outage: Outage
) -> list[str]:
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

    authenticators = Authenticators(processes)
    authenticators.enrol(*STAFF)
    refused = Client(base, basic=("sh_officer", password)).post("/api/v1/tokens/", {"name": "e2e"})
    check(
        refused.status == 403 and refused.json()["code"] == "second_factor_required",
        f"a staff token without the second factor must be refused: {refused!r}",
    )

    def token_for(username: str) -> tuple[Client, int]:
        basic = Client(base, basic=(username, password))
        request = authenticators.body(username, {"name": "e2e"})
        body = basic.expect(basic.post("/api/v1/tokens/", request), 201, f"token for {username}")
        check(body["key"].startswith("gm_"), f"token key {body}")
        return Client(base, token=body["key"]), int(body["user"])

    applicant, _ = token_for("applicant1")
    officer, _ = token_for("sh_officer")
    finance, _ = token_for("sh_finance")
    # Whoever releases a tranche may not pay it (grants.workflow.separated): the demo's second finance officer pays.
    finance2, _ = token_for("sh_finance2")
    reviewer, reviewer_id = token_for("reviewer1")
    auditor, _ = token_for("auditor")
    forged = "gm_0000_" + secrets.token_urlsafe(32)
    check(Client(base, token=forged).get("/api/v1/pools/").status == 401, "a bad token must get 401")
    done.append(
        "API tokens created over HTTP Basic for five roles (two finance officers), staff with a code from their "
        "authenticator (refused without one, 403); a bad token refused (401)"
    )

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
    reviewer.expect(reviewer.post(declare_path(reviewer, draft["id"]), {"conflict": False}), 200, "declare")
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

    def mailed(subject: str) -> Callable[[], list[Any]]:
        return lambda: [m for m in outage.mail.to("applicant1@example.cn") if m["Subject"] == subject]

    for subject in (
        f"Application {submitted['reference']} received",
        f"Application {award['reference']} approved: CNY 300,000.00",
    ):
        (message, *repeats) = wait_for(
            f"the e-mail {subject!r} over SMTP", mailed(subject), JOB_TIMEOUT, processes
        )
        check(not repeats, f"{subject!r} arrived {1 + len(repeats)} times")
        text = message.get_body(("plain",)).get_content()
        check(f"/applications/{draft['id']}/" in text, f"the e-mail links to the application: {text!r}")
        check(message.get_body(("html",)) is not None, f"the e-mail has an HTML part: {subject!r}")
    done.append(
        "the worker e-mailed the applicant over SMTP (a local aiosmtpd server): the submission's and the approval's "
        "notices, once each, text and HTML, linking to the application"
    )

    tranches = sorted(finance.all("/api/v1/tranches/", {"award": award["id"]}), key=lambda t: t["sequence"])
    check(len(tranches) >= 1, "the award has tranches")
    check(sum(money(t["amount"]) for t in tranches) == money(award["amount"]), "tranches sum to the award")
    first = tranches[0]
    tranche_path = f"/api/v1/tranches/{first['id']}/"
    # No tranche is released before the institution accepts the award agreement (issue 16).
    refused = finance.post(tranche_path + "release/")
    check(
        refused.status == 409 and refused.json()["code"] == "agreement_not_accepted",
        f"release before the agreement's acceptance: {refused!r}",
    )
    pdf = applicant.get(f"/api/v1/awards/{award['id']}/agreement.pdf")
    check(pdf.status == 200 and pdf.body.startswith(b"%PDF"), f"agreement PDF: {pdf.status}")
    accepted = applicant.expect(
        applicant.post(f"/api/v1/awards/{award['id']}/accept-agreement/"), 200, "accept the agreement"
    )
    check(accepted["agreement"]["status"] == "accepted", f"agreement is {accepted['agreement']}")
    done.append("release refused until the applicant downloaded and accepted the award agreement (PDF)")
    if first["status"] == "planned":
        released = finance.expect(finance.post(tranche_path + "release/"), 200, "release")
        check(released["status"] == "payable", f"released tranche is {released['status']}")
    pay_key = str(uuid.uuid4())
    pay_body = {"payment_reference": f"E2E-{uuid.uuid4().hex[:12]}"}
    if first["status"] == "planned":
        separated = finance.post(tranche_path + "pay/", pay_body, key=str(uuid.uuid4()))
        check(
            separated.status == 403 and separated.json()["code"] == "separation_of_duties",
            f"the releaser must not pay: {separated!r}",
        )
    paid = finance2.expect(finance2.post(tranche_path + "pay/", pay_body, key=pay_key), 200, "pay")
    check(paid["status"] == "paid", f"paid tranche is {paid['status']}")
    repaid = finance2.expect(finance2.post(tranche_path + "pay/", pay_body, key=pay_key), 200, "pay again")
    check(repaid["id"] == paid["id"], "a repeated payment returns the first answer")
    paid_amount = money(first["amount"])
    done.append(
        f"sh_finance released tranche 1 and was refused its payment (403 separation_of_duties); sh_finance2 paid "
        f"it ({paid_amount} yuan); the repeated payment moved nothing"
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

    done.append(vouchers_over_http(base, password, officer, finance2, processes))
    done.append(redis_outage(base, password, env, processes, pool["id"], outage, authenticators))

    ready = anonymous.expect(anonymous.get("/readyz", proxied=False), 200, "/readyz at the end")
    check(all(v.startswith("ok") for v in ready["checks"].values()), f"/readyz {ready}")
    done.append("/readyz still ready at the end")
    return done


VOUCHER_HOLDERS = 1000
# A thousand institutions registered in Shanghai, as the portal's registration would leave them: the holders of
# the vouchers the officer then issues from one CSV over HTTP.
HOLDERS_SCRIPT = f"""
from stdnum.cn import uscc
from cities.models import City
from grants.models import Institution
shanghai = City.objects.get(code="SH")
bodies = [f"91310000{{700000000 + i:09d}}" for i in range({VOUCHER_HOLDERS})]
Institution.objects.bulk_create(
    Institution(name_en=f"E2E holder {{i}}", name_zh=f"持券机构{{i}}", credit_code=b + uscc.calc_check_digit(b),
                type="sme", city=shanghai)
    for i, b in enumerate(bodies)
)
print(",".join(b + uscc.calc_check_digit(b) for b in bodies))
"""
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def vouchers_over_http(
    base: str, password: str, officer: Client, finance: Client, processes: Processes
) -> str:
    """Shanghai's officer issues 1,000 computing-power vouchers from one CSV over HTTP; an accredited provider
    claims against one by its code (a multipart form with the invoice and the payment proof); the same invoice
    again is refused; finance pays the claim at a lower amount; the voucher, the pool and the verification page
    show it."""
    # The last line: the shell may print a line of its own first (the objects it imported).
    output = processes.run_once("voucher holders", f"python manage.py shell -c {shlex.quote(HOLDERS_SCRIPT)}")
    codes = output.strip().splitlines()[-1].split(",")
    schemes = [s for s in officer.all("/api/v1/voucher-schemes/") if s["city"] == "SH"]
    check(bool(schemes), f"the demo's Shanghai voucher scheme: {schemes}")
    pool_id = schemes[0]["pool"]
    before = officer.expect(officer.get(f"/api/v1/pools/{pool_id}/"), 200, "voucher pool before")
    csv_body = "credit_code,face_value\n" + "".join(f"{code},100000\n" for code in codes)
    started = time.monotonic()
    issued = officer.expect(
        officer.post(
            "/api/v1/vouchers/bulk/",
            Raw(csv_body.encode(), "text/csv"),
            key=f"e2e-bulk-{uuid.uuid4()}",
            params={"pool": pool_id},
        ),
        201,
        "bulk issue of 1,000 vouchers",
    )
    took = time.monotonic() - started
    check(issued["issued"] == VOUCHER_HOLDERS, f"issued {issued['issued']}")
    after = officer.expect(officer.get(f"/api/v1/pools/{pool_id}/"), 200, "voucher pool after")
    check(
        money(after["committed"]) - money(before["committed"]) == VOUCHER_HOLDERS * Decimal(100000),
        f"committed moved by the face values: {before['committed']} -> {after['committed']}",
    )
    voucher = issued["vouchers"][0]

    basic = Client(base, basic=("sh_provider1", password))
    body = basic.expect(basic.post("/api/v1/tokens/", {"name": "e2e"}), 201, "token for sh_provider1")
    provider = Client(base, token=body["key"])
    (own,) = [p for p in provider.all("/api/v1/providers/") if p["city"] == "SH"]
    offering = next(o for o in own["offerings"] if o["category"] == "compute")
    invoice = f"2431{secrets.randbelow(10**16):016d}"
    form = {
        "voucher_code": voucher["code"],
        "offering": offering["id"],
        "contract_number": f"E2E-{uuid.uuid4().hex[:8]}",
        "contract_value": "200000.00",
        "invoice_number": invoice,
        "invoice_date": voucher["valid_from"],
        "invoice_amount": "100000.00",
        "invoice_tax": "6000.00",
        "amount_paid": "106000.00",
        "amount": "30000.00",
        "usage_statement": "2,400 A800 GPU-hours",
    }
    files = {
        "invoice_file": ("invoice.pdf", PDF, "application/pdf"),
        "payment_proof": ("payment.pdf", PDF, "application/pdf"),
    }
    claim = provider.expect(
        provider.post("/api/v1/voucher-claims/", Raw.multipart(form, files), key=f"e2e-claim-{uuid.uuid4()}"),
        201,
        "a provider's claim",
    )
    again = provider.post(
        "/api/v1/voucher-claims/",
        Raw.multipart(
            {**form, "invoice_number": " ".join(invoice[i : i + 4] for i in range(0, 20, 4))}, files
        ),
    )
    check(
        again.status == 422 and "invoice_unique" in again.json()["details"]["checks"],
        f"the same invoice, spaced, claimed again must be refused: {again!r}",
    )
    paid = finance.expect(
        finance.post(
            f"/api/v1/voucher-claims/{claim['id']}/approve/",
            {"amount": "25000.00", "payment_reference": f"E2E-PAY-{uuid.uuid4().hex[:10]}"},
            key=f"e2e-pay-{uuid.uuid4()}",
        ),
        200,
        "finance pays the claim",
    )
    check(paid["status"] == "paid" and money(paid["approved_amount"]) == Decimal(25000), f"paid {paid}")
    now = officer.expect(officer.get(f"/api/v1/vouchers/{voucher['id']}/"), 200, "the voucher after payment")
    check(money(now["balance"]) == Decimal(75000), f"balance after a 25,000 payment: {now}")
    pool_now = officer.expect(officer.get(f"/api/v1/pools/{pool_id}/"), 200, "voucher pool after payment")
    check(
        money(pool_now["disbursed"]) - money(after["disbursed"]) == Decimal(25000),
        f"disbursed moved by the payment: {after['disbursed']} -> {pool_now['disbursed']}",
    )
    public = Client(base).expect(
        Client(base).get(f"/api/v1/vouchers/verify/{voucher['code']}/"), 200, "public verification"
    )
    check(public["status"] == "active" and "balance" not in public, f"verification {public}")
    return (
        f"vouchers: 1,000 issued from one CSV over HTTP in {took:.1f} s (pool committed +100,000,000.00); a "
        "provider's claim by voucher code accepted, the same invoice spaced out refused (invoice_unique), paid "
        "at a lower amount by finance; balance, pool and public verification agree"
    )


OUTAGE_APPLICATIONS = 8


def redis_outage(
    base: str,
    password: str,
    env: dict[str, str],
    processes: Processes,
    pool_id: int,
    outage: Outage,
    authenticators: Authenticators,
) -> str:
    """Stop Redis (broker and cache) and go on working over HTTP: institutions registered, applications drafted,
    submitted, reviewed and approved. No request may fail. Start Redis again, empty: every approval's money-moved
    webhook must arrive, once, and tracking must catch up, with the default drain schedule."""
    import psycopg

    redis, receiver = outage.redis, outage.receiver
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        # What an administrator does in the admin: Shanghai's money-moved events to the city's integration.
        conn.execute(
            "INSERT INTO grants_webhookendpoint (city_id, url, secret, events, active, created_at) "
            "SELECT id, %s, 'e2e-secret', '[\"money.moved\"]'::jsonb, true, now() FROM cities_city WHERE code = 'SH'",
            (receiver.url,),
        )
    tokens: dict[str, Client] = {}
    for name in ("applicant1", "sh_officer", "reviewer1"):
        basic = Client(base, basic=(name, password))
        request = authenticators.body(name, {"name": "outage"})
        body = basic.expect(basic.post("/api/v1/tokens/", request), 201, f"token for {name}")
        tokens[name] = Client(base, token=body["key"])
        if name == "reviewer1":
            reviewer_id = int(body["user"])
    applicant, officer, reviewer = tokens["applicant1"], tokens["sh_officer"], tokens["reviewer1"]

    step("stop Redis (the broker and the cache)")
    redis.stop()
    statuses: list[int] = []

    def send(client: Client, method: str, path: str, body: Any = None) -> Response:
        try:
            answer = client.request(method, path, body, headers={"Idempotency-Key": str(uuid.uuid4())})
        except OSError as error:
            statuses.append(0)
            raise Failed(f"{method} {path} with Redis down: {error}") from error
        statuses.append(answer.status)
        return answer

    ready = send(Client(base), "GET", "/readyz")
    check(ready.status == 503 and ready.json()["checks"]["cache"].startswith("failed"), f"/readyz {ready!r}")
    statuses.pop()  # the probe is right to answer 503
    started = time.monotonic()
    awards = []
    for _ in range(OUTAGE_APPLICATIONS):
        body = {
            "name_en": "E2E Outage Lab",
            "credit_code": new_credit_code(),
            "type": "startup",
            "city": "SH",
        }
        institution = send(applicant, "POST", "/api/v1/institutions/", body).json()
        draft = send(applicant, "POST", "/api/v1/applications/", {
            "institution": institution["id"], "pool": pool_id, "title": "Compute during an outage",
            "summary": "Approved while Redis is down.", "eligible_cost": "1000000.00",
            "requested_amount": "300000.00", "duration_years": 1, "proposed_start": date.today().isoformat(),
        }).json()  # fmt: skip
        path = f"/api/v1/applications/{draft['id']}/"
        send(applicant, "POST", path + "submit/")
        send(officer, "POST", path + "assign-reviewers/", {"reviewers": [reviewer_id]})
        send(reviewer, "POST", declare_path(reviewer, draft["id"]), {"conflict": False})
        send(reviewer, "POST", path + "review/", {
            "technical_merit": 4, "feasibility": 4, "impact": 5, "recommendation": "fund", "comment": "Sound.",
        })  # fmt: skip
        approved = send(officer, "POST", path + "approve/", {"milestone_gated": False})
        check(approved.status == 201, f"approval with Redis down: {approved!r}")
        awards.append(approved.json()["id"])
    failed = sum(1 for status in statuses if status == 0 or status >= 500)
    step(f"Redis down for {time.monotonic() - started:.1f} s: {failed} of {len(statuses)} requests failed")
    check(failed == 0, f"requests failed with Redis down: {statuses}")

    redis.start()
    returned = time.monotonic()
    expected = commit_events(env["DATABASE_URL"], awards)
    check(len(expected) == len(awards), f"one commit posting per award: {expected}")
    wait_for(
        "every money-moved webhook of the approvals made while Redis was down",
        lambda: expected <= set(receiver.money_moved()),
        JOB_TIMEOUT,
        processes,
    )
    delivered = time.monotonic() - returned
    returned_at = time.time() - delivered
    wait_for(
        "tracking of the pool to catch up",
        lambda: pool_caught_up(env["DATABASE_URL"], pool_id, returned_at=returned_at),
        JOB_TIMEOUT,
        processes,
    )
    tracked = time.monotonic() - returned
    # Tracking may announce the postings first (it fans out what moved since the pool was last tracked); the drain
    # marks the outbox's rows sent when beat next runs it, adding no second delivery.
    wait_for(
        "the outbox to be drained",
        lambda: pending_notices(env["DATABASE_URL"]) == 0,
        JOB_TIMEOUT,
        processes,
    )
    drained = time.monotonic() - returned
    events = receiver.money_moved()
    check(len(events) == len(set(events)), f"a money-moved event arrived twice: {events}")
    return (
        f"Redis stopped during approvals: {failed} of {len(statuses)} requests failed ({len(awards)} approvals); "
        f"{len(expected & set(events))} of {len(awards)} notices delivered {delivered:.1f} s after it returned, "
        f"tracking caught up after {tracked:.1f} s, the outbox drained after {drained:.1f} s"
    )


def commit_events(database_url: str, award_ids: list[int]) -> set[str]:
    """The money-moved event ids of the awards' approvals: a posting is named by its first ledger entry."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT min(id) FROM grants_ledgerentry WHERE award_id = ANY(%s) AND kind = 'commit' GROUP BY award_id",
            (award_ids,),
        ).fetchall()
    return {f"ledger-{row[0]}" for row in rows}


def pool_caught_up(database_url: str, pool_id: int, *, returned_at: float) -> bool:
    """A usage snapshot of the pool taken after Redis returned agrees with its counters, and nothing is due."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT s.ledger_committed = p.committed AND p.tracking_due_at IS NULL FROM grants_fundingpool p "
            "JOIN grants_usagesnapshot s ON s.pool_id = p.id WHERE p.id = %s AND s.taken_at >= to_timestamp(%s) "
            "ORDER BY s.taken_at DESC LIMIT 1",
            (pool_id, returned_at),
        ).fetchone()
    return bool(row and row[0])


def pending_notices(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM grants_outboxmessage WHERE sent_at IS NULL").fetchone()
    return int(row[0]) if row else -1


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
    if not database_server.startswith("postgres") or shutil.which("redis-server") is None:
        print(
            "bin/e2e needs DATABASE_URL=postgres://... and redis-server installed (see .ci/run).",
            file=sys.stderr,
        )
        return 2

    LOGS.mkdir(parents=True, exist_ok=True)
    database_name = os.environ.get("E2E_DATABASE", "grants_e2e")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    scratch = Path(tempfile.mkdtemp(prefix="grants-e2e-"))
    outage = Outage(OwnRedis(free_port(), scratch), WebhookReceiver(scratch), MailReceiver())
    # As docker-compose.yml has it: the broker and the cache on one Redis.
    broker, cache = outage.redis.url + "/0", outage.redis.url + "/1"
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
            # The run's webhook receiver listens on loopback, which webhooks refuse unless allowed, and speaks
            # HTTPS with a certificate of its own that the processes are made to trust.
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "SSL_CERT_FILE": str(outage.receiver.certificate),
            # Notices are e-mailed by the worker through SMTP to the run's own server (MailReceiver).
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(outage.mail.port),
            "EMAIL_USE_TLS": "0",
            "SITE_URL": f"https://127.0.0.1:{port}",
            "JOBS_TRACKING_COALESCE_SECONDS": "1",
            # Beat's sweeps come round within the run, so the run sees beat queue work and the worker do it.
            "JOBS_SWEEP_TRACKING_SECONDS": "5",
        }
    )
    # As in the image: the folders of the volumes exist before the processes start.
    for folder in ("media", "celery"):
        (scratch / folder).mkdir()
    processes = Processes(env)
    started = time.monotonic()
    status = 1
    try:
        outage.redis.start()
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
        done = exercise(base, password, env, processes, outage)
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
        outage.redis.stop()
        outage.receiver.close()
        outage.mail.close()
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
