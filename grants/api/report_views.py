"""Report endpoints: JSON, CSV streamed row by row, XLSX, and the 360Giving package."""

from decimal import Decimal
from typing import Any, ClassVar

from django.db import connection
from django.http import HttpResponseBase
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from grants import audit
from grants.api import formats, reports
from grants.errors import DomainError, InvalidInput


class NoMatchingAwards(DomainError):
    code = "no_awards"
    status = 404


def _format(request: Request, allowed: tuple[str, ...]) -> str:
    fmt = (request.query_params.get("format") or allowed[0]).lower()
    if fmt not in allowed:
        raise InvalidInput(
            _("Choose a format: %(f)s.") % {"f": ", ".join(allowed)},
            fields={"format": [_("Unknown format.")]},
        )
    return fmt


def _filename(name: str, ext: str) -> str:
    return f"{name}-{timezone.localtime():%Y%m%d-%H%M%S}.{ext}"


def record_download(request: Request, report: str, fmt: str, params: dict[str, Any]) -> None:
    """Who pulled which report, in which format, with which filters (grants/audit.py `download`)."""
    filters = {name: value for name, value in params.items() if name != "format"}
    audit.download(
        actor=request.user,
        report=report,
        format=fmt,
        filters=filters,
        city_id=audit.download_city(request.user, filters.get("city")),
    )


def format_parameter(allowed: tuple[str, ...]) -> OpenApiParameter:
    return OpenApiParameter("format", str, enum=list(allowed), description=f"Default {allowed[0]}.")


TABLE = inline_serializer(
    "ReportTable",
    fields={
        "columns": serializers.ListField(child=serializers.CharField()),
        "rows": serializers.ListField(
            child=serializers.DictField(allow_null=True),
            help_text="One object per row, keyed by column. Money as strings.",
        ),
        "count": serializers.IntegerField(),
    },
)
FILE_RESPONSES: dict[Any, Any] = {
    (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV, streamed row by row."),
    (
        200,
        formats.XLSX_TYPE,
    ): OpenApiResponse(OpenApiTypes.BINARY, description="An XLSX workbook with one sheet."),
}


class ReportApi(APIView):
    report: ClassVar[str]
    formats: ClassVar[tuple[str, ...]] = ("json", "csv", "xlsx")

    def get(self, request: Request) -> HttpResponseBase:
        fmt = _format(request, self.formats)
        params = reports.query_params(request.query_params)
        report = reports.build(self.report, request.user, params)
        record_download(request, self.report, fmt, params)
        if fmt == "csv":
            return formats.csv_response(report, _filename(self.report, "csv"))
        if fmt == "xlsx":
            return formats.xlsx_response(report, _filename(self.report, "xlsx"))
        rows = formats.json_rows(report)
        return Response({"columns": report.columns, "rows": rows, "count": len(rows), **report.meta})


@extend_schema(
    parameters=[reports.DisbursementParams, format_parameter(("json", "csv", "xlsx"))],
    responses={(200, "application/json"): TABLE, **FILE_RESPONSES},
)
class DisbursementReportApi(ReportApi):
    """Sums and counts of tranche amounts (scheduled = not cancelled, and per state: planned, payable, withheld,
    paid, cancelled), grouped by any combination of city, programme, pool, institution, fiscal_year, quarter,
    month, status, and filtered by the same and by scheduled date range. One query."""

    report = "disbursements"


@extend_schema(
    parameters=[reports.BudgetParams, format_parameter(("json", "csv", "xlsx"))],
    responses={
        (200, "application/json"): inline_serializer(
            "BudgetReport",
            fields={
                "pools": serializers.ListField(child=serializers.DictField()),
                "count": serializers.IntegerField(),
            },
        ),
        **FILE_RESPONSES,
    },
)
class BudgetReportApi(ReportApi):
    """Per pool: cap, committed, disbursed, available, utilisation, pipeline (requested amounts under review),
    and per fiscal year the allotment and its use and the tranches scheduled and paid. In CSV and XLSX, one row
    per pool (fiscal_year empty) followed by one row per pool and year."""

    report = "budget"

    def get(self, request: Request) -> HttpResponseBase:
        fmt = _format(request, self.formats)
        if fmt != "json":
            return super().get(request)
        params = reports.query_params(request.query_params)
        pools = reports.budget_pools(request.user, params)
        record_download(request, self.report, fmt, params)
        return Response({"pools": _plain(pools), "count": len(pools)})


def _plain(value: Any) -> Any:
    """Money and rates as strings, like everywhere else in the API."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return f"{value:f}"
    return value


@extend_schema(
    parameters=[reports.TrancheFilterParams, format_parameter(("csv", "xlsx"))],
    responses=FILE_RESPONSES,
)
class TrancheExportApi(ReportApi):
    """Every tranche in scope, one row each, streamed: memory stays flat however many rows. On PostgreSQL the
    CSV comes straight from the database's COPY."""

    report = "tranches"
    formats = ("csv", "xlsx")

    def get(self, request: Request) -> HttpResponseBase:
        fmt = _format(request, self.formats)
        params = reports.query_params(request.query_params)
        if fmt == "csv" and connection.vendor == "postgresql":
            qs = reports.tranche_export_queryset(request.user, params)
            record_download(request, self.report, fmt, params)
            columns = [c for c, _p in reports.TRANCHE_EXPORT]
            return formats.copy_response(qs, columns, _filename("tranches", "csv"))
        return super().get(request)


@extend_schema(
    parameters=[reports.GivingParams],
    responses={
        200: OpenApiResponse(
            OpenApiTypes.OBJECT,
            description="A 360Giving data package ({'grants': [...]}, version 1.4), valid against the "
            "official package and grant schemas (see grants/schemas/).",
        )
    },
)
class GivingPackageApi(APIView):
    """The awards in scope as a 360Giving package: ids 360G-<prefix>-<award reference>, recipients
    CN-USCI-<credit code>, planned dates, paid tranches as disbursement transactions; and each paid voucher claim
    as a grant to the voucher's holder (360G-<prefix>-<claim reference>, the approved amount, awarded the day it
    was approved). Amounts are JSON numbers, as the standard requires. 404 `no_awards` when nothing matches (a
    package holds at least one grant)."""

    def get(self, request: Request) -> Response:
        params = reports.query_params(request.query_params)
        package = reports.giving360_package(request.user, params)
        if not package["grants"]:
            raise NoMatchingAwards(_("No awards match; a 360Giving package holds at least one grant."))
        record_download(request, "360giving", "json", params)
        response = Response(package)
        response["Content-Disposition"] = f'inline; filename="{_filename("360giving", "json")}"'
        return response
