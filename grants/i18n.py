"""Which language a page is in: the reader's choice first, then what their browser prefers.

The portal and the admin live inside `i18n_patterns` with English unprefixed (`/calls/`) and Chinese under
`/zh-hans/`. Django's LocaleMiddleware serves an unprefixed URL in English whatever the browser asks for, so a
reader whose browser prefers Chinese would meet English on their first visit. `PreferredLanguageMiddleware`
sends such a reader to the same page under their language's prefix instead; the language switch
(`/i18n/setlang/`) stores the choice in Django's language cookie, which then outranks the browser (so a reader who
chose English stays on the unprefixed pages).
"""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import translate_url
from django.utils import translation
from django.utils.cache import patch_vary_headers

from grants.models import UserProfile


def stored_language(request: HttpRequest) -> str | None:
    """The language a signed-in person chose (the language switch and the notice preferences store it on their
    profile, grants/services/notifications.py), if they ever did: it follows them to a new browser."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    language = UserProfile.objects.filter(user_id=user.pk).values_list("language", flat=True).first()
    try:
        return translation.get_supported_language_variant(language) if language else None
    except LookupError:
        return None


def preferred_language(request: HttpRequest) -> str:
    """The reader's language when the URL does not say: the language cookie (set by the language switch), else the
    language stored on a signed-in person's profile, else the best supported match of Accept-Language (zh-CN,
    zh-TW, zh... read Simplified Chinese), else the default."""
    if settings.LANGUAGE_COOKIE_NAME not in request.COOKIES:
        stored = stored_language(request)
        if stored is not None:
            return stored
    return translation.get_language_from_request(request, check_path=False)


class PreferredLanguageMiddleware:
    """Redirects a GET of an unprefixed (English) page to its prefixed twin when the reader prefers another
    language. Runs after AuthenticationMiddleware (for the stored language). Only pages inside i18n_patterns move: `translate_url` leaves the API,
    the probes and unknown paths as they are."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD") and not translation.get_language_from_path(request.path_info):
            language = preferred_language(request)
            if language != settings.LANGUAGE_CODE:
                here = request.get_full_path()
                there = translate_url(here, language)
                if there != here:
                    response = HttpResponseRedirect(there)
                    # The answer depends on the browser's languages and the cookie: caches must keep them apart.
                    patch_vary_headers(response, ("Accept-Language", "Cookie"))
                    return response
        return self.get_response(request)
