"""The client's address, the same everywhere: the login policy, the audit log and the API's throttles.

Behind TLS proxies REMOTE_ADDR is the nearest proxy's address, the same for every client. Each proxy appends the
address it received the request from to X-Forwarded-For, so with TRUSTED_PROXY_COUNT=n proxies in front of
gunicorn the client is the n-th address from the right; anything further left was written by the client and can
say anything. DRF's NUM_PROXIES (set from the same setting) picks the same address for its throttles.
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request


def client_address(request: HttpRequest | Request) -> str:
    """The client's address, or "" if the request does not say."""
    remote = str(request.META.get("REMOTE_ADDR") or "")
    count = int(settings.TRUSTED_PROXY_COUNT)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if count <= 0 or not forwarded:
        return remote
    hops = [hop.strip() for hop in str(forwarded).split(",")]
    # Fewer hops than proxies: like DRF, the leftmost one, so that both count the same client.
    candidate = hops[-min(count, len(hops))]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        # A trusted proxy never writes anything but an address: this request did not come through it.
        return remote
