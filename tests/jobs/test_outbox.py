"""The outbox: every posting of money leaves one notice in its own transaction, and the drain sends each notice
(money-moved webhooks, tracking) once, whatever the broker did at the commit."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from grants import services, tasks
from grants.errors import BudgetExceeded
from grants.models import LedgerEntry, OutboxMessage, UsageSnapshot, WebhookDelivery, WebhookEndpoint
from grants.services import outbox
from tests import factories as f
from tests.grants.invariants import refused


@pytest.fixture
def money_hook(shanghai, receiver):
    return WebhookEndpoint.objects.create(
        city=shanghai, url=receiver.url, secret=receiver.secret, events=["money.moved"]
    )


@pytest.fixture
def small_pool(sh_programme):
    return f.pool(sh_programme, code="SML", cap="10000000")


def test_a_posting_leaves_one_notice_naming_its_entries(small_pool, carols_startup, carol, alice, rita):
    award = f.award(small_pool, carols_startup, carol, alice, rita, requested="2000000")
    (notice,) = OutboxMessage.objects.all()
    assert notice.pool_id == small_pool.pk and notice.sent_at is None
    assert notice.entry_ids == list(
        LedgerEntry.objects.filter(award=award).order_by("pk").values_list("pk", flat=True)
    )


def test_a_refused_posting_leaves_no_notice(small_pool, carols_startup, carol, alice, rita):
    f.award(small_pool, carols_startup, carol, alice, rita, requested="9000000")
    app = f.application(small_pool, carols_startup, carol, requested="2000000", cost="8000000")
    f.reviewed(app, carol, alice, rita)
    with refused(BudgetExceeded, level="pool_cap"):
        services.approve_application(application=app, actor=alice)
    assert OutboxMessage.objects.count() == 1


def test_a_notice_is_written_in_the_postings_transaction_and_sent_after_it(
    small_pool, carols_startup, carol, alice, rita, monkeypatch, django_capture_on_commit_callbacks
):
    kicked: list[int] = []
    monkeypatch.setattr(tasks, "money_moved", lambda pool_id, entry_ids: kicked.append(pool_id))
    with django_capture_on_commit_callbacks(execute=True):
        f.award(small_pool, carols_startup, carol, alice, rita, requested="2000000")
        assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 1
        assert kicked == []  # nothing is queued inside the transaction
    assert kicked == [small_pool.pk]


def test_draining_fans_out_each_money_moved_event_once_and_marks_the_notice_sent(
    money_hook, small_pool, carols_startup, carol, alice, rita
):
    f.award(small_pool, carols_startup, carol, alice, rita, requested="2000000")
    f.award(small_pool, carols_startup, carol, alice, rita, requested="1000000")
    drained = outbox.drain()
    assert (drained.sent, drained.pools, len(drained.deliveries)) == (2, [small_pool.pk], 2)
    assert not OutboxMessage.objects.filter(sent_at__isnull=True).exists()
    first_entries = sorted(OutboxMessage.objects.values_list("entry_ids", flat=True))
    events = sorted(WebhookDelivery.objects.values_list("event_id", flat=True))
    assert events == sorted(f"ledger-{ids[0]}" for ids in first_entries)

    assert outbox.drain().sent == 0  # a second drain finds nothing
    # A drain that died before its commit sends the same notices again: no delivery is added.
    OutboxMessage.objects.update(sent_at=None)
    assert outbox.drain().sent == 2
    assert WebhookDelivery.objects.count() == 2


def test_a_city_without_money_moved_endpoints_gets_its_notices_marked_sent_with_no_deliveries(
    small_pool, carols_startup, carol, alice, rita
):
    f.award(small_pool, carols_startup, carol, alice, rita, requested="2000000")
    drained = outbox.drain()
    assert (drained.sent, drained.deliveries) == (1, [])
    assert not WebhookDelivery.objects.exists()


def test_sent_notices_are_deleted_after_a_week(small_pool, carols_startup, carol, alice, rita):
    f.award(small_pool, carols_startup, carol, alice, rita, requested="2000000")
    outbox.drain(now=timezone.now() - outbox.KEEP_SENT - timedelta(minutes=1))
    f.award(small_pool, carols_startup, carol, alice, rita, requested="1000000")
    outbox.drain()
    assert OutboxMessage.objects.count() == 1


def test_notices_of_a_broker_outage_are_delivered_by_the_next_drain(
    eager, money_hook, receiver, small_pool, carols_startup, carol, alice, rita, monkeypatch,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    def down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.track_pool, "apply_async", down)
    with django_capture_on_commit_callbacks(execute=True):
        award = f.award(small_pool, carols_startup, carol, alice, rita, requested="2000000")
    assert not receiver.requests and not UsageSnapshot.objects.exists()  # the request succeeded, nothing sent
    monkeypatch.undo()
    monkeypatch.setattr(tasks.broker, "retry_at", 0.0)

    assert tasks.drain_outbox() == {"sent": 1, "pools": 1}  # beat's drain, once the broker is back
    (request,) = receiver.requests
    assert request["verified"] and request["event"] == "money.moved"
    assert [e["award"] for e in request["body"]["data"]["entries"]] == [award.pk]
    assert UsageSnapshot.objects.get(pool=small_pool).committed == 2000000
    assert tasks.drain_outbox() == {"sent": 0, "pools": 0}
    assert len(receiver.requests) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_drains_at_once_take_different_notices(shanghai, carol, alice, rita):
    pool = f.pool(f.programme(shanghai), code="SML", cap="10000000")
    inst = f.institution(shanghai, carol, type="startup")
    for requested in ("1000000", "2000000", "3000000"):
        f.award(pool, inst, carol, alice, rita, requested=requested)
    first = OutboxMessage.objects.order_by("pk").first()
    assert first is not None
    holding, release = threading.Event(), threading.Event()

    def another_drain_holds_the_first() -> None:
        try:
            with transaction.atomic():
                OutboxMessage.objects.select_for_update().get(pk=first.pk)
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=another_drain_holds_the_first)
    thread.start()
    try:
        assert holding.wait(10)
        drained = outbox.drain()  # does not wait for the held row
        assert drained.sent == 2
        assert list(OutboxMessage.objects.filter(sent_at__isnull=True).values_list("pk", flat=True)) == [
            first.pk
        ]
    finally:
        release.set()
        thread.join(10)
    assert outbox.drain().sent == 1
