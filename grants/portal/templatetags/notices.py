"""The unread count in the portal's navigation."""

from django import template
from django.http import HttpRequest

from grants.services import notifications

register = template.Library()


@register.simple_tag(takes_context=True)
def unread_notices(context: template.Context) -> int:
    """One COUNT over the partial index of unread notices, for a signed-in reader only."""
    request: HttpRequest | None = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return 0
    return notifications.unread_count(user)
