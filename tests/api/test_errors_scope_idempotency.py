"""Bad input is a clear 400 that changes nothing; another city's object is a 404; a retried POST with the same
Idempotency-Key has one effect; every refusal has the one error shape."""

import threading
import time

import psycopg
import pytest
from django.db import connection

from grants.api import idempotency
from grants.models import Application, AuditEvent, IdempotencyRecord, LedgerEntry, Tranche
from tests import factories as f
from tests.api.conftest import client_for, error_shape
from tests.api.test_error_shape import conninfo, pool_locked, web_limits
from tests.grants.invariants import assert_invariants, state


def _state():
    return (
        LedgerEntry.objects.count(),
        AuditEvent.objects.count(),
        list(Tranche.objects.order_by("id").values_list("status", flat=True)),
        list(Application.objects.order_by("id").values_list("status", flat=True)),
    )


BAD_BODIES = [
    ("applications/{app}/approve/", "alice", {"amount": "-5"}, "amount"),
    ("applications/{app}/approve/", "alice", {"amount": "1.234"}, "amount"),
    (
        "applications/{app}/approve/",
        "alice",
        {"schedule": [{"scheduled_date": "soon", "amount": "1"}]},
        "schedule.0.scheduled_date",
    ),
    ("applications/{app}/return/", "alice", {}, "note"),
    ("applications/{app}/assign-reviewers/", "alice", {"reviewers": []}, "reviewers"),
    ("applications/{app}/review/", "rita", {"technical_merit": 9}, "technical_merit"),
    ("awards/{award}/amend/", "alice", {"amount": "abc", "reason": "x"}, "amount"),
    ("awards/{award}/suspend/", "alice", {"reason": ""}, "reason"),
    ("tranches/{planned}/pay/", "dave", {}, "payment_reference"),
    ("tranches/{planned}/cancel/", "dave", {"reason": "  "}, "reason"),
    ("recoveries/{recovery}/receipt/", "dave", {"amount": 0}, "amount"),
    ("milestone-reports/{report}/reject/", "alice", {}, "note"),
]


@pytest.mark.parametrize(("path", "who", "body", "field"), BAD_BODIES)
def test_invalid_input_is_400_and_changes_nothing(request, api, world, path, who, body, field):
    user = request.getfixturevalue(who)
    url = "/api/v1/" + path.format(
        app=world.application.pk,
        award=world.award.pk,
        planned=world.planned.pk,
        recovery=world.recovery.pk,
        report=world.report.pk,
    )
    before = _state()
    response = api(user).post(url, body, format="json")
    assert response.status_code == 400, response.json()
    assert error_shape(response.json())
    assert response.json()["code"] == "invalid"
    assert field in response.json()["fields"]
    assert _state() == before


def test_domain_refusal_names_level_asked_and_left(api, sh_programme, carols_startup, carol, alice, rita):
    small = f.pool(sh_programme, code="TINY", cap="1000000")
    app = f.application(small, carols_startup, carol, requested="900000", cost="9000000")
    f.reviewed(app, carol, alice, rita)
    response = api(alice).post(
        f"/api/v1/applications/{app.pk}/approve/", {"amount": "1200000"}, format="json"
    )
    assert response.status_code == 409
    body = response.json()
    assert error_shape(body) and body["code"] == "budget_exceeded"
    assert body["details"]["level"] == "pool_cap"
    assert body["details"]["asked"] == "1200000.00" and body["details"]["left"] == "1000000.00"
    assert not LedgerEntry.objects.filter(pool=small).exists()


def test_malformed_json_and_non_object_bodies_are_400(api, world, alice):
    url = f"/api/v1/applications/{world.application.pk}/reject/"
    raw = api(alice).post(url, "{not json", content_type="application/json")
    assert raw.status_code == 400 and error_shape(raw.json()) and raw.json()["code"] == "parse_error"
    listed = api(alice).post(url, [1, 2], format="json")
    assert listed.status_code == 400 and error_shape(listed.json())


def test_too_large_body_is_413(api, world, alice):
    big = '{"note": "' + "x" * (1024 * 1024 + 10) + '"}'
    response = api(alice).post(
        f"/api/v1/applications/{world.application.pk}/reject/", big, content_type="application/json"
    )
    assert response.status_code == 413 and response.json()["code"] == "too_large"


def test_wrong_method_is_405_in_the_error_shape(api, world, alice):
    response = api(alice).delete(f"/api/v1/applications/{world.application.pk}/")
    assert response.status_code == 405 and error_shape(response.json())


