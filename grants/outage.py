"""Going on without Redis: the one rule every request-path use of the cache or the broker follows.

When the shared service fails, the caller falls back (counts in its own process, leaves the work in the database
for beat) and leaves the service alone for RETRY_SECONDS, so one failure, not every request, pays its connection
timeout. The outage is logged once when it starts and once when it ends, not once per request. Used by the API's
rate limits (grants/api/throttling.py), the login policy (grants/login_policy.py) and the after-commit kick of the
worker (grants/tasks.py).
"""

import logging
import time

logger = logging.getLogger(__name__)

RETRY_SECONDS = 5.0


class Outage:
    """Whether a shared service is being used or skipped in this process. `fallback` says, for the log, what the
    process does meanwhile."""

    def __init__(self, service: str, fallback: str) -> None:
        self.service = service
        self.fallback = fallback
        self.retry_at = 0.0
        self.down_since: float | None = None

    def usable(self) -> bool:
        """False while the service is left alone after a failure."""
        return time.monotonic() >= self.retry_at

    def failed(self, exc: BaseException) -> None:
        self.retry_at = time.monotonic() + RETRY_SECONDS
        if self.down_since is None:
            self.down_since = time.monotonic()
            logger.warning(
                "%s unreachable: %s; tried again every %.0f s: %s: %s",
                self.service,
                self.fallback,
                RETRY_SECONDS,
                type(exc).__name__,
                exc,
            )

    def answered(self) -> None:
        if self.down_since is not None:
            logger.warning(
                "%s reachable again after %.0f s", self.service, time.monotonic() - self.down_since
            )
            self.down_since = None
