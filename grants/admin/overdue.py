"""What is late, in the admin: a list filter and a flag column on tranches, and the dashboard's "Overdue" panel.

Overdue has one definition per kind of thing, in grants.selectors: tranches (`overdue_tranche_q`: past their
scheduled date and still open in the workflow) and reporting duties (`overdue_duties`: a report still owed after its
due date). Both are asked with the site's local date (Asia/Shanghai), so a tranche due today is not late until
tomorrow in Shanghai, whatever the server's clock zone.
"""

from datetime import date
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy

from grants import selectors
from grants.models import Tranche


def today() -> date:
    return timezone.localdate()


class OverdueTrancheFilter(admin.SimpleListFilter):
    title = gettext_lazy("overdue")
    parameter_name = "overdue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("yes", gettext_lazy("overdue: past its date, not paid")),
            ("no", gettext_lazy("not overdue")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(selectors.overdue_tranche_q(today()))
        if self.value() == "no":
            return queryset.exclude(selectors.overdue_tranche_q(today()))
        return queryset


class OverdueTrancheColumn:
    """An `overdue` flag column for a list of tranches."""

    @admin.display(description=gettext_lazy("overdue"), boolean=True)
    def overdue(self, tranche: Tranche) -> bool:
        return selectors.tranche_is_overdue(tranche, today())
