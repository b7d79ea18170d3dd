"""Celery tasks (§5). Thin: they take ids, call a service, and are safe to run twice (docs/jobs.md).

Delivery is at least once (acks late, redelivery after a worker dies), so each service makes a second run a
no-op: tracking claims the pool by a conditional update, webhook deliveries are leased, exports claimed. Work is
queued only after its transaction commits; if the broker is down then, nothing fails: the database says what is
due (FundingPool.tracking_due_at, WebhookDelivery.next_attempt_at, pending ExportJob) and the beat sweeps catch up.
"""

import logging
import os
import time
from pathlib import Path
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from grants.models import FundingPool
from grants.services import exports, tracking, webhooks, windows
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
# The job drops the claim before it reads, so a commit after that read queues a new job. With Redis the claim is
# SET NX with a TTL; with the filesystem broker (one machine) it is a file created exclusively.
CLAIM_TTL_SECONDS = 60


def _claim_key(pool_id: int) -> str:
    return f"grants:track-queued:{pool_id}"


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=2)


def _claim_path(pool_id: int) -> Path:
    return Path(settings.CELERY_DATA_DIR) / "claims" / f"track-{pool_id}"


def claim_tracking(pool_id: int) -> bool:
    """True if this caller should queue the pool's tracking job (nobody queued one in the coalescing window)."""
    if settings.REDIS_URL:
        return bool(_redis().set(_claim_key(pool_id), "1", nx=True, ex=CLAIM_TTL_SECONDS))
    path = _claim_path(pool_id)
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


def release_tracking(pool_id: int) -> None:
    try:
        if settings.REDIS_URL:
            _redis().delete(_claim_key(pool_id))
        else:
            _claim_path(pool_id).unlink(missing_ok=True)
    except Exception:
        # Without the release the claim expires by itself; the sweep tracks the pool meanwhile.
        logger.warning("could not release the tracking claim of pool %s", pool_id, exc_info=True)


# --- Hooks called after commits -----------------------------------------------------------------------------


def money_moved(pool_id: int, entry_ids: list[int]) -> None:
    """Called after a transaction that moved money in a pool commits (never inside it): queue the pool's
    coalesced tracking job and the money-moved webhooks. Never raises: the request that moved the money has
    succeeded, and if the broker is down the tracking sweep finds the pool by its tracking_due_at."""
    claimed = False
    try:
        claimed = claim_tracking(pool_id)
        if claimed:
            track_pool.apply_async((pool_id,), countdown=settings.JOBS_TRACKING_COALESCE_SECONDS)
    except Exception as exc:
        logger.warning("could not queue tracking of pool %s; the sweep will catch up: %s", pool_id, exc)
        if claimed:
            release_tracking(pool_id)
    try:
        fan_out_money_moved.delay(pool_id, entry_ids)
    except Exception as exc:
        logger.warning(
            "could not queue the money-moved webhooks of pool %s; tracking will catch up: %s", pool_id, exc
        )


def _queue_deliveries(delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        try:
            deliver_webhook.delay(delivery_id)
        except Exception:
            logger.warning("could not queue webhook delivery %s; the sweep will send it", delivery_id)
            return


def queue_export(job_id: int) -> None:
    try:
        export.delay(job_id)
    except Exception as exc:
        logger.warning("could not queue export %s; the sweep will: %s", job_id, exc)


# --- Tasks --------------------------------------------------------------------------------------------------


@shared_task(name="grants.track_pool", **RETRY)
def track_pool(pool_id: int) -> dict[str, Any]:
    release_tracking(pool_id)
    try:
        result = tracking.track_pool(pool_id=pool_id)
    except FundingPool.DoesNotExist:
        logger.warning("pool %s no longer exists", pool_id)
        return {"pool": pool_id, "ran": False}
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


@shared_task(name="grants.close_windows", **RETRY)
def close_windows() -> dict[str, list[int]]:
    return windows.close_windows()


# An export may run far longer than the visibility timeout, so it is acknowledged on receipt instead of after:
# its state is in ExportJob, and the sweep queues again a job whose message was lost.
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
def sweep_exports() -> int:
    ids = exports.stale_jobs()
    for job_id in ids:
        export.delay(job_id)
    return len(ids)
