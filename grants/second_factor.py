"""The second factor of staff: a time-based one-time password from an authenticator app (django-otp's TOTP
device), with single-use recovery codes for a lost phone.

Who: everyone who may use the budget administration (`grants.admin_site.may_use_admin`: programme and finance
officers, reviewers, auditors, administrators). Reviewers are included: they read other firms' confidential
proposals and their scores decide awards, and a second factor costs them one enrolment. Applicants never need it.

When: with SECOND_FACTOR_REQUIRED (on unless DEBUG, so always in production), every member of staff; without it
(`make run`), those who have enrolled a device of their own accord. A session passes the second factor once per
log-in (`django_otp.login`, kept in the session); until then the middleware below sends staff pages to the
verification (or, with no device yet, the enrolment) page and the API refuses the session
(`grants.api.authentication.VerifiedSessionAuthentication`). HTTP Basic, used only to get a first API token, needs
the code in the request too (`PolicyBasicAuthentication`): a staff token is never had with a password alone.

Wrong codes count under the login policy (grants/login_policy.py, scope `second_factor`) exactly like wrong
passwords: growing delays per account and per address, no lock-out. django-otp's own per-device throttling is off
(settings.OTP_TOTP_THROTTLE_FACTOR = 0) so that one policy decides. A TOTP code is accepted once: the device keeps
the last time step used, and django_otp.verify_token checks it under a row lock.

Recovery codes: django-otp's static tokens are stored in plain text and compared as typed. Here the static device
stores a SHA-256 of each code instead (its first 16 hex digits, the column's width); codes carry 79 random bits,
so the stored hashes cannot be turned back into codes. They are therefore checked by `_use_recovery_code` below,
never by django-otp's StaticDevice.verify_token (which would take the hash itself as a code).
"""

import hashlib
import secrets
from base64 import b32encode
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import django_otp
import segno
from django.conf import settings
from django.contrib.auth.models import User
from django.core import checks
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode as query_string
from django.utils.translation import gettext as _
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from grants import audit, login_policy
from grants.errors import DomainError

SCOPE = "second_factor"  # the login policy's counters for wrong codes
DEVICE_NAME = "authenticator"
RECOVERY_NAME = "recovery codes"
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper


class SecondFactorRequired(DomainError):
    code = "second_factor_required"
    status = 403


class WrongCode(DomainError):
    code = "wrong_second_factor_code"
    status = 403


class TooManyAttempts(DomainError):
    """The login policy refused the attempt before the code was looked at."""

    code = "too_many_attempts"
    status = 429

    def __init__(self, refusal: login_policy.Refusal) -> None:
        super().__init__(refusal.message(), retry_after=refusal.retry_after)
        self.refusal = refusal


# --- Who needs it -------------------------------------------------------------------------------------------


def applies_to(user: Any) -> bool:
    """Staff: whoever may use the budget administration."""
    from grants.admin_site import may_use_admin

    return bool(user.is_authenticated and may_use_admin(user))


def totp_device(user: Any, *, confirmed: bool = True) -> TOTPDevice | None:
    """The user's authenticator (confirmed), or the one being enrolled (unconfirmed): at most one of each."""
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=confirmed).order_by("-pk").first()


def enrolled(user: Any) -> bool:
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).exists()


def needed(user: Any) -> bool:
    """Whether this user's sessions (and HTTP Basic requests) must pass the second factor."""
    if not applies_to(user):
        return False
    return bool(settings.SECOND_FACTOR_REQUIRED) or enrolled(user)


def verified(user: Any) -> bool:
    """The session passed the second factor (django_otp's middleware puts is_verified on request.user)."""
    is_verified: Callable[[], bool] | None = getattr(user, "is_verified", None)
    return bool(is_verified and is_verified())


def passed(user: Any) -> bool:
    """A session may act as this user: no second factor needed, or it was passed."""
    return verified(user) or not needed(user)


# --- Enrolment ----------------------------------------------------------------------------------------------


