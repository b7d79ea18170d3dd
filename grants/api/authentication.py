"""Per-user API tokens: `Authorization: Bearer <key>`. Only a SHA-256 of the key is stored; the key is shown once.

A key is `gm_<prefix>_<secret>`: the prefix lets the user tell their tokens apart in the list without the database
ever holding the secret. The key has 256 bits of entropy, so a fast hash is enough (no salt or stretching needed:
nobody can brute-force a random 32-byte secret from its hash).
"""

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.authentication import BasicScheme, SessionScheme
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from grants import audit, login_policy, second_factor
from grants.client_ip import client_address
from grants.errors import InvalidInput, NotPermitted
from grants.models import ApiToken

KEYWORD = "Bearer"
# Writing last_used_at on every request would turn every read into a write; once a minute is enough to tell
# which tokens are in use.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class TokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != KEYWORD.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid Authorization header: use 'Bearer <token>'."))
        try:
            key = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(_("Invalid token.")) from None
        token = (
            ApiToken.objects.select_related("user")
            .filter(key_hash=hash_key(key), revoked_at__isnull=True)
            .first()
        )
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked token."))
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return f'{KEYWORD} realm="api"'


class LoginThrottled(exceptions.Throttled):
    """429 with Retry-After in the API's error shape: the login policy (grants/login_policy.py) refused."""

    default_code = "too_many_attempts"

    def __init__(self, refusal: login_policy.Refusal) -> None:
        super().__init__(detail=refusal.message())
        self.wait = refusal.retry_after


class PolicyBasicAuthentication(authentication.BasicAuthentication):
    """HTTP Basic, for getting a first token with a username and password, under the same login policy as the
    portal and the admin: the credentials go through authenticate() with the request, and so through
    ThrottledModelBackend; a refused attempt is a 429 saying when to try again, not a 401.

    Staff who need the second factor (grants/second_factor.py) also send a current code from their authenticator
    app (or a recovery code) as `otp` in the JSON body: without it 403 `second_factor_required`, with a wrong one
    403 `wrong_second_factor_code`, both counted under the login policy. A password alone never gets a staff
    token."""

    def authenticate_credentials(
        self, userid: str, password: str, request: Request | None = None
    ) -> tuple[User, None]:
        try:
            user, auth = super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            refusal = login_policy.refusal_of(request)
            if refusal is not None:
                raise LoginThrottled(refusal) from None
            raise
        if request is not None and second_factor.needed(user):
            body = request.data if isinstance(request.data, dict) else {}
            code = body.get("otp")
            if not second_factor.enrolled(user) and not second_factor.recovery_codes_left(user):
                raise second_factor.SecondFactorRequired(
                    _(
                        "Set up your authenticator app first: log in to the administration in a browser, which "
                        "shows how."
                    )
                )
            if not isinstance(code, str) or not code.strip():
                raise second_factor.SecondFactorRequired(
                    _(
                        'Staff need a second factor: send the code your authenticator app shows as "otp" with '
                        "the username and password."
                    )
                )
            try:
                second_factor.check_code(user=user, code=code, address=client_address(request))
            except second_factor.TooManyAttempts as exc:
                raise LoginThrottled(exc.refusal) from None
        return user, auth


class VerifiedSessionAuthentication(authentication.SessionAuthentication):
    """Django's session, once it has passed the second factor where one is needed (grants/second_factor.py): a
    staff session that has only given its password gets 403 `second_factor_required`, not the API."""

    def authenticate(self, request: Request) -> tuple[User, None] | None:
        result = super().authenticate(request)
        if result is not None and not second_factor.passed(request._request.user):
            raise second_factor.SecondFactorRequired(
                _(
                    "Pass the second factor first: sign in again and enter the code from your authenticator app."
                )
            )
        return result


class PolicyBasicScheme(BasicScheme):
    """In the OpenAPI schema it is plain HTTP Basic (drf-spectacular matches extensions by exact class)."""

    target_class = "grants.api.authentication.PolicyBasicAuthentication"


class VerifiedSessionScheme(SessionScheme):
    """In the OpenAPI schema it is Django's session cookie."""

    target_class = "grants.api.authentication.VerifiedSessionAuthentication"


def create_token(*, user: User, actor: Any, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`; returns it and the key, which is never stored and cannot be shown again."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput(
            _("Name the token, e.g. after the system that uses it."), fields={"name": [_("Required.")]}
        )
    if actor.pk != user.pk and not actor.is_superuser:
        raise NotPermitted(_("Only the user or an administrator can create a token for a user."))
    prefix = secrets.token_hex(4)
    key = f"gm_{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name[:100], prefix=prefix, key_hash=hash_key(key))
        audit.record(
            actor=actor, action="api_token.create", obj=token, city_id=None, after={"name": token.name}
        )
    return token, key


def revoke_token(*, token: ApiToken, actor: Any) -> ApiToken:
    """Revoke a token: it stops working at once. Revoking twice changes nothing."""
    if actor.pk != token.user_id and not actor.is_superuser:
        raise NotPermitted(_("Only the token's user or an administrator can revoke it."))
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit.record(actor=actor, action="api_token.revoke", obj=token, city_id=None)
    return token
