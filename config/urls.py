import sys

from django.conf.urls.i18n import i18n_patterns
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, URLResolver, include, path
from django.utils.translation import gettext as _
from django.views import defaults

from grants.api.errors import database_error, error_body
from grants.portal.views.notices import set_language

urlpatterns: list[URLPattern | URLResolver] = [
    path("", include("config.health")),
    path("api/v1/", include("grants.api.urls")),
    path("api/", include("grants.api.docs_urls")),
    # Django's language switch, remembering the choice on the signed-in person's profile (their e-mails' language).
    path("i18n/setlang/", set_language, name="set_language"),
    path("i18n/", include("django.conf.urls.i18n")),
]
urlpatterns += i18n_patterns(
    path("admin/", admin.site.urls),
    path("second-factor/", include("grants.second_factor_views")),  # staff, after the password
    path("", include("grants.portal.urls")),
    prefix_default_language=False,
)


# Django answers these itself, outside any API view: an unmatched URL or an id the path converter refuses (404), a
# disallowed host or other suspicious request (400), a PermissionDenied raised outside DRF (403), an exception no
# handler caught (500). Under /api/ a client gets the API's error shape, as from the views; elsewhere the site's
# HTML pages stay.


def _in_api(request: HttpRequest) -> bool:
    return request.path_info == "/api" or request.path_info.startswith("/api/")


def _api_error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _in_api(request):
        return _api_error(400, "bad_request", _("The request was refused."))
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _in_api(request):
        return _api_error(403, "permission_denied", _("You may not do this."))
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _in_api(request):
        return _api_error(404, "not_found", _("Not found."))
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _in_api(request):
        # Django calls this inside its `except`: a database that failed outside a view (in a middleware, say) is
        # the same 503 as inside one.
        exc = sys.exc_info()[1]
        unavailable = database_error(exc) if exc is not None else None
        if unavailable is not None:
            status, body, headers = unavailable
            return JsonResponse(body, status=status, headers=headers)
        return _api_error(500, "server_error", _("Something went wrong on our side; it has been logged."))
    return defaults.server_error(request)


handler400 = bad_request
handler403 = permission_denied
handler404 = page_not_found
handler500 = server_error
