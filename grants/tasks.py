"""Celery tasks. Thin: they take ids and call services."""

import logging

logger = logging.getLogger(__name__)


def money_moved(pool_id: int, entry_ids: list[int]) -> None:
    """Called after a transaction that moved money in a pool commits (never inside it)."""
    logger.debug("money moved in pool %s: ledger entries %s", pool_id, entry_ids)
