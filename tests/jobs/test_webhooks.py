"""Webhooks (§5.4): idempotent fan-out, signed delivery to a local receiver, back-off kept in the database."""

from datetime import timedelta

import pytest
from django.utils import timezone

from grants.models import BudgetAlert, WebhookDelivery, WebhookEndpoint
from grants.services import tracking, webhooks
from tests import factories as f

Status = WebhookDelivery.Status


@pytest.fixture
def endpoint(shanghai, receiver):
    return WebhookEndpoint.objects.create(city=shanghai, url=receiver.url, secret=receiver.secret)


def test_fan_out_creates_one_delivery_per_endpoint_and_event_however_often_called(
    endpoint, shanghai, hangzhou
):
    only_alerts = WebhookEndpoint.objects.create(
        city=shanghai, url="http://127.0.0.1:9/x", secret="k", events=["budget.alert"]
    )
    WebhookEndpoint.objects.create(city=hangzhou, url="http://127.0.0.1:9/y", secret="k")
    WebhookEndpoint.objects.create(city=shanghai, url="http://127.0.0.1:9/z", secret="k", active=False)

    first = webhooks.fan_out(city_id=shanghai.pk, event="money.moved", event_id="ledger-1", payload={"a": 1})
    again = webhooks.fan_out(city_id=shanghai.pk, event="money.moved", event_id="ledger-1", payload={"a": 1})
    alert = webhooks.fan_out(city_id=shanghai.pk, event="budget.alert", event_id="alert-1", payload={})

    assert first == again and len(first) == 1
    assert WebhookDelivery.objects.get(pk=first[0]).endpoint == endpoint
    assert {WebhookDelivery.objects.get(pk=i).endpoint for i in alert} == {endpoint, only_alerts}
    assert WebhookDelivery.objects.count() == 3


def test_delivery_is_signed_and_logged(endpoint, shanghai, receiver):
    (delivery_id,) = webhooks.fan_out(
        city_id=shanghai.pk, event="money.moved", event_id="ledger-7", payload={"amount": "1.00"}
    )
    assert webhooks.deliver(delivery_id=delivery_id) == Status.DELIVERED
    (request,) = receiver.requests
    assert request["verified"] and request["event_id"] == "ledger-7"
    assert request["body"]["data"] == {"amount": "1.00"} and request["body"]["event"] == "money.moved"
    d = WebhookDelivery.objects.get(pk=delivery_id)
    assert (d.status, d.attempts, d.last_status_code, d.last_error) == (Status.DELIVERED, 1, 200, "")
    assert d.delivered_at is not None
    # Delivered: a second run of the task posts nothing.
    assert webhooks.deliver(delivery_id=delivery_id) is None
    assert len(receiver.requests) == 1


def test_a_failed_delivery_is_retried_later_with_backoff_then_given_up(
    endpoint, shanghai, receiver, settings
):
    settings.JOBS_WEBHOOK_MAX_ATTEMPTS = 3
    receiver.status = 500
    (delivery_id,) = webhooks.fan_out(city_id=shanghai.pk, event="e", event_id="e-1", payload={})
    before = timezone.now()
    assert webhooks.deliver(delivery_id=delivery_id) == Status.PENDING
    d = WebhookDelivery.objects.get(pk=delivery_id)
    assert (d.attempts, d.last_status_code, d.last_error) == (1, 500, "HTTP 500")
    # First retry between half a minute and a minute later: not due now, so the sweep leaves it.
    assert before + timedelta(seconds=29) < d.next_attempt_at < timezone.now() + timedelta(seconds=61)
    assert webhooks.deliver(delivery_id=delivery_id) is None
    assert delivery_id not in webhooks.due_ids()

    for expected in (Status.PENDING, Status.FAILED):
        WebhookDelivery.objects.filter(pk=delivery_id).update(next_attempt_at=timezone.now())
        assert delivery_id in webhooks.due_ids()
        assert webhooks.deliver(delivery_id=delivery_id) == expected
    assert WebhookDelivery.objects.get(pk=delivery_id).attempts == 3
    assert len(receiver.requests) == 3


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    for attempts in range(1, 20):
        ceiling = min(60 * 2 ** (attempts - 1), 6 * 3600)
        delay = webhooks.backoff(attempts).total_seconds()
        assert ceiling / 2 <= delay <= ceiling


def test_an_unreachable_endpoint_is_logged_and_retried(shanghai, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # a closed port on this machine, allowed as a target
    endpoint = WebhookEndpoint.objects.create(city=shanghai, url="http://127.0.0.1:9/closed", secret="k")
    (delivery_id,) = webhooks.fan_out(city_id=shanghai.pk, event="e", event_id="e-2", payload={})
    assert webhooks.deliver(delivery_id=delivery_id) == Status.PENDING
    d = WebhookDelivery.objects.get(pk=delivery_id)
    # A generic reason: the exception's text ("[Errno 111] Connection refused") would map which ports answer.
    assert (d.last_status_code, d.last_error, d.endpoint) == (None, "connection failed", endpoint)


def test_signature_check_refuses_a_changed_body_a_wrong_secret_or_an_old_timestamp():
    import time

    ts = str(int(time.time()))
    sig = webhooks.sign("k", ts, b'{"a":1}')
    assert webhooks.verify("k", ts, b'{"a":1}', sig)
    assert not webhooks.verify("k", ts, b'{"a":2}', sig)
    assert not webhooks.verify("other", ts, b'{"a":1}', sig)
    old = str(int(time.time()) - 3600)
    assert not webhooks.verify("k", old, b'{"a":1}', webhooks.sign("k", old, b'{"a":1}'))


def test_tracking_fans_out_new_alerts_and_catches_up_money_events(
    endpoint, sh_programme, carols_startup, carol, alice, rita, receiver
):
    pool = f.pool(sh_programme, code="SML", cap="10000000")
    f.award(pool, carols_startup, carol, alice, rita, requested="5500000")
    result = tracking.track_pool(pool_id=pool.pk)
    events = dict(WebhookDelivery.objects.filter(pk__in=result.deliveries).values_list("event", "event_id"))
    alert = BudgetAlert.objects.get(pool=pool)
    assert events == {"budget.alert": f"alert-{alert.pk}", "money.moved": events["money.moved"]}
    # The job queued after the commit fans out the same money event: nothing new.
    entry_ids = list(pool.ledger_entries.values_list("pk", flat=True))
    assert tracking.fan_out_money_moved(pool_id=pool.pk, entry_ids=entry_ids) == [
        d for d in result.deliveries if WebhookDelivery.objects.get(pk=d).event == "money.moved"
    ]
    assert WebhookDelivery.objects.count() == 2
    for delivery_id in result.deliveries:
        webhooks.deliver(delivery_id=delivery_id)
    assert len(receiver.verified) == 2
