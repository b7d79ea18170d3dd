"""What the navigation offers about vouchers: "My vouchers" to members of an institution holding one, the provider
pages to users acting for an accredited provider. Asked once per request."""

from typing import Any

from django import template

from grants.models import Voucher
from grants.selectors import provider_institutions

register = template.Library()


@register.simple_tag(takes_context=True)
def voucher_roles(context: Any) -> dict[str, bool]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"holder": False, "provider": False}
    cache = vars(user)
    if "_voucher_roles" not in cache:
        cache["_voucher_roles"] = {
            "holder": Voucher.objects.filter(institution__memberships__user_id=user.pk).exists(),
            "provider": bool(provider_institutions(user)),
        }
    roles: dict[str, bool] = cache["_voucher_roles"]
    return roles
