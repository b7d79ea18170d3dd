"""Helpers for the job tests: Celery run eagerly in-process, and a local webhook receiver on 127.0.0.1."""

import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from config.celery import app as celery_app
from grants import tasks
from grants.outage import Outage
from grants.services import webhooks


@pytest.fixture(autouse=True)
def _broker_not_known_down(monkeypatch) -> None:
    """Each test starts with the web process's memory of a broker outage empty (grants.tasks.money_moved)."""
    monkeypatch.setattr(tasks, "broker", Outage(tasks.broker.service, tasks.broker.fallback))


@pytest.fixture
def eager(settings, tmp_path) -> Iterator[None]:
    """Tasks run in-process when queued; coalescing claims kept in a temporary folder, not a shared Redis."""
    settings.REDIS_URL = ""
    settings.CELERY_DATA_DIR = tmp_path / "celery"
    old = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = old


@dataclass
class Receiver:
    """Records every POST; answers with `status` (settable); checks signatures against `secret`."""

    secret: str = "s3cret-for-tests"
    status: int = 200
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    @property
    def verified(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["verified"]]


def _serve(box: Receiver, tls: ssl.SSLContext | None) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ts = self.headers.get(webhooks.TIMESTAMP_HEADER, "")
            sig = self.headers.get(webhooks.SIGNATURE_HEADER, "")
            box.requests.append(
                {
                    "path": self.path,
                    "body": json.loads(body),
                    "event": self.headers.get(webhooks.EVENT_HEADER),
                    "event_id": self.headers.get(webhooks.EVENT_ID_HEADER),
                    "verified": webhooks.verify(box.secret, ts, body, sig),
                }
            )
            self.send_response(box.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    box.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    # The receiver listens on 127.0.0.1, which webhooks refuse unless allowed (tests/jobs/test_webhook_ssrf.py).
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    yield from _serve(Receiver(), None)


@pytest.fixture(scope="session")
def receiver_certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (certificate, key): processes that send webhooks to the HTTPS
    receiver trust it through SSL_CERT_FILE, which OpenSSL's default verify paths read."""
    folder = tmp_path_factory.mktemp("receiver-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def https_receiver(settings, receiver_certificate) -> Iterator[Receiver]:
    """The receiver over HTTPS: production settings (HTTPS_ONLY) send webhooks to https:// URLs only."""
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(*receiver_certificate)
    yield from _serve(Receiver(), tls)
