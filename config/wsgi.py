"""The web process: gunicorn serves `application` (Procfile `web`).

Only here are the database's waits bounded (WEB_DB_LOCK_TIMEOUT, WEB_DB_STATEMENT_TIMEOUT; docs/operations.md).
A request stuck behind a row another transaction holds would otherwise keep its gunicorn worker for as long as the
lock lasts, and with every worker stuck so would /healthz and every other request. With the limits, PostgreSQL
cancels the wait, the request's transaction rolls back and the API answers 503 with Retry-After
(grants/api/errors.py). Migrations, management commands and the worker's long exports never import this module and
keep PostgreSQL's defaults.
"""

import os
from typing import Any

from django.core.wsgi import get_wsgi_application
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def bound_database_waits(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """Set the web process's limits on each new PostgreSQL connection (primary and report replica alike), once
    per connection: they last for its whole session, across the requests that reuse it."""
    if connection.vendor != "postgresql":
        return
    from django.conf import settings

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
            [f"{settings.WEB_DB_LOCK_TIMEOUT}s", f"{settings.WEB_DB_STATEMENT_TIMEOUT}s"],
        )


connection_created.connect(bound_database_waits, dispatch_uid="config.wsgi.bound_database_waits")
application = get_wsgi_application()
