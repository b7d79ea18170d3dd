"""Cities, and who works where: the per-user city scope of officers, reviewers and auditors."""

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from cities.models import City, StaffScope
from grants.admin.base import ScopedAdmin


class CityForm(forms.ModelForm):
    class Meta:
        model = City
        fields = ["code", "name_en", "name_zh", "agency_en", "agency_zh", "agency_credit_code", "timezone"]

    def clean_agency_credit_code(self) -> str:
        # Stored as published (CN-USCI-<code>): the validator accepts lower case, the identifier is upper case.
        return self.cleaned_data["agency_credit_code"].upper()


@admin.register(City)
class CityAdmin(ScopedAdmin):
    city_path = "pk"
    form = CityForm
    list_display = ("code", "name_en", "name_zh", "agency_en", "agency_zh", "agency_credit_code", "timezone")
    search_fields = ("code", "name_en", "name_zh")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # programmes, institutions and the audit log point at cities


@admin.register(StaffScope)
class StaffScopeAdmin(admin.ModelAdmin):
    """Administrators only (no group holds these permissions): who may see which cities."""

    list_display = ("user", "all_cities", "city_codes")
    list_filter = ("all_cities", "cities")
    search_fields = ("user__username", "user__email")
    filter_horizontal = ("cities",)
    autocomplete_fields = ("user",)

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("user").prefetch_related("cities")

    @admin.display(description=_("cities"))
    def city_codes(self, scope: StaffScope) -> str:
        return ", ".join(c.code for c in scope.cities.all())


class StaffScopeInline(admin.StackedInline):
    model = StaffScope
    can_delete = True
    filter_horizontal = ("cities",)
    verbose_name_plural = _("city scope")


admin.site.unregister(User)


@admin.register(User)
class ScopedUserAdmin(UserAdmin):
    inlines = (*UserAdmin.inlines, StaffScopeInline)
    actions = ("reset_second_factor",)

    @admin.action(
        description=_("Reset the second factor (a lost phone): they enrol again at their next log-in")
    )
    def reset_second_factor(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        from grants import second_factor

        for user in queryset:
            second_factor.reset(user=user, actor=request.user)  # type: ignore[arg-type]  # admin_view: signed in
        self.message_user(request, _("Second factor reset for %(n)d user(s).") % {"n": queryset.count()})
