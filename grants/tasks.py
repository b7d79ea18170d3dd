"""Celery tasks (§5). Thin: they take ids, call a service, and are safe to run twice (docs/jobs.md).

Delivery is at least once (acks late, redelivery after a worker dies), so each service makes a second run a
no-op: tracking claims the pool by a conditional update, webhook deliveries are leased, exports claimed. Work is
queued only after its transaction commits; if the broker is down then, nothing fails: the database says what is
due (OutboxMessage not sent, FundingPool.tracking_due_at, WebhookDelivery.next_attempt_at, pending ExportJob) and
beat's drain and sweeps catch up.
"""

import functools
import logging
import os
import time
from pathlib import Path
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from grants.outage import Outage
from grants.services import (
    after_commit,
    exports,
    notifications,
    outbox,
    proposals,
    reminders,
    tracking,
    vouchers,
    webhooks,
    windows,
)
from grants.services.payments import release_due_tranches

logger = logging.getLogger(__name__)

# Transient failures (a database restart, a deadlock victim) are retried with exponential back-off and jitter,
# kept short: a countdown waits in the broker, and with acks late a countdown longer than the visibility timeout
# would be delivered twice. Longer waits belong in the database and the sweeps.
RETRY: dict[str, Any] = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 20,
    "retry_jitter": True,
    "max_retries": 5,
}


# --- Coalescing ---------------------------------------------------------------------------------------------
# A burst of approvals in one pool queues one tracking job: the first commit takes a short-lived claim on the
# pool and queues the job a couple of seconds later; commits meanwhile find the claim taken and queue nothing.
# The job drops the claim before it reads, so a commit after that read queues a new job. The outbox drain is
# coalesced the same way, over all pools. With Redis a claim is SET NX with a TTL; with the filesystem broker (one
# machine) it is a file created exclusively.
CLAIM_TTL_SECONDS = 60
OUTBOX_CLAIM = "outbox"


def _claim_key(name: str) -> str:
    return f"grants:track-queued:{name}" if name != OUTBOX_CLAIM else "grants:outbox-queued"


@functools.cache
def _redis_client(url: str) -> Any:
    """One client, so one connection pool, per process and URL: a claim reuses a connection instead of opening
    one. redis-py's pool notices a fork and opens new connections in the child."""
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)


def _redis() -> Any:
    return _redis_client(settings.REDIS_URL)


def _claim_path(name: str) -> Path:
    return Path(settings.CELERY_DATA_DIR) / "claims" / (f"track-{name}" if name != OUTBOX_CLAIM else name)


def _claim(name: str) -> bool:
    if settings.REDIS_URL:
        return bool(_redis().set(_claim_key(name), "1", nx=True, ex=CLAIM_TTL_SECONDS))
    path = _claim_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _attempt in range(2):
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            try:
                if time.time() - path.stat().st_mtime < CLAIM_TTL_SECONDS:
                    return False
                path.unlink()  # a claim left by a job that never ran
            except FileNotFoundError:
                pass
    return False


def _release(name: str) -> None:
    try:
        if settings.REDIS_URL:
            _redis().delete(_claim_key(name))
        else:
            _claim_path(name).unlink(missing_ok=True)
    except Exception:
        # Without the release the claim expires by itself; the sweeps cover the gap meanwhile.
        logger.warning("could not release the claim %s", name, exc_info=True)


def claim_tracking(pool_id: int) -> bool:
    """True if this caller should queue the pool's tracking job (nobody queued one in the coalescing window)."""
    return _claim(str(pool_id))


def release_tracking(pool_id: int) -> None:
    _release(str(pool_id))


def kick_tracking(pool_id: int) -> None:
    """Queue the pool's coalesced tracking job unless one is queued already. Raises if the broker is down."""
    claimed = claim_tracking(pool_id)
    if not claimed:
        return
    try:
        track_pool.apply_async((pool_id,), countdown=settings.JOBS_TRACKING_COALESCE_SECONDS)
    except Exception:
        release_tracking(pool_id)
        raise


def kick_outbox() -> None:
    """Queue a drain of the outbox unless one is queued already. Raises if the broker is down."""
    if not _claim(OUTBOX_CLAIM):
        return
    try:
        drain_outbox.apply_async(countdown=settings.JOBS_OUTBOX_COALESCE_SECONDS)
    except Exception:
        _release(OUTBOX_CLAIM)
        raise


