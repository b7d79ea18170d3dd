"""The outbox (docs/jobs.md): every posting of money leaves a notice in the database, in its own transaction.

A notice queued to the broker after COMMIT is lost if the broker is down at that moment; a row written before
COMMIT exists exactly when the money moved. The worker drains the rows: it fans out the posting's money-moved
webhooks (one delivery per endpoint and event id, whatever runs twice) and marks the row sent, in one transaction;
the task then queues the deliveries and the coalesced tracking of the pools (grants/tasks.py). Tracking itself is
also due in the database (FundingPool.tracking_due_at), so a pool is tracked even if that last step is lost.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from grants.models import FundingPool, Notification, NotificationEmail, OutboxMessage
from grants.services import tracking, webhooks

# Messages per drain transaction: their rows stay locked for the fan-out of their webhooks (a few statements each).
DRAIN_BATCH = 200
# Sent messages are kept this long, to answer "was this posting announced?", then deleted by the drain.
KEEP_SENT = timedelta(days=7)
# A notice's e-mail is queued to the worker at its commit; the sweep picks it up only if still unsent this long after.
EMAIL_SWEEP_GRACE = timedelta(minutes=1)


@dataclass
class Drained:
    """What one drain sent: how many messages, the pools whose money they announced, the webhook deliveries."""

    sent: int = 0
    pools: list[int] = field(default_factory=list)
    deliveries: list[int] = field(default_factory=list)


def record_money_moved(*, pool_id: int, entry_ids: list[int]) -> OutboxMessage:
    """Called inside the transaction that wrote the entries (grants.services.budget): rolled back with them."""
    return OutboxMessage.objects.create(pool_id=pool_id, entry_ids=entry_ids)


def pending() -> int:
    return OutboxMessage.objects.filter(sent_at__isnull=True).count()


def drain(*, limit: int = DRAIN_BATCH, now: datetime | None = None) -> Drained:
    """Send up to `limit` unsent messages, oldest first, in one transaction.

    The rows are taken FOR UPDATE SKIP LOCKED: two drains at once (two workers, beat's drain beside a prompt one)
    take different messages instead of waiting for each other. A drain that dies before its COMMIT leaves its
    messages unsent for the next one, which fans them out again: that adds nothing (one_delivery_per_event).
    """
    now = now or timezone.now()
    with transaction.atomic():
        messages = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(sent_at__isnull=True)
            .order_by("pk")[:limit]
        )
        if not messages:
            return Drained()
        pool_ids = sorted({m.pool_id for m in messages})
        city_of = dict(FundingPool.objects.filter(pk__in=pool_ids).values_list("pk", "programme__city_id"))
        # Most cities have no money-moved endpoint: one query per city instead of building every payload.
        hooked = {
            city: bool(webhooks.endpoints_for(city, tracking.MONEY_MOVED)) for city in set(city_of.values())
        }
        deliveries: list[int] = []
        for message in messages:
            if hooked[city_of[message.pool_id]]:
                deliveries += tracking.fan_out_money_moved(
                    pool_id=message.pool_id, entry_ids=message.entry_ids
                )
        OutboxMessage.objects.filter(pk__in=[m.pk for m in messages]).update(sent_at=now)
    OutboxMessage.objects.filter(sent_at__lt=now - KEEP_SENT).delete()
    return Drained(sent=len(messages), pools=pool_ids, deliveries=deliveries)


def record_email(notification: Notification) -> NotificationEmail:
    """The e-mail of a notice, called inside the transaction that wrote it (grants.services.notifications.notify):
    it exists exactly when the notice does. Sent by the worker after COMMIT; beat's sweep sends it if the task
    queued after the commit was lost."""
    return NotificationEmail.objects.create(
        notification=notification, next_attempt_at=notification.created_at
    )


def emails_due(*, now: datetime, limit: int) -> list[int]:
    """E-mails neither sent nor given up, past their next attempt and not claimed by a live run, oldest first.
    The sweep waits EMAIL_SWEEP_GRACE after an e-mail was written, so it leaves the prompt task its chance."""
    return list(
        NotificationEmail.objects.filter(
            sent_at__isnull=True,
            failed_at__isnull=True,
            next_attempt_at__lte=now - EMAIL_SWEEP_GRACE,
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def pools_due(pool_ids: list[int]) -> list[int]:
    """Those of the pools whose tracking is still due (not tracked since their money last moved)."""
    return list(
        FundingPool.objects.filter(pk__in=pool_ids, tracking_due_at__isnull=False)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
