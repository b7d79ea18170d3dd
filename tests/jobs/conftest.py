"""Helpers for the job tests: Celery run eagerly in-process, and a local webhook receiver on 127.0.0.1."""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from config.celery import app as celery_app
from grants.services import webhooks


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


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box = Receiver()

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
    box.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()
