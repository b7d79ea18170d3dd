"""Installs grants.admin_site.GrantsAdminSite as the default admin site (`admin.site`).

Listed in INSTALLED_APPS instead of django.contrib.admin; kept apart from the site because this module is imported
while the app registry is being built, before any model or form may be.
"""

from django.contrib.admin.apps import AdminConfig


class GrantsAdminConfig(AdminConfig):
    default_site = "grants.admin_site.GrantsAdminSite"
