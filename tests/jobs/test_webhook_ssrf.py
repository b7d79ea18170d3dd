"""Webhook targets (issue 11, item 4): an officer must not be able to make the service call into its own network.

Targets that resolve to loopback, private, link-local, multicast or reserved addresses are refused when the endpoint
is saved and again at delivery, after resolving the name; the connection goes to the address that was checked; the
delivery log keeps a generic reason. Every connection here goes to 127.0.0.1: names are answered by a stand-in
resolver, and addresses elsewhere are only ever checked, never contacted.
"""

import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from grants.errors import NotPermitted
from grants.models import AuditEvent, WebhookDelivery, WebhookEndpoint
from grants.services import webhooks
from grants.services.webhooks import RefusedTarget
from tests.grants.invariants import refused

Status = WebhookDelivery.Status
NAME = "hooks.example.test"
PUBLIC = "93.184.215.14"  # a global address: checked by the tests, never connected to


@dataclass
class Answers:
    """What the stand-in resolver says for NAME: one answer per lookup, the last one repeated."""

    answers: list[list[str]] = field(default_factory=list)
    lookups: int = 0

    def next(self) -> list[str]:
        self.lookups += 1
        answer = self.answers[min(self.lookups, len(self.answers)) - 1]
        if not answer:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answer


@pytest.fixture
def dns(monkeypatch) -> Answers:
    """NAME (and other.example.test) resolve to what the test says; every other name as usual."""
    box = Answers()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (NAME, "other.example.test"):
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, int(port)))
                for a in box.next()
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return box


@dataclass
class Hits:
    status: int = 200
    requests: list[dict[str, Any]] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    port: int = 0


def _serve(hits: Hits, tls: ssl.SSLContext | None = None) -> Iterator[Hits]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hits.requests.append({"path": self.path, "host": self.headers.get("Host")})
            self.send_response(hits.status)
            if 300 <= hits.status < 400:
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    hits.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def local() -> Iterator[Hits]:
    """A plain HTTP receiver on 127.0.0.1 that records the Host header of each request."""
    yield from _serve(Hits())


@pytest.fixture
def certificate(tmp_path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={NAME}",
         "-addext", f"subjectAltName=DNS:{NAME}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_local(certificate, monkeypatch) -> Iterator[Hits]:
    """An HTTPS receiver on 127.0.0.1 with a certificate for NAME, which the sender is made to trust."""
    cert, key = certificate
    hits = Hits()
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)

    def note_server_name(_sock: Any, name: str | None, _ctx: Any) -> None:
        hits.server_names.append(name)

    server_tls.sni_callback = note_server_name
    monkeypatch.setattr(webhooks, "tls_context", lambda: ssl.create_default_context(cafile=str(cert)))
    yield from _serve(hits, server_tls)


def endpoint_for(city: Any, url: str) -> WebhookEndpoint:
    """Stored as it was before targets were checked (or by a migration): the delivery must check it anyway."""
    return WebhookEndpoint.objects.create(city=city, url=url, secret="k" * 16)


def deliver_one(city: Any, event_id: str = "e-1") -> WebhookDelivery:
    (delivery_id,) = webhooks.fan_out(city_id=city.pk, event="money.moved", event_id=event_id, payload={})
    webhooks.deliver(delivery_id=delivery_id)
    return WebhookDelivery.objects.get(pk=delivery_id)


# --- Which addresses -------------------------------------------------------------------------------------------

INWARD = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.5",
    "172.16.3.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",  # noqa: S104  (an address to check, not one to bind)
    "224.0.0.1",
    "233.252.0.1",  # multicast that ipaddress calls global
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.10",  # documentation
    "::1",
    "::",
    "fe80::1%eth0",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "2002:7f00:1::1",  # 6to4 around 127.0.0.1
    "64:ff9b::a00:5",  # NAT64 to 10.0.0.5
]