def start_enrolment(*, user: User) -> TOTPDevice:
    """The unconfirmed device being enrolled (a new secret the first time; the same on reloading the page)."""
    device = totp_device(user, confirmed=False)
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)
    return device


def secret_of(device: TOTPDevice) -> str:
    """The secret as authenticator apps take it typed in: base32, in groups of four."""
    text = b32encode(device.bin_key).decode()
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def provisioning_uri(device: TOTPDevice) -> str:
    """otpauth://totp/<issuer>:<user>?secret=...&issuer=...: what the QR code holds."""
    issuer = str(settings.OTP_TOTP_ISSUER)
    params = {
        "secret": b32encode(device.bin_key).decode(),
        "issuer": issuer,
        "algorithm": "SHA1",
        "digits": device.digits,
        "period": device.step,
    }
    label = f"{issuer}:{device.user.get_username()}".replace("/", "-")
    return f"otpauth://totp/{quote(label)}?{urlencode(params)}"


def qr_svg(device: TOTPDevice) -> str:
    """The enrolment QR code as inline SVG, drawn here: the secret never leaves the server for a QR service."""
    svg: str = segno.make(provisioning_uri(device), error="m").svg_inline(scale=5, dark="#000", light="#fff")
    return svg


def confirm_enrolment(*, user: User, code: str, address: str) -> tuple[TOTPDevice, list[str]]:
    """Confirm the device being enrolled with a first code from the app: it replaces any earlier authenticator,
    and a new set of recovery codes is made (returned once, stored hashed). Wrong codes count under the login
    policy."""
    device = totp_device(user, confirmed=False)
    if device is None:
        raise WrongCode(_("Start the enrolment again: no authenticator is being set up."))
    attempt = _begin(user, address)
    if not _totp_accepts(device, code):
        raise WrongCode(_("That code is not right. Enter the 6 digits the app shows now."))
    login_policy.succeeded(attempt)
    with transaction.atomic():
        replaced = list(
            TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).values_list("pk", flat=True)
        )
        TOTPDevice.objects.filter(pk__in=replaced).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = _replace_recovery_codes(user)
        audit.record(
            actor=user,
            action="second_factor.enrol",
            obj=user,
            city_id=None,
            before={"authenticator": bool(replaced)},
            after={"authenticator": True, "recovery_codes": len(codes)},
        )
    return device, codes


def new_recovery_codes(*, user: User) -> list[str]:
    """A new set of recovery codes; the earlier ones stop working. Shown once: only hashes are kept."""
    with transaction.atomic():
        codes = _replace_recovery_codes(user)
        audit.record(
            actor=user,
            action="second_factor.recovery_codes",
            obj=user,
            city_id=None,
            after={"recovery_codes": len(codes)},
        )
    return codes


def recovery_codes_left(user: Any) -> int:
    return StaticToken.objects.filter(device__user_id=user.pk, device__confirmed=True).count()


def reset(*, user: User, actor: User) -> None:
    """Remove a user's authenticator and recovery codes (a lost phone): they enrol again at their next log-in.
    Administrators only."""
    if not actor.is_superuser:
        from grants.errors import NotPermitted

        raise NotPermitted(_("Only an administrator can reset someone's second factor."))
    with transaction.atomic():
        devices = TOTPDevice.objects.filter(user_id=user.pk).count()
        TOTPDevice.objects.filter(user_id=user.pk).delete()
        StaticDevice.objects.filter(user_id=user.pk).delete()
        audit.record(
            actor=actor,
            action="second_factor.reset",
            obj=user,
            city_id=None,
            before={"authenticator": bool(devices)},
            after={"authenticator": False},
        )


def _hash(code: str) -> str:
    return hashlib.sha256(_normal(code).encode()).hexdigest()[:16]


def _normal(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def _new_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(16))  # 16 characters of 31: 79 bits
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _replace_recovery_codes(user: User) -> list[str]:
    device, _created = StaticDevice.objects.get_or_create(
        user=user, name=RECOVERY_NAME, defaults={"confirmed": True}
    )
    device.token_set.all().delete()
    codes = [_new_code() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=_hash(code)) for code in codes])
    return codes


