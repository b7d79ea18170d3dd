"""The admin site of the budget administration (§7).

City staff log in by role (the groups of grants.roles), not by the `is_staff` flag, and the budget dashboard lives at
/admin/dashboard/. Installed as the default admin site by grants.admin_apps.GrantsAdminConfig in INSTALLED_APPS, so
`admin.site` is this site everywhere.
"""

from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path
from django.utils.translation import gettext_lazy as _

from grants.login_policy import PolicyLoginFormMixin, refused_response


def may_use_admin(user: Any) -> bool:
    """Staff and the holders of a staff role; a provider's users work in the portal and the API only."""
    from grants.roles import PROVIDER, roles_of

    return bool(user.is_active and (user.is_staff or roles_of(user) - {PROVIDER}))


class RoleAuthenticationForm(PolicyLoginFormMixin, AdminAuthenticationForm):
    """Under the login policy (grants/login_policy.py) like every other way in."""

    def confirm_login_allowed(self, user: Any) -> None:
        if not may_use_admin(user):
            raise ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


class GrantsAdminSite(admin.AdminSite):
    site_header = _("Subsidy budget administration")
    site_title = _("Subsidy budgets")
    index_title = _("Budget administration")
    login_form = RoleAuthenticationForm

    @login_not_required  # like AdminSite.login itself
    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return refused_response(request, super().login(request, extra_context))

    def has_permission(self, request: HttpRequest) -> bool:
        return may_use_admin(request.user)

    def get_urls(self) -> list[URLPattern | URLResolver]:
        from grants.admin.dashboard import dashboard_view
        from grants.admin.fiscal import year_close_view

        return [
            path("dashboard/", self.admin_view(dashboard_view), name="dashboard"),
            path(
                "fiscal-years/<int:programme_id>/<int:year>/close/",
                self.admin_view(year_close_view),
                name="fiscal-year-close",
            ),
            *super().get_urls(),
        ]
