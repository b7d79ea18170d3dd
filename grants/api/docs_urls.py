"""/api/schema/ (OpenAPI 3) and /api/docs/ (Swagger UI, its assets from drf-spectacular-sidecar: no CDN). The
split view serves its start-up script as a file of its own, so the content security policy needs no inline script."""

from django.urls import URLPattern, URLResolver, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns: list[URLPattern | URLResolver] = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]
