"""Reports read from a PostgreSQL read replica when REPORTS_DATABASE_URL names one (docs/operations.md).

The report endpoints aggregate whole tables; on a replica they take nothing from the primary, which keeps taking
every write. Only the domain's tables are read there, and only while a report request is being answered: users,
tokens, sessions and idempotency records are always read from the primary, so a token created a moment ago works
at once even if the replica lags. A report may then trail the primary by the replica's lag (usually under a second).
"""

from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, cast

from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase

REPLICA = "replica"
REPORT_PATH_PREFIX = "/api/v1/reports/"
REPLICATED_APPS = {"grants", "cities"}
PRIMARY_ONLY_MODELS = {"apitoken", "idempotencyrecord", "exportjob", "staffscope"}

_answering_report: ContextVar[bool] = ContextVar("answering_report", default=False)


class ReportsReplicaRouter:
    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        meta = model._meta
        if (
            _answering_report.get()
            and meta.app_label in REPLICATED_APPS
            and meta.model_name not in PRIMARY_ONLY_MODELS
        ):
            return REPLICA
        return None

    def db_for_write(self, model: type[Any], **hints: Any) -> str | None:
        return None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        # Both aliases hold the same data: a row read from the replica may point at one read from the primary.
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return db != REPLICA


class ReportsReplicaMiddleware:
    """Marks GET and HEAD requests to the report endpoints for the router above."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.method not in ("GET", "HEAD") or not request.path_info.startswith(REPORT_PATH_PREFIX):
            return self.get_response(request)
        token = _answering_report.set(True)
        try:
            response = self.get_response(request)
        finally:
            _answering_report.reset(token)
        if isinstance(response, StreamingHttpResponse) and not response.is_async:
            # A streamed CSV runs its queries while the server sends it, after this method has returned.
            response.streaming_content = _on_replica(cast(Iterator[bytes], response.streaming_content))
        return response


def _on_replica(chunks: Iterable[Any]) -> Iterator[Any]:
    iterator = iter(chunks)
    while True:
        token = _answering_report.set(True)
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        finally:
            _answering_report.reset(token)
        yield chunk