@pytest.mark.parametrize("address", INWARD)
def test_inward_addresses_are_refused(address, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    assert not webhooks.address_allowed(address)


@pytest.mark.parametrize("address", ["8.8.8.8", PUBLIC, "2001:4860:4860::8888"])
def test_public_addresses_are_allowed(address, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    assert webhooks.address_allowed(address)


def test_the_allow_list_opens_exactly_its_networks(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["10.20.0.0/16", "fd00:20::/64"]
    assert webhooks.address_allowed("10.20.7.8") and webhooks.address_allowed("fd00:20::9")
    assert webhooks.address_allowed("::ffff:10.20.7.8")
    assert not webhooks.address_allowed("10.21.0.1") and not webhooks.address_allowed("127.0.0.1")


def test_a_malformed_allow_list_stops_the_service_from_starting():
    env = {"SECRET_KEY": "x", "WEBHOOK_ALLOWED_NETWORKS": "10.0.0.1/8", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", "import config.settings"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and "WEBHOOK_ALLOWED_NETWORKS" in result.stderr


# --- At creation -----------------------------------------------------------------------------------------------

REFUSED_URLS = [
    "http://127.0.0.1:5441/",
    "http://localhost:5441/",
    "http://[::1]:5441/",
    "http://0x7f000001:5441/",  # 127.0.0.1 written in hex
    "http://2130706433:5441/",  # and as one number
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5/hook",
    "http://[::ffff:127.0.0.1]:5441/",
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "http:///hook",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_an_endpoint_to_an_inward_target_is_refused_and_nothing_is_saved(url, shanghai, alice, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    with refused(RefusedTarget) as info:
        webhooks.save_endpoint(endpoint=WebhookEndpoint(city=shanghai, url=url, secret="k" * 16), actor=alice)
    assert info.value.code == "webhook_target_refused" and "url" in info.value.fields
    assert not WebhookEndpoint.objects.exists()


def test_a_name_that_resolves_inward_is_refused_even_if_one_answer_is_public(shanghai, alice, dns, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    dns.answers = [[PUBLIC, "10.0.0.5"]]
    with refused(RefusedTarget):
        webhooks.save_endpoint(
            endpoint=WebhookEndpoint(city=shanghai, url=f"https://{NAME}/hook", secret="k" * 16), actor=alice
        )


def test_a_name_that_does_not_resolve_is_refused_at_creation_and_fails_at_delivery(
    shanghai, alice, dns, settings
):
    dns.answers = [[]]
    with refused(RefusedTarget):
        webhooks.save_endpoint(
            endpoint=WebhookEndpoint(city=shanghai, url=f"https://{NAME}/hook", secret="k" * 16), actor=alice
        )
    endpoint_for(shanghai, f"https://{NAME}/hook")
    assert deliver_one(shanghai).last_error == "connection failed"


def test_a_public_endpoint_is_saved_and_audited(shanghai, alice, dns, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    dns.answers = [[PUBLIC]]
    endpoint = webhooks.save_endpoint(
        endpoint=WebhookEndpoint(city=shanghai, url=f"https://{NAME}/hook", secret="k" * 16), actor=alice
    )
    assert endpoint.pk and endpoint.created_by == alice
    event = AuditEvent.objects.get(action="webhook.create")
    assert event.after == {
        "city_id": shanghai.pk,
        "url": f"https://{NAME}/hook",
        "events": [],
        "active": True,
        "secret_changed": True,
    }


def test_an_endpoint_can_be_switched_off_whatever_its_name_now_resolves_to(shanghai, alice, dns, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    dns.answers = [[PUBLIC], ["127.0.0.1"]]
    endpoint = webhooks.save_endpoint(
        endpoint=WebhookEndpoint(city=shanghai, url=f"https://{NAME}/hook", secret="k" * 16), actor=alice
    )
    with pytest.raises(RefusedTarget):
        webhooks.save_endpoint(endpoint=endpoint, actor=alice)
    endpoint.active = False
    webhooks.save_endpoint(endpoint=endpoint, actor=alice)
    assert WebhookEndpoint.objects.get().active is False


def test_only_an_officer_of_the_city_saves_its_endpoint(shanghai, bob, dns):
    dns.answers = [[PUBLIC]]
    with refused(NotPermitted):
        webhooks.save_endpoint(
            endpoint=WebhookEndpoint(city=shanghai, url=f"https://{NAME}/hook", secret="k" * 16), actor=bob
        )


def test_https_is_required_where_the_service_itself_is_https_only(shanghai, alice, dns, settings):
    settings.HTTPS_ONLY = True
    dns.answers = [[PUBLIC]]
    with refused(RefusedTarget) as info:
        webhooks.save_endpoint(
            endpoint=WebhookEndpoint(city=shanghai, url=f"http://{NAME}/hook", secret="k" * 16), actor=alice
        )
    assert "https" in info.value.message
    webhooks.save_endpoint(
        endpoint=WebhookEndpoint(city=shanghai, url=f"https://{NAME}/hook", secret="k" * 16), actor=alice
    )


def _admin_add(client: Any, city: Any, url: str) -> Any:
    return client.post(
        reverse("admin:grants_webhookendpoint_add"),
        {"city": city.pk, "url": url, "secret": "s" * 16, "events": "[]", "active": "on"},
    )


def test_the_admin_refuses_an_inward_target_beside_the_field(client, alice, shanghai, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    client.force_login(alice)
    response = _admin_add(client, shanghai, "http://127.0.0.1:5441/")
    assert response.status_code == 200
    assert "does not resolve to a public address" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="webhook.").exists()

    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert _admin_add(client, shanghai, "http://127.0.0.1:5441/").status_code == 302
    assert WebhookEndpoint.objects.get().created_by == alice
    assert AuditEvent.objects.filter(action="webhook.create").count() == 1


# --- At delivery -----------------------------------------------------------------------------------------------


def test_an_endpoint_stored_without_the_check_is_refused_at_delivery(shanghai, local, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    endpoint_for(shanghai, f"http://127.0.0.1:{local.port}/hook")
    d = deliver_one(shanghai)
    assert (d.status, d.last_status_code, d.last_error) == (Status.PENDING, None, "refused target")
    assert local.requests == []


def test_a_name_rebound_to_loopback_after_creation_is_refused_at_delivery(
    shanghai, alice, local, dns, settings
):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    dns.answers = [[PUBLIC], ["127.0.0.1"]]
    webhooks.save_endpoint(
        endpoint=WebhookEndpoint(city=shanghai, url=f"http://{NAME}:{local.port}/hook", secret="k" * 16),
        actor=alice,
    )
    d = deliver_one(shanghai)
    assert (d.status, d.last_error) == (Status.PENDING, "refused target")
    assert local.requests == [] and dns.lookups == 2


def test_the_connection_goes_to_the_address_that_was_checked(shanghai, local, dns, settings):
    """DNS rebinding: the name answers 127.0.0.1 once (checked, allowed), then 127.0.0.2. A sender that looked
    the name up again to connect would reach 127.0.0.2, where nothing listens."""
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    dns.answers = [["127.0.0.1"], ["127.0.0.2"]]
    endpoint_for(shanghai, f"http://{NAME}:{local.port}/hook?v=1")
    d = deliver_one(shanghai)
    assert (d.status, d.last_status_code) == (Status.DELIVERED, 200)
    assert local.requests == [{"path": "/hook?v=1", "host": f"{NAME}:{local.port}"}]
    assert dns.lookups == 1


def test_https_goes_to_the_checked_address_with_the_name_for_sni_and_the_certificate(
    shanghai, tls_local, dns, settings
):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.HTTPS_ONLY = True
    dns.answers = [["127.0.0.1"]]
    endpoint_for(shanghai, f"https://{NAME}:{tls_local.port}/hook")
    d = deliver_one(shanghai)
    assert (d.status, d.last_status_code) == (Status.DELIVERED, 200)
    assert tls_local.server_names == [NAME] and tls_local.requests[0]["host"] == f"{NAME}:{tls_local.port}"

    # The same receiver under a name its certificate does not carry: no request, and only a generic reason.
    WebhookEndpoint.objects.update(url=f"https://other.example.test:{tls_local.port}/hook")
    d = deliver_one(shanghai, "e-2")
    assert (d.status, d.last_status_code, d.last_error) == (Status.PENDING, None, "connection failed")
    assert len(tls_local.requests) == 1


def test_plain_http_is_refused_at_delivery_where_the_service_is_https_only(shanghai, local, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.HTTPS_ONLY = True
    endpoint_for(shanghai, f"http://127.0.0.1:{local.port}/hook")
    assert deliver_one(shanghai).last_error == "refused target"
    assert local.requests == []


def test_a_redirect_is_not_followed(shanghai, local, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    local.status = 302
    endpoint_for(shanghai, f"http://127.0.0.1:{local.port}/hook")
    d = deliver_one(shanghai)
    assert (d.status, d.last_status_code, d.last_error) == (Status.PENDING, 302, "HTTP 302")
    assert len(local.requests) == 1


def test_the_log_keeps_generic_reasons_only(shanghai, settings):
    """A port that answers slowly, one that is closed and an unknown name: the log says "timed out" or
    "connection failed", never the exception's text (which would tell open ports from closed ones)."""
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.JOBS_WEBHOOK_TIMEOUT = 1
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection in the kernel, never answers
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    try:
        endpoint = endpoint_for(shanghai, f"http://127.0.0.1:{silent.getsockname()[1]}/hook")
        assert deliver_one(shanghai, "e-1").last_error == "timed out"
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            url=f"http://127.0.0.1:{closed.getsockname()[1]}/"
        )
        assert deliver_one(shanghai, "e-2").last_error == "connection failed"
    finally:
        silent.close()
        closed.close()
    reasons = set(WebhookDelivery.objects.values_list("last_error", flat=True))
    assert reasons == {"timed out", "connection failed"}
