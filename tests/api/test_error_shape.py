"""One error shape under /api/ (docs/api.md), whatever answers: the views, Django's own 404 and 500, a cursor or
page size the client made up, and a database that is stuck or gone (503 with Retry-After, nothing changed)."""

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import psycopg
import pytest
from django.db import OperationalError, connection
from django.test import RequestFactory
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from config.urls import server_error
from grants import selectors
from grants.api.errors import RETRY_AFTER_SECONDS
from grants.api.views import Cursor, Pages
from grants.models import IdempotencyRecord, LedgerEntry
from tests.api.conftest import client_for, error_shape
from tests.grants.invariants import assert_invariants, state


def assert_json_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert error_shape(body) and body["code"] == code, body
    return body


# --- Django's own answers under /api/ -------------------------------------------------------------------------


def test_an_unknown_url_under_the_api_is_a_json_404(api, alice):
    assert_json_error(api(alice).get("/api/v1/no-such-list/"), 404, "not_found")
    assert_json_error(api(alice).post("/api/nothing-here", {}, format="json"), 404, "not_found")


@pytest.mark.parametrize(
    "path",
    [
        "applications/abc/approve/",
        "tranches/1.5/pay/",
        "awards/%E4%B8%80/suspend/",
        "awards/abc/",
        "ledger/x/",
    ],
)
def test_a_non_integer_id_is_a_json_404(api, world, alice, path):
    client = api(alice)
    before = state()
    response = client.post(f"/api/v1/{path}", {"reason": "r"}, format="json")
    if path.endswith(("abc/", "x/")):  # a detail path: GET is its method
        response = client.get(f"/api/v1/{path}")
    assert_json_error(response, 404, "not_found")
    assert state() == before


def test_pages_outside_the_api_keep_the_site_s_html_404(db, client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_an_unhandled_error_under_the_api_is_a_json_500(api, world, erin, monkeypatch):
    def broken(user):
        raise RuntimeError("a bug")

    monkeypatch.setattr(selectors, "awards", broken)
    client = api(erin)
    client.raise_request_exception = False
    body = assert_json_error(client.get("/api/v1/awards/"), 500, "server_error")
    assert "a bug" not in body["message"]


def test_an_unhandled_error_elsewhere_keeps_the_html_500(db):
    response = server_error(RequestFactory().get("/applications/"))
    assert response.status_code == 500 and response["Content-Type"].startswith("text/html")


def test_a_database_failing_outside_a_view_is_a_json_503(db):
    """A middleware's query (outside DRF's exception handler) reaches Django's handler500 inside its `except`."""
    try:
        raise OperationalError("server closed the connection unexpectedly")
    except OperationalError:
        response = server_error(RequestFactory().get("/api/v1/awards/"))
    body = assert_json_error(response, 503, "database_unavailable")
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert body["details"] == {"retry_after_seconds": RETRY_AFTER_SECONDS}


# --- Cursors and page sizes -----------------------------------------------------------------------------------


def cursor(query: str) -> str:
    return quote(base64.b64encode(query.encode()).decode())


CRAFTED = [
    "cD1hYmM=",  # "p=abc": a position that is no id
    cursor("o=-1&p=1"),
    "not-base64!",
    cursor("r=yes&p=1"),
]


@pytest.mark.parametrize("resource", ["ledger", "tranches", "audit-events"])
@pytest.mark.parametrize("crafted", CRAFTED)
def test_a_crafted_cursor_is_400(api, world, erin, resource, crafted):
    response = api(erin).get(f"/api/v1/{resource}/?cursor={crafted}")
    body = assert_json_error(response, 400, "invalid")
    assert "cursor" in body["fields"]


def test_a_cursor_is_checked_against_the_ordering_in_use(api, world, erin):
    response = api(erin).get(f"/api/v1/tranches/?ordering=scheduled_date&cursor={cursor('p=soon')}")
    assert_json_error(response, 400, "invalid")
    by_amount = api(erin).get(f"/api/v1/tranches/?ordering=amount&cursor={cursor('p=1000000.00')}")
    assert by_amount.status_code == 200


def test_the_cursors_the_api_hands_out_still_work(api, world, erin):
    for resource in ("ledger", "tranches", "audit-events"):
        first = api(erin).get(f"/api/v1/{resource}/?page_size=1").json()
        assert first["next"], resource
        second = api(erin).get(first["next"].split("testserver", 1)[1])
        assert second.status_code == 200 and second.json()["results"] != first["results"], resource


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "1.5", "", "²"])
@pytest.mark.parametrize("resource", ["awards", "tranches"])
def test_a_page_size_that_is_not_a_whole_number_from_1_is_400(api, world, erin, resource, bad):
    response = api(erin).get(f"/api/v1/{resource}/", {"page_size": bad})
    body = assert_json_error(response, 400, "invalid")
    assert "page_size" in body["fields"]