# --- Verification -------------------------------------------------------------------------------------------


def _begin(user: Any, address: str) -> login_policy.Attempt:
    attempt = login_policy.begin(scope=SCOPE, account=user.get_username(), address=address)
    if attempt.refusal is not None:
        raise TooManyAttempts(attempt.refusal)
    return attempt


def _totp_accepts(device: TOTPDevice, code: str) -> bool:
    code = "".join(code.split())
    if not code.isdigit():
        return False
    # django_otp.verify_token locks the device row: the same code sent twice at once is accepted once.
    return django_otp.verify_token(device.user, device.persistent_id, code) is not None


def _use_recovery_code(user: Any, code: str) -> StaticDevice | None:
    if len(_normal(code)) != 16:
        return None
    token = (
        StaticToken.objects.select_related("device")
        .filter(device__user_id=user.pk, device__confirmed=True, token=_hash(code))
        .first()
    )
    # Deleting is the claim: of two requests with the same code only one deletes the row.
    if token is None or StaticToken.objects.filter(pk=token.pk).delete()[0] != 1:
        return None
    return token.device


def check_code(*, user: User, code: str, address: str) -> Device:
    """The device that accepts `code` (a 6-digit code from the app, or a recovery code, used up), counted under
    the login policy: raises TooManyAttempts before looking at the code when the policy says wait, WrongCode
    when no device accepts it."""
    attempt = _begin(user, address)
    code = (code or "").strip()
    device: Device | None = None
    totp = totp_device(user)
    if totp is not None and _totp_accepts(totp, code):
        device = totp
    else:
        device = _use_recovery_code(user, code)
        if device is not None:
            audit.record(
                actor=user,
                action="second_factor.recovery_code_used",
                obj=user,
                city_id=None,
                after={"recovery_codes_left": recovery_codes_left(user)},
            )
    if device is None:
        raise WrongCode(_("That code is not right. Enter the 6 digits your authenticator app shows now."))
    login_policy.succeeded(attempt)
    return device


def verify_session(*, request: HttpRequest, code: str) -> Device:
    """Pass the second factor for this session (see check_code)."""
    from grants.client_ip import client_address

    user: Any = request.user
    device = check_code(user=user, code=code, address=client_address(request))
    django_otp.login(request, device)
    return device


# --- Production requires it ----------------------------------------------------------------------------------


@checks.register(checks.Tags.security, deploy=True)
def required_in_production(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """`manage.py check --deploy` fails when staff could sign in with a password alone."""
    if settings.SECOND_FACTOR_REQUIRED:
        return []
    return [
        checks.Warning(
            "SECOND_FACTOR_REQUIRED is off: staff sign in with a password alone.",
            hint="Leave SECOND_FACTOR_REQUIRED unset (on unless DEBUG) or set it to 1.",
            id="grants.W001",
        )
    ]


# --- Pages wait for it ----------------------------------------------------------------------------------------

# Reachable before the second factor: its own pages, logging out, switching language, files and probes.
OPEN_PREFIXES = ("/static/", "/i18n/", "/api/", "/healthz", "/readyz", "/metrics", "/favicon")


class SecondFactorMiddleware:
    """Staff who still owe the second factor see only its pages: anything else is a redirect there (to enrolment
    when they have no authenticator yet), with `next` set to where they were going. The API answers for itself
    (403 `second_factor_required`, grants/api/authentication.py)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith(OPEN_PREFIXES) or not request.user.is_authenticated or passed(request.user):
            return self.get_response(request)
        verify_url, enrol_url = reverse("second_factor:verify"), reverse("second_factor:enrol")
        logout_urls = {reverse("portal:logout"), reverse("admin:logout")}
        if path in {verify_url, enrol_url} or path in logout_urls:
            return self.get_response(request)
        target = verify_url if enrolled(request.user) else enrol_url
        return HttpResponseRedirect(f"{target}?{query_string({'next': request.get_full_path()})}")