def test_anonymous_is_401_with_the_bearer_scheme(api, world):
    response = api(None).get("/api/v1/applications/")
    assert response.status_code == 401 and error_shape(response.json())
    assert response["WWW-Authenticate"].startswith("Bearer")


OTHER_CITY = [
    ("get", "applications/{hz_app}/"),
    ("get", "awards/{hz_award}/"),
    ("get", "tranches/{hz_tranche}/"),
    ("post", "applications/{hz_app}/approve/"),
    ("post", "awards/{hz_award}/suspend/"),
    ("post", "tranches/{hz_tranche}/cancel/"),
    ("post", "tranches/{hz_tranche}/pay/"),
]


@pytest.mark.parametrize(("method", "path"), OTHER_CITY)
def test_another_citys_object_is_404(api, world, alice, dave, method, path):
    url = "/api/v1/" + path.format(
        hz_app=world.hz_application.pk, hz_award=world.hz_award.pk, hz_tranche=world.hz_tranche.pk
    )
    before = _state()
    for user in (alice, dave):
        response = getattr(api(user), method)(url, {"reason": "x", "payment_reference": "P"}, format="json")
        assert response.status_code == 404, (user, response.json())
        assert error_shape(response.json()) and response.json()["code"] == "not_found"
    assert _state() == before


def test_same_key_same_body_pays_once_and_replays(api, world, dave, alice):
    api(alice).post(f"/api/v1/milestone-reports/{world.report.pk}/accept/", {}, format="json")
    url = f"/api/v1/tranches/{world.gated.pk}/pay/"
    body = {"payment_reference": "SH-PAY-2"}
    first = api(dave).post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="pay-2")
    ledger = LedgerEntry.objects.count()
    second = api(dave).post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="pay-2")
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert LedgerEntry.objects.count() == ledger
    assert LedgerEntry.objects.filter(tranche=world.gated, kind="disburse").count() == 1


def test_same_key_other_body_is_refused(api, world, dave):
    url = "/api/v1/recoveries/"
    body = {"award": world.award.pk, "amount": "1000.00", "due_date": "2030-01-01", "reason": "Hours unused"}
    first = api(dave).post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="rec-1")
    assert first.status_code == 201
    other = api(dave).post(url, {**body, "amount": "2000.00"}, format="json", HTTP_IDEMPOTENCY_KEY="rec-1")
    assert other.status_code == 422
    assert error_shape(other.json()) and other.json()["code"] == "idempotency_key_reused"
    assert world.award.recoveries.count() == 2  # the world's recovery and the first request's, not a third


def test_same_key_approval_commits_once(api, world, alice):
    url = f"/api/v1/applications/{world.application.pk}/approve/"
    responses = [api(alice).post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="approve-1") for _ in range(3)]
    assert [r.status_code for r in responses] == [201, 201, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert LedgerEntry.objects.filter(award_id=responses[0].json()["id"], kind="commit").count() == 1


def test_a_refused_request_releases_its_key(api, world, alice):
    url = f"/api/v1/applications/{world.application.pk}/return/"
    refused = api(alice).post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="ret-1")
    assert refused.status_code == 400
    assert not IdempotencyRecord.objects.filter(key="ret-1").exists()
    done = api(alice).post(url, {"note": "Add quotes."}, format="json", HTTP_IDEMPOTENCY_KEY="ret-1")
    assert done.status_code == 200


def test_keys_are_per_user_and_bounded(api, world, alice, carol):
    url = "/api/v1/institutions/"
    body = {"name_en": "X", "credit_code": "bad", "type": "sme", "city": "SH"}
    too_long = api(carol).post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k" * 101)
    assert too_long.status_code == 400 and too_long.json()["code"] == "idempotency_key_invalid"


# --- A copy sent while the first is still running, and a request that dies (PostgreSQL: real row locks) --------


class Running:
    """A POST running in its own thread (its own database connection), to be joined later."""

    def __init__(self, user, url: str, key: str) -> None:
        self.response = None

        def run() -> None:
            try:
                self.response = client_for(user).post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY=key)
            finally:
                connection.close()

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def join(self):
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        return self.response


def waiting_on_locks(other: psycopg.Connection) -> list[int]:
    """The backends of this database waiting for a lock (the stuck request and its copies)."""
    rows = other.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchall()
    return [pid for (pid,) in rows]


