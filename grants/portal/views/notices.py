"""The person's notices (issue #16): the list with an unread count, opening one (read), and which to get by e-mail.

Every query is the caller's own (`notifications.for_user`): another person's notice is a 404."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import translation
from django.utils.translation import check_for_language, get_language, gettext_lazy
from django.utils.translation import gettext as _
from django.views import i18n as i18n_views
from django.views.decorators.http import require_http_methods, require_POST

from grants.portal.views.common import current_user
from grants.services import notifications
from grants.services.notifications import Event

PAGE_SIZE = 30


class PreferencesForm(forms.Form):
    """One box per notice the person can receive (by their roles), and the language of their e-mails."""

    language = forms.ChoiceField(
        label=gettext_lazy("Your language (the site's and your e-mails')"),
        choices=settings.LANGUAGES,
        help_text=gettext_lazy("The language switch at the top of every page changes it too."),
    )

    def __init__(self, *args: object, user: User, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        muted = notifications.email_muted(user)
        self.events = notifications.events_for(user)
        for event in self.events:
            self.fields[event] = forms.BooleanField(
                label=Event(event).label, required=False, initial=event not in muted
            )
        self.fields["language"].initial = notifications.language_of(user)

    def event_fields(self) -> list[forms.BoundField]:
        return [self[event] for event in self.events]

    def wanted(self) -> list[str]:
        return [event for event in self.events if self.cleaned_data.get(event)]


@login_required
@require_http_methods(["GET", "POST"])
def notices(request: HttpRequest) -> HttpResponse:
    """GET: the list, newest first, each in the reader's language. POST: mark them all read."""
    user = current_user(request)
    if request.method == "POST":
        count = notifications.mark_read(user=user)
        messages.success(request, _("Marked %(count)d notices read.") % {"count": count})
        return redirect("portal:notifications")
    page = Paginator(notifications.for_user(user), PAGE_SIZE).get_page(request.GET.get("page"))
    language = get_language()
    items = [
        (notice, notifications.render(notice, language, parts=("subject",))) for notice in page.object_list
    ]
    return render(
        request,
        "portal/notices/list.html",
        {"page": page, "items": items, "unread": notifications.unread_count(user)},
    )


@login_required
def notice_open(request: HttpRequest, pk: int) -> HttpResponse:
    """Follow a notice to what it is about; it is read from then on."""
    user = current_user(request)
    notice = get_object_or_404(notifications.for_user(user), pk=pk)
    notifications.mark_read(user=user, ids=[notice.pk])
    return redirect(notifications.link_of(notice, get_language()))


@login_required
@require_POST
def notice_read(request: HttpRequest, pk: int) -> HttpResponse:
    user = current_user(request)
    notice = get_object_or_404(notifications.for_user(user), pk=pk)
    notifications.mark_read(user=user, ids=[notice.pk])
    return redirect("portal:notifications")


@login_required
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest) -> HttpResponse:
    user = current_user(request)
    form = PreferencesForm(request.POST if request.method == "POST" else None, user=user)
    if request.method == "POST" and form.is_valid():
        language = form.cleaned_data["language"]
        notifications.set_email_choices(user=user, wanted=form.wanted())
        notifications.set_language(user=user, language=language)
        with translation.override(language):
            messages.success(request, _("Your choices are saved."))
            response = redirect("portal:notification_preferences")
        # As the language switch does: this browser shows the site in the language chosen from now on.
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            path=settings.LANGUAGE_COOKIE_PATH,
            domain=settings.LANGUAGE_COOKIE_DOMAIN,
            secure=settings.LANGUAGE_COOKIE_SECURE,
            httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,
        )
        return response
    return render(
        request, "portal/notices/preferences.html", {"form": form}, status=400 if form.errors else 200
    )


def set_language(request: HttpRequest) -> HttpResponse:
    """Django's language switch, which also remembers the choice on the signed-in person's profile: the e-mails
    they get while away are written in it."""
    response = i18n_views.set_language(request)
    language = request.POST.get("language", "")
    if request.method == "POST" and request.user.is_authenticated and check_for_language(language):
        notifications.set_language(user=current_user(request), language=language)
    return response
