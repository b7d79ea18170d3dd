from django.conf.urls.i18n import i18n_patterns
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("", include("config.health")),
    path("api/v1/", include("grants.api.urls")),
    path("api/", include("grants.api.docs_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
]
urlpatterns += i18n_patterns(
    path("admin/", admin.site.urls),
    path("", include("grants.portal.urls")),
    prefix_default_language=False,
)