@pytest.mark.parametrize(("pagination", "maximum"), [(Pages, 500), (Cursor, 1000)])
def test_a_page_size_over_the_maximum_is_clamped_to_it(api, world, erin, pagination, maximum):
    request = Request(APIRequestFactory().get("/", {"page_size": "100000"}))
    assert pagination().get_page_size(request) == maximum
    assert pagination().get_page_size(Request(APIRequestFactory().get("/"))) == pagination.page_size
    assert api(erin).get("/api/v1/awards/?page_size=100000").status_code == 200


# --- A stuck or lost database (PostgreSQL) --------------------------------------------------------------------


def conninfo() -> str:
    db = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"] or None, host=db["HOST"], port=db["PORT"]
    )


@contextmanager
def pool_locked(pool_id: int) -> Iterator[psycopg.Connection]:
    """Another session holds the pool's row lock, as a long transaction or a stuck job would."""
    with psycopg.connect(conninfo()) as other:
        other.execute("SELECT id FROM grants_fundingpool WHERE id = %s FOR UPDATE", [pool_id])
        try:
            yield other
        finally:
            other.rollback()


@contextmanager
def web_limits(lock: str, statement: str) -> Iterator[None]:
    """The limits config/wsgi.py sets on the web process's connections, on the test's own connection."""
    with connection.cursor() as c:
        c.execute("SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
                  [lock, statement])  # fmt: skip
    try:
        yield
    finally:
        with connection.cursor() as c:
            c.execute("RESET lock_timeout; RESET statement_timeout")


@pytest.mark.parametrize(("lock", "statement"), [("300ms", "0"), ("0", "300ms")], ids=["lock", "statement"])
@pytest.mark.parametrize("key", [None, "approve-while-stuck"])
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_approval_behind_a_locked_pool_is_503_with_retry_after_and_changes_nothing(
    world, alice, lock, statement, key
):
    url = f"/api/v1/applications/{world.application.pk}/approve/"
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    client = client_for(alice)
    before = state()
    with pool_locked(world.application.pool_id), web_limits(lock, statement):
        response = client.post(url, {}, format="json", **headers)
    body = assert_json_error(response, 503, "database_busy")
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert body["details"]["retry_after_seconds"] == RETRY_AFTER_SECONDS
    assert state() == before
    assert not IdempotencyRecord.objects.exists()  # the claim went with the request's transaction
    retried = client.post(url, {}, format="json", **headers)
    assert retried.status_code == 201, retried.json()
    assert LedgerEntry.objects.filter(award_id=retried.json()["id"], kind="commit").count() == 1
    assert_invariants()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_lost_database_connection_is_503_and_the_next_request_reconnects(world, erin):
    client = client_for(erin)
    assert client.get("/api/v1/awards/").status_code == 200
    with psycopg.connect(conninfo(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    client.raise_request_exception = False
    try:
        response = client.get("/api/v1/awards/")
    finally:
        # What Django's request_started does before the next request (the test client skips it).
        connection.close_if_unusable_or_obsolete()
    assert_json_error(response, 503, "database_unavailable")
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert client.get("/api/v1/awards/").status_code == 200
