"""The caller's notices in the API (issue #16): the list (newest first, ?unread=true) and marking them read.

Scoped to the caller alone, staff and administrators included: another person's notice is a 404."""

from typing import Any

import django_filters as df
from django.db.models import Model, QuerySet
from django.utils import translation
from django.utils.translation import get_language
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from grants.api import serializers as s
from grants.api.views import ActionApi, BodyLimitMixin, NewestFirstCursor, ScopedViewSet
from grants.models import Notification
from grants.services import notifications


def reader_language(request: Request) -> str:
    """The API's URLs carry no language prefix, so the site's rule (unprefixed is English) would make every notice
    English: the client's language cookie or Accept-Language decides here."""
    return translation.get_language_from_request(request._request, check_path=False)


class NotificationSerializer(s.Output, serializers.ModelSerializer):
    """A notice as its reader sees it, in the request's language (Accept-Language)."""

    subject = serializers.SerializerMethodField(help_text="The notice's one-line summary.")
    text = serializers.SerializerMethodField(
        help_text="The notice in full, as plain text (the e-mail's text)."
    )
    link = serializers.SerializerMethodField(help_text="Where to act on it: a portal or admin page.")
    unread = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = [
            "id",
            "event",
            "object_type",
            "object_id",
            "subject",
            "text",
            "link",
            "created_at",
            "read_at",
            "unread",
        ]

    def _rendered(self, notice: Notification) -> notifications.Rendered:
        cache = self.context.setdefault("rendered", {})
        if notice.pk not in cache:
            language = self.context.get("language") or get_language()
            cache[notice.pk] = notifications.render(notice, language, parts=("subject", "text"))
        rendered: notifications.Rendered = cache[notice.pk]
        return rendered

    def get_subject(self, notice: Notification) -> str:
        return self._rendered(notice).subject

    def get_text(self, notice: Notification) -> str:
        return self._rendered(notice).text

    def get_link(self, notice: Notification) -> str:
        return notifications.absolute(self._rendered(notice).link)

    def get_unread(self, notice: Notification) -> bool:
        return notice.read_at is None


class NotificationFilter(df.FilterSet):
    unread = df.BooleanFilter(
        field_name="read_at", lookup_expr="isnull", label="Only unread (true) or read (false)."
    )
    event = df.ChoiceFilter(choices=notifications.Event.choices)

    class Meta:
        model = Notification
        fields = ["unread", "event"]


def own_notices(user: Any) -> QuerySet[Notification]:
    """The caller's notices; none for the anonymous user (the schema generator asks as one)."""
    return notifications.for_user(user) if user.is_authenticated else Notification.objects.none()


class NotificationViewSet(ScopedViewSet):
    """Your notices, newest first: what the portal's notices page lists."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return own_notices(user)

    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    pagination_class = NewestFirstCursor
    ordering_fields = ["id"]
    ordering = ["-id"]

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "language": reader_language(self.request)}


class NotificationReadApi(ActionApi):
    """Mark one of your notices read (again: no change)."""

    output_serializer = NotificationSerializer

    def scoped(self, user: Any) -> QuerySet[Any]:
        return own_notices(user)

    def permit(self, user: Any, obj: Any) -> None:
        """Every notice in scope is the caller's own."""

    def perform(self, obj: Notification, data: dict[str, Any], user: Any, key: str | None) -> Model:
        notifications.mark_read(user=user, ids=[obj.pk])
        return obj


@extend_schema(
    request=None,
    responses={200: inline_serializer("NotificationsMarked", {"marked": serializers.IntegerField()})},
)
class NotificationReadAllApi(BodyLimitMixin, APIView):
    """Mark every one of your notices read; says how many were unread."""

    def post(self, request: Request) -> Response:
        return Response({"marked": notifications.mark_read(user=request.user)})  # type: ignore[arg-type]
