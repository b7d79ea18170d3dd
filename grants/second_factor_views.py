"""The second factor's pages (grants/second_factor.py): enrol an authenticator app, pass the second factor after
the password, make new recovery codes. Mounted at /second-factor/ inside i18n_patterns, for the admin and the
portal alike: one session, one second factor."""

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from grants import login_policy, second_factor
from grants.client_ip import client_address

app_name = "second_factor"


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code"),
        max_length=24,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}
        ),
    )


def _next(request: HttpRequest) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("admin:index") if second_factor.applies_to(request.user) else reverse("portal:home")


def _refused(
    request: HttpRequest,
    form: CodeForm,
    exc: second_factor.WrongCode | second_factor.TooManyAttempts,
    template: str,
    context: dict[str, Any],
) -> HttpResponse:
    form.add_error("code", exc.message)
    response = render(request, template, {**context, "form": form}, status=400)
    if isinstance(exc, second_factor.TooManyAttempts):
        setattr(request, login_policy.REFUSAL_ATTRIBUTE, exc.refusal)
        return login_policy.refused_response(request, response)
    return response


@never_cache
@login_required
def enrol(request: HttpRequest) -> HttpResponse:
    """A QR code and the secret for the app, then a first code to confirm it. Someone who has an authenticator
    already must have passed it in this session to set up another (a password alone never replaces it)."""
    user: Any = request.user
    if second_factor.enrolled(user) and not second_factor.verified(user):
        return redirect(f"{reverse('second_factor:verify')}?next={reverse('second_factor:enrol')}")
    device = second_factor.start_enrolment(user=user)
    context = {
        "qr_svg": second_factor.qr_svg(device),
        "secret": second_factor.secret_of(device),
        "next": _next(request),
        "replacing": second_factor.enrolled(user),
        "codes_left": second_factor.recovery_codes_left(user),
    }
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device, codes = second_factor.confirm_enrolment(
                user=user, code=form.cleaned_data["code"], address=client_address(request)
            )
        except (second_factor.WrongCode, second_factor.TooManyAttempts) as exc:
            return _refused(request, form, exc, "second_factor/enrol.html", context)
        import django_otp

        django_otp.login(request, device)
        return render(request, "second_factor/recovery_codes.html", {"codes": codes, "next": context["next"]})
    return render(request, "second_factor/enrol.html", {**context, "form": form})


@never_cache
@login_required
def verify(request: HttpRequest) -> HttpResponse:
    """After the password: a code from the app, or a recovery code."""
    user: Any = request.user
    if not second_factor.enrolled(user) and not second_factor.recovery_codes_left(user):
        return redirect(f"{reverse('second_factor:enrol')}?next={_next(request)}")
    context = {"next": _next(request)}
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            second_factor.verify_session(request=request, code=form.cleaned_data["code"])
        except (second_factor.WrongCode, second_factor.TooManyAttempts) as exc:
            return _refused(request, form, exc, "second_factor/verify.html", context)
        return redirect(context["next"])
    return render(request, "second_factor/verify.html", {**context, "form": form})


@never_cache
@login_required
@require_POST
def recovery_codes(request: HttpRequest) -> HttpResponse:
    """New recovery codes, shown once; for a session that passed the second factor."""
    user: Any = request.user
    if not second_factor.verified(user):
        return redirect(f"{reverse('second_factor:verify')}?next={reverse('admin:index')}")
    codes = second_factor.new_recovery_codes(user=user)
    return render(request, "second_factor/recovery_codes.html", {"codes": codes, "next": _next(request)})


urlpatterns = [
    path("", verify, name="verify"),
    path("enrol/", enrol, name="enrol"),
    path("recovery-codes/", recovery_codes, name="recovery_codes"),
]
