"""The jobs services ask for once their transaction has committed, queued by grants.tasks.

The tasks call the services, so the services cannot import the tasks without an import cycle
(tests/grants/test_import_graph.py). Instead the task module, when it is loaded, tells this one how to queue, and
grants.apps loads it in every process (web, worker, command) before any request or job runs. A service calls
these functions from `transaction.on_commit`, never inside its transaction.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Queue:
    # A transaction moved money in a pool (its ledger entries): track the pool and send the outbox's notice soon.
    money_moved: Callable[[int, list[int]], None]
    # An export was requested: run it.
    export: Callable[[int], None]
    # Notices were written with e-mails to send (grants.services.notifications): send them.
    notice_emails: Callable[[list[int]], None] | None = None


_queue: Queue | None = None


def connect(queue: Queue) -> None:
    global _queue
    _queue = queue


def _connected() -> Queue:
    if _queue is None:
        raise RuntimeError(
            "grants.tasks is not loaded: nothing can queue jobs (grants.apps loads it at start-up)"
        )
    return _queue


def money_moved(pool_id: int, entry_ids: list[int]) -> None:
    _connected().money_moved(pool_id, entry_ids)


def export(job_id: int) -> None:
    _connected().export(job_id)


def notice_emails(email_ids: list[int]) -> None:
    queue = _connected().notice_emails
    if queue is not None:
        queue(email_ids)
