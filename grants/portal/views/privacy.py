"""The person's own data: how long the service keeps it, and a download of all of it (PIPL art. 45)."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from grants.portal.views.common import current_user
from grants.services import retention


@login_required
@require_http_methods(["GET", "POST"])
def privacy(request: HttpRequest) -> HttpResponse:
    """GET: what is kept and for how long. POST: the download, a POST because each one is audited. There is no
    id to pass: a person gets their own data and nobody else's."""
    if request.method == "POST":
        data = retention.export_personal_data(actor=current_user(request))
        response = JsonResponse(
            data, encoder=DjangoJSONEncoder, json_dumps_params={"ensure_ascii": False, "indent": 2}
        )
        response["Content-Disposition"] = 'attachment; filename="personal-data.json"'
        response["Cache-Control"] = "no-store"
        return response
    return render(
        request,
        "portal/privacy.html",
        {
            "closed_application_days": settings.RETENTION_CLOSED_APPLICATION_DAYS,
            "attachment_days": settings.RETENTION_UNSUCCESSFUL_ATTACHMENT_DAYS,
            "account_days": settings.RETENTION_INACTIVE_ACCOUNT_DAYS,
        },
    )