# --- Hooks called after commits -----------------------------------------------------------------------------
# After a failed attempt, requests leave the broker alone for a few seconds (grants/outage.py): the work is in the
# database (outbox, tracking_due_at) and beat catches up, and an outage must not add the broker's timeouts to every
# request.
broker = Outage("broker", "money-moved notices stay in the outbox and beat's drain and sweep will catch up")


def money_moved(pool_id: int, entry_ids: list[int]) -> None:
    """Called after a transaction that moved money in a pool commits (never inside it): a prompt kick, so the
    notice the transaction left in the outbox goes out within seconds and the pool is tracked. Never raises: the
    request that moved the money has succeeded, and if the broker is down beat's drain and sweep catch up."""
    if not broker.usable():
        return
    try:
        kick_tracking(pool_id)
        kick_outbox()
    except Exception as exc:
        broker.failed(exc)
        return
    broker.answered()


def _queue_deliveries(delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        try:
            deliver_webhook.delay(delivery_id)
        except Exception:
            logger.warning("could not queue webhook delivery %s; the sweep will send it", delivery_id)
            return


def queue_notice_emails(email_ids: list[int]) -> None:
    """After a commit that wrote notices: one task per e-mail, each retried on its own. Never raises: the e-mails
    are in the outbox and beat's sweep sends them if the broker is down."""
    for email_id in email_ids:
        try:
            send_notice_email.delay(email_id)
        except Exception as exc:
            logger.warning("could not queue notice e-mail %s; the sweep will: %s", email_id, exc)
            return


def queue_export(job_id: int) -> None:
    try:
        export.delay(job_id)
    except Exception as exc:
        logger.warning("could not queue export %s; the sweep will: %s", job_id, exc)


# How the services queue their jobs after a commit (they cannot import this module, which calls them). The names
# are looked up at each call, so a test may replace either function here.
after_commit.connect(
    after_commit.Queue(
        money_moved=lambda pool_id, entry_ids: money_moved(pool_id, entry_ids),
        export=lambda job_id: queue_export(job_id),
        notice_emails=lambda email_ids: queue_notice_emails(email_ids),
    )
)


# --- Tasks --------------------------------------------------------------------------------------------------


@shared_task(name="grants.track_pool", **RETRY)
def track_pool(pool_id: int) -> dict[str, Any]:
    """Track one pool after a commit moved its money: a batch of one through the sweep's path (a pool since deleted,
    or held by another run, is left alone: ran False)."""
    release_tracking(pool_id)
    result = tracking.track_pool(pool_id=pool_id)
    _queue_deliveries(result.deliveries)
    return {"pool": pool_id, "ran": result.ran, "raised": result.raised, "cleared": result.cleared}


@shared_task(name="grants.track_pools", **RETRY)
def track_pools(pool_ids: list[int]) -> dict[str, Any]:
    """Track a chunk of pools in a few set-based statements (the sweep's way); safe to run twice."""
    results = tracking.track_pools(pool_ids=pool_ids)
    _queue_deliveries([d for r in results for d in r.deliveries])
    return {"pools": len(pool_ids), "tracked": len(results), "raised": sum(len(r.raised) for r in results)}


# Pools per queued sweep job: a sweep of more pools than this is shared out among the workers.
SWEEP_CHUNK = 1000


@shared_task(name="grants.sweep_tracking", **RETRY)
def sweep_tracking() -> int:
    """Queue tracking of every pool that is due, or open and not tracked lately, in chunks; a pool tracked
    meanwhile (by its coalesced job or another sweep) is skipped by the chunk's run."""
    pool_ids = list(tracking.pools_to_track().values_list("pk", flat=True))
    for start in range(0, len(pool_ids), SWEEP_CHUNK):
        track_pools.delay(pool_ids[start : start + SWEEP_CHUNK])
    return len(pool_ids)


# Drains per task run, at most: a long backlog (after an outage) is worked through in several runs of the drain
# rather than one that outlasts the time limit; each run asks for the next.
DRAIN_ROUNDS = 10


@shared_task(name="grants.drain_outbox", **RETRY)
def drain_outbox() -> dict[str, int]:
    """Send the outbox's money-moved notices (queued after commits, coalesced, and by beat); safe to run twice."""
    _release(OUTBOX_CLAIM)  # before reading: a commit after the read kicks the next drain
    sent, pools = 0, set[int]()
    for _round in range(DRAIN_ROUNDS):
        drained = outbox.drain()
        sent += drained.sent
        pools.update(drained.pools)
        _queue_deliveries(drained.deliveries)
        if drained.sent < outbox.DRAIN_BATCH:
            break
    else:
        drain_outbox.delay()
    for pool_id in outbox.pools_due(sorted(pools)):
        try:
            kick_tracking(pool_id)
        except Exception:
            logger.warning("could not queue tracking of pool %s; the sweep will", pool_id)
            break
    return {"sent": sent, "pools": len(pools)}


# No longer queued (the outbox drain fans money-moved events out); kept so that messages queued by the previous
# release during an upgrade still run.
@shared_task(name="grants.fan_out_money_moved", **RETRY)
def fan_out_money_moved(pool_id: int, entry_ids: list[int]) -> int:
    deliveries = tracking.fan_out_money_moved(pool_id=pool_id, entry_ids=entry_ids)
    _queue_deliveries(deliveries)
    return len(deliveries)


@shared_task(name="grants.deliver_webhook", **RETRY)
def deliver_webhook(delivery_id: int) -> str | None:
    return webhooks.deliver(delivery_id=delivery_id)


@shared_task(name="grants.sweep_webhooks", **RETRY)
def sweep_webhooks() -> int:
    ids = webhooks.due_ids()
    _queue_deliveries(ids)
    return len(ids)


@shared_task(name="grants.release_tranches", **RETRY)
def release_tranches() -> int:
    return len(release_due_tranches())


@shared_task(name="grants.expire_proposals", **RETRY)
def expire_proposals() -> int:
    """Proposals awaiting a second officer past their expiry: released (grants/services/proposals.py)."""
    return len(proposals.expire_proposals())


@shared_task(name="grants.expire_vouchers", **RETRY)
def expire_vouchers() -> int:
    """Vouchers past their validity: what they did not spend is de-committed, once (grants/services/vouchers.py)."""
    return vouchers.expire_vouchers()


@shared_task(name="grants.close_windows", **RETRY)
def close_windows() -> dict[str, list[int]]:
    return windows.close_windows()


# An export may run far longer than the visibility timeout, so it is acknowledged on receipt instead of after:
# its state is in ExportJob, and the sweep queues again a job whose message was lost or whose worker died
# (grants.services.exports says how a live export is told from a dead one).
@shared_task(
    name="grants.export",
    acks_late=False,
    soft_time_limit=settings.JOBS_EXPORT_TIME_LIMIT - 30,
    time_limit=settings.JOBS_EXPORT_TIME_LIMIT,
    **RETRY,
)
def export(job_id: int) -> str | None:
    job = exports.run_export(job_id=job_id)
    return job.status if job else None


@shared_task(name="grants.sweep_exports", **RETRY)
def sweep_exports() -> dict[str, list[int]]:
    swept = exports.sweep()
    for job_id in swept.queued:
        queue_export(job_id)
    return {"queued": swept.queued, "failed": swept.failed, "expired": swept.expired}


# Acknowledged on receipt with a long time limit, like exports: a first run over years of data may take long, and an
# interrupted one loses nothing (each row is done in its own transaction; tomorrow's run carries on).
@shared_task(
    name="grants.apply_retention",
    acks_late=False,
    soft_time_limit=settings.RETENTION_TIME_LIMIT - 30,
    time_limit=settings.RETENTION_TIME_LIMIT,
    **RETRY,
)
def apply_retention() -> dict[str, int]:
    from grants.services import retention

    return retention.apply_retention().counts()


# --- Notices (grants/services/notifications.py) ---------------------------------------------------------------
# A failed send (the relay refused, timed out, was unreachable: OSError covers smtplib's errors) is retried by the
# task a few times with short back-off, like the transient database failures above; longer waits are the sweep's,
# from NotificationEmail.next_attempt_at, up to NOTIFY_EMAIL_MAX_ATTEMPTS sends in all.
MAIL_RETRY: dict[str, Any] = {**RETRY, "autoretry_for": (OSError, OperationalError, InterfaceError)}


@shared_task(name="grants.send_notice_email", **MAIL_RETRY)
def send_notice_email(email_id: int) -> str:
    return notifications.send_email(email_id)


@shared_task(name="grants.sweep_notice_emails", **RETRY)
def sweep_notice_emails() -> int:
    """Queue the e-mails whose prompt task was lost or whose retries ran out before the relay came back."""
    ids = notifications.emails_due()
    queue_notice_emails(ids)
    return len(ids)


@shared_task(name="grants.send_reminders", **RETRY)
def send_reminders() -> dict[str, int]:
    """The daily reminders of reports due in 30 and 7 days and overdue; a second run the same day sends nothing."""
    return reminders.send_reminders()
