"""Notice e-mails for the service's operators (issue #16): which were sent, which wait for a retry and why, which
were given up. Read-only; administrators only (no role group is granted these rows: they hold people's notices)."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from grants.admin.base import ReadOnlyAdmin
from grants.models import NotificationEmail


class DeliveryFilter(admin.SimpleListFilter):
    title = _("delivery")
    parameter_name = "delivery"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("sent", _("sent")), ("waiting", _("waiting")), ("failed", _("given up"))]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[NotificationEmail]
    ) -> QuerySet[NotificationEmail]:
        if self.value() == "sent":
            return queryset.filter(sent_at__isnull=False)
        if self.value() == "waiting":
            return queryset.filter(sent_at__isnull=True, failed_at__isnull=True)
        if self.value() == "failed":
            return queryset.filter(failed_at__isnull=False)
        return queryset


@admin.register(NotificationEmail)
class NotificationEmailAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "notification",
        "attempts",
        "sent_at",
        "failed_at",
        "next_attempt_at",
        "last_error",
    )
    list_filter = (DeliveryFilter,)
    search_fields = ("notification__user__email", "notification__event")
    list_select_related = ("notification__user",)
    date_hierarchy = "created_at"