def wait_until(condition, what: str):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_copy_sent_while_the_first_runs_waits_for_it_and_replays(world, alice):
    url = f"/api/v1/applications/{world.application.pk}/approve/"
    with (
        pool_locked(world.application.pool_id) as other,
        psycopg.connect(conninfo(), autocommit=True) as watch,
    ):
        first = Running(alice, url, "approve-once")
        wait_until(lambda: len(waiting_on_locks(watch)) == 1, "the first approval to wait on the pool")
        copy = Running(alice, url, "approve-once")
        wait_until(lambda: len(waiting_on_locks(watch)) == 2, "the copy to wait on the first one's claim")
        other.rollback()
        first_response, copy_response = first.join(), copy.join()
    assert first_response.status_code == copy_response.status_code == 201, copy_response.json()
    assert copy_response.json() == first_response.json()
    assert copy_response["Idempotent-Replayed"] == "true"
    assert LedgerEntry.objects.filter(award_id=first_response.json()["id"], kind="commit").count() == 1
    assert_invariants()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_copy_waiting_past_the_lock_timeout_is_409_in_progress_with_retry_after(world, alice):
    url = f"/api/v1/applications/{world.application.pk}/approve/"
    with (
        pool_locked(world.application.pool_id) as other,
        psycopg.connect(conninfo(), autocommit=True) as watch,
    ):
        first = Running(alice, url, "approve-slow")
        wait_until(lambda: waiting_on_locks(watch), "the first approval to wait on the pool")
        before = state()
        with web_limits("300ms", "0"):
            copy = client_for(alice).post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="approve-slow")
        assert state() == before
        other.rollback()
        assert first.join().status_code == 201
    assert copy.status_code == 409 and error_shape(copy.json())
    assert copy.json()["code"] == "idempotency_in_progress"
    assert copy["Retry-After"] == str(copy.json()["details"]["retry_after_seconds"])
    again = client_for(alice).post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="approve-slow")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_request_that_dies_takes_its_claim_with_it(world, alice):
    """The worker running the first request is killed (its connection cut, as by a crash or a PostgreSQL
    restart): a retry with the same key runs at once instead of waiting for an orphaned claim to expire."""
    url = f"/api/v1/applications/{world.application.pk}/approve/"
    with (
        pool_locked(world.application.pool_id) as other,
        psycopg.connect(conninfo(), autocommit=True) as watch,
    ):
        first = Running(alice, url, "approve-dies")
        (pid,) = wait_until(lambda: waiting_on_locks(watch), "the first approval to wait on the pool")
        watch.execute("SELECT pg_terminate_backend(%s)", [pid])
        dead = first.join()
        other.rollback()
    assert dead.status_code == 503 and dead.json()["code"] == "database_unavailable"
    assert not IdempotencyRecord.objects.filter(key="approve-dies").exists()
    retried = client_for(alice).post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="approve-dies")
    assert retried.status_code == 201, retried.json()
    assert LedgerEntry.objects.filter(award_id=retried.json()["id"], kind="commit").count() == 1
    assert_invariants()


def test_an_unfinished_claim_of_the_previous_release_is_409_until_it_expires(api, world, alice):
    """Claims committed without a response were left by the release that claimed outside the transaction."""
    url = f"/api/v1/applications/{world.application.pk}/reject/"
    first = api(alice).post(url, {"note": "n"}, format="json", HTTP_IDEMPOTENCY_KEY="old-claim")
    assert first.status_code == 200
    record = IdempotencyRecord.objects.get(key="old-claim")
    IdempotencyRecord.objects.filter(pk=record.pk).update(status_code=None, response_body=None)
    waiting = api(alice).post(url, {"note": "n"}, format="json", HTTP_IDEMPOTENCY_KEY="old-claim")
    assert waiting.status_code == 409 and waiting.json()["code"] == "idempotency_in_progress"
    assert 1 <= int(waiting["Retry-After"]) <= idempotency.CLAIM_TIMEOUT.total_seconds()
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        created_at=record.created_at - idempotency.CLAIM_TIMEOUT
    )
    taken_over = api(alice).post(url, {"note": "n"}, format="json", HTTP_IDEMPOTENCY_KEY="old-claim")
    # The retry ran (the application was rejected by the first request, so this one is refused): expired, the
    # claim no longer holds anyone back.
    assert taken_over.status_code == 409 and taken_over.json()["code"] == "invalid_transition"
