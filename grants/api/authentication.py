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
from drf_spectacular.authentication import BasicScheme
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from grants import audit, login_policy
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
    ThrottledModelBackend; a refused attempt is a 429 saying when to try again, not a 401."""

    def authenticate_credentials(
        self, userid: str, password: str, request: Request | None = None
    ) -> tuple[User, None]:
        try:
            return super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            refusal = login_policy.refusal_of(request)
            if refusal is not None:
                raise LoginThrottled(refusal) from None
            raise


class PolicyBasicScheme(BasicScheme):
    """In the OpenAPI schema it is plain HTTP Basic (drf-spectacular matches extensions by exact class)."""

    target_class = "grants.api.authentication.PolicyBasicAuthentication"


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
