"""Background exports over the API (docs/api.md): request one, follow its status, download its file.

POST /exports/ asks for a report as a file, with the report endpoint's own parameters; the job runs in a worker
(grants.services.exports). GET /exports/ and /exports/{id}/ show one's own exports; GET /exports/{id}/file/ streams
the file once it is done. Only the requester (and an administrator) sees an export at all, anyone else gets 404:
the file holds the requester's scope, which may be wider than another reader's.
"""

from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from grants import audit
from grants.api import idempotency
from grants.api.serializers import ErrorSerializer, Output
from grants.api.views import BodyLimitMixin, Pages, parse
from grants.models import ExportJob
from grants.services import exports


class ExportSerializer(Output, serializers.ModelSerializer[ExportJob]):
    file_url = serializers.SerializerMethodField(help_text="Where to download the file once status is done.")

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "report",
            "format",
            "params",
            "status",
            "attempts",
            "row_count",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "expires_at",
            "file_url",
        ]

    def get_file_url(self, job: ExportJob) -> str | None:
        return reverse("export-file", kwargs={"pk": job.pk}) if job.status == ExportJob.Status.DONE else None


class ExportRequestInput(serializers.Serializer[Any]):
    report = serializers.ChoiceField(choices=list(exports.EXPORTABLE))
    format = serializers.ChoiceField(choices=list(exports.FORMATS), default="csv")
    params = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        default=dict,
        help_text='The report endpoint\'s query parameters, e.g. {"group_by": "city,fiscal_year", '
        '"status": ["paid"]}.',
    )


class ExportViewSet(mixins.CreateModelMixin, BodyLimitMixin, viewsets.ReadOnlyModelViewSet):
    """Your background exports, newest first (administrators: everyone's). POST requests one: 202, and the job
    runs in a worker; follow its `status` (pending, running, done, failed, expired) and download from `file_url`.
    The file holds what the report endpoint would give you with the same parameters when the job runs. Send an
    Idempotency-Key to make a retried request safe."""

    serializer_class = ExportSerializer
    pagination_class = Pages
    ordering = ["-id"]
    ordering_fields = ["id", "created_at"]
    input_serializer = ExportRequestInput
    output_serializer = ExportSerializer
    success_status = 202

    def get_queryset(self) -> QuerySet[ExportJob]:
        return exports.exports_of(self.request.user)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        def act() -> Response:
            data = parse(self.input_serializer, request)
            job = exports.request_export(
                user=request.user,  # type: ignore[arg-type]  # IsAuthenticated
                report=data["report"],
                format=data["format"],
                params=data["params"],
            )
            return Response(
                self.output_serializer.of(job),
                status=self.success_status,
                headers={"Location": reverse("export-detail", args=[job.pk])},
            )

        return idempotency.run_once(request, idempotency.request_key(request), act)


@extend_schema(
    responses={
        (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The CSV file."),
        (200, exports.CONTENT_TYPES["xlsx"]): OpenApiResponse(
            OpenApiTypes.BINARY, description="The workbook."
        ),
        409: OpenApiResponse(ErrorSerializer, description="`export_not_ready`: pending, running or failed."),
        410: OpenApiResponse(
            ErrorSerializer, description="`export_expired`: the file was deleted; ask again."
        ),
    }
)
class ExportFileApi(APIView):
    """The file of a done export, streamed as an attachment. 404 for an export that is not yours."""

    def get(self, request: Request, pk: int) -> FileResponse:
        job = get_object_or_404(exports.exports_of(request.user), pk=pk)
        opened, filename, content_type = exports.open_file(job=job)
        audit.download(
            actor=request.user,
            report=job.report,
            format=job.format,
            filters=job.params or {},
            obj=job,
            city_id=audit.download_city(job.requested_by, (job.params or {}).get("city")),
        )
        return FileResponse(opened, as_attachment=True, filename=filename, content_type=content_type)
