"""The HTTP load generator: a fixed number of client threads in this one process. Bodies are JSON, or bytes
encoded beforehand (`multipart` builds a form with files: the voucher claims).

How it is bounded (so it never starves the server it measures): every client thread lives in this process, which
`pinned()` restricts to a single CPU with sched_setaffinity while the load runs, and CPython runs one thread at a
time anyway. gunicorn and PostgreSQL are not pinned: they may use every core, including the client's when it
waits. pgbench, the reference, is pinned to the same single CPU with taskset (see run.py), so both sides of each
ratio get the same client budget.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import secrets
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


def client_cpu() -> int:
    """The CPU the load generator (and pgbench) run on: the last one this process may use."""
    return max(os.sched_getaffinity(0))


@contextmanager
def pinned(cpu: int) -> Iterator[None]:
    """Pin the calling thread (and every thread it starts meanwhile) to one CPU."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@dataclass
class Response:
    status: int
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One keep-alive-when-possible HTTP connection (gunicorn's sync workers close it after each response, and
    http.client then reconnects for the next request)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.conn = http.client.HTTPConnection(host, port, timeout=600)

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        all_headers = {**self.headers, **(headers or {})}
        payload = None
        if isinstance(body, bytes):
            payload = body  # already encoded (multipart): the caller's headers carry its Content-Type
        elif body is not None:
            payload = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        start = time.perf_counter()
        try:
            self.conn.request(method, path, body=payload, headers=all_headers)
            response = self.conn.getresponse()
            data = response.read()
        except (ConnectionError, http.client.HTTPException):
            self.conn.close()
            raise
        elapsed = time.perf_counter() - start
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
        return Response(response.status, data, elapsed)

    def stream(self, path: str, *, chunk: int = 1 << 16) -> tuple[int, int, float]:
        """GET a streamed body, reading and discarding it; returns (status, bytes, seconds)."""
        start = time.perf_counter()
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        size = 0
        while True:
            block = response.read(chunk)
            if not block:
                break
            size += len(block)
        elapsed = time.perf_counter() - start
        self.conn.close()
        return response.status, size, elapsed

    def close(self) -> None:
        self.conn.close()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body (RFC 7578) and its Content-Type: `files` maps a field to (filename, type, bytes)."""
    boundary = "bench" + secrets.token_hex(12)
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, content_type, content) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts.append(head.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@dataclass
class LoadResult:
    clients: int
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def count(self, status: int) -> int:
        return self.statuses[status]

    @property
    def sent(self) -> int:
        """Jobs taken from the queue: every one was sent, answered or failed in transport."""
        return sum(self.statuses.values()) + len(self.errors)

    def rate(self, status: int) -> float:
        return self.statuses[status] / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 3),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "error_codes": dict(self.codes),
            "latency_p50_ms": round(self.percentile(0.5) * 1000, 1),
            "latency_p95_ms": round(self.percentile(0.95) * 1000, 1),
            "latency_p99_ms": round(self.percentile(0.99) * 1000, 1),
            "transport_errors": self.errors[:5],
        }


def drive(
    *,
    host: str,
    port: int,
    token: str,
    clients: int,
    jobs: list[Any],
    request_of: Callable[[Any], tuple[str, str, Any, dict[str, str]]],
    duration: float,
    cpu: int,
) -> LoadResult:
    """`clients` threads take jobs from one queue and send `request_of(job)` until the queue is empty or
    `duration` seconds have passed. Runs pinned to `cpu`."""
    work: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for job in jobs:
        work.put(job)
    result = LoadResult(clients=clients, seconds=0.0)
    lock = threading.Lock()
    start_gate = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client_loop() -> None:
        client = Client(host, port, token)
        statuses: Counter[int] = Counter()
        codes: Counter[str] = Counter()
        latencies: list[float] = []
        errors: list[str] = []
        start_gate.wait()
        while time.perf_counter() < deadline[0]:
            try:
                job = work.get_nowait()
            except queue.Empty:
                break
            method, path, body, headers = request_of(job)
            try:
                response = client.request(method, path, body, headers)
            except (OSError, http.client.HTTPException) as exc:
                errors.append(repr(exc))
                client = Client(host, port, token)
                continue
            statuses[response.status] += 1
            latencies.append(response.seconds)
            if response.status >= 400:
                try:
                    codes[str(response.json().get("code", response.status))] += 1
                except ValueError:
                    codes[str(response.status)] += 1
        client.close()
        with lock:
            result.statuses.update(statuses)
            result.codes.update(codes)
            result.latencies.extend(latencies)
            result.errors.extend(errors)

    with pinned(cpu):
        threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(clients)]
        for thread in threads:
            thread.start()
        began = time.perf_counter()
        deadline[0] = began + duration
        start_gate.wait()
        for thread in threads:
            thread.join()
        result.seconds = time.perf_counter() - began
    return result


def p50(samples: list[float]) -> float:
    return statistics.median(samples)
