"""Vouchers over the API (issue 13): accredited providers and their offerings, voucher schemes, vouchers issued one
at a time or in bulk from a CSV, the public check of a printed code, claims with their documents, their approval
or rejection, and a provider's own statement.

Like every write of the API: the object (or the city, pool or voucher a create names) is looked up in the caller's
scope (404 outside it), the role is checked (403), the body is parsed (400), one service of
grants.services.vouchers is called (which checks the role again and judges the domain: a refused claim is 422
`claim_refused` with every failed check in `details.problems`, a refused bulk file 422 `bulk_refused` with every bad
row in `details.rows`) and the result is answered with its `Output`. Creates and actions are replayed for a
retried Idempotency-Key, and the money services get the key too."""

import csv
import mimetypes
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

import django_filters as df
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db.models import Count, Model, Q, QuerySet, Sum
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from grants import audit, selectors
from grants.api import idempotency
from grants.api import serializers as s
from grants.api import voucher_serializers as v
from grants.api.errors import PayloadTooLarge
from grants.api.filters import CityCodeFilter, id_filter, year_filter
from grants.api.views import ActionApi, Pages, ScopedViewSet, TransitionApi, parse
from grants.errors import InvalidInput
from grants.models import Application, Institution, Provider, Voucher, VoucherClaim, VoucherScheme
from grants.roles import Role, require
from grants.services import attachments
from grants.services import vouchers as service

C = VoucherClaim.Status
MONEY_ZERO = Decimal("0.00")
# A bulk file of the service's most rows (vouchers.MAX_BULK_ROWS) is well under this.
MAX_CSV_BYTES = 5 * 1024 * 1024


def _not_empty(data: dict[str, Any]) -> dict[str, Any]:
    if not data:
        raise InvalidInput(_("Send at least one field to change."))
    return data


class UploadLimitMixin:
    """413 before parsing, at the size a request carrying files may have (BodyLimitMixin's 1 MiB is for JSON)."""

    max_body_bytes: ClassVar[int]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > self.max_body_bytes:
            raise PayloadTooLarge()
        super().initial(request, *args, **kwargs)  # type: ignore[misc]


class CsvParser(BaseParser):
    """A CSV body (text/csv), as text."""

    media_type = "text/csv"

    # DRF takes whatever a parser returns as request.data: here the text itself (VoucherBulkApi reads it).
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> str:  # type: ignore[override]
        raw = stream.read(MAX_CSV_BYTES + 1) if stream is not None else b""
        return _csv_text(raw, field="body")


def _csv_text(raw: bytes, *, field: str) -> str:
    if len(raw) > MAX_CSV_BYTES:
        raise PayloadTooLarge()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        message = _("The CSV file must be UTF-8 text.")
        raise InvalidInput(message, fields={field: [message]}) from None


# --- Providers ------------------------------------------------------------------------------------------------


class ProviderFilter(df.FilterSet):
    city = CityCodeFilter(field_name="city__code", max_length=4)
    institution = id_filter("institution_id")
    credit_code = df.CharFilter(field_name="institution__credit_code", max_length=18)
    suspended = df.BooleanFilter(field_name="suspended")

    class Meta:
        model = Provider
        fields = ["city", "institution", "credit_code", "suspended"]


class ProviderViewSet(mixins.CreateModelMixin, ScopedViewSet):
    """Accredited providers: city staff see their cities', a provider's users their own, holders those accredited
    (and not suspended) in the cities of their vouchers. POST accredits a registered institution (by credit code)
    for some categories, from a date, with its offerings; PATCH changes the categories, the dates or the
    suspension (programme officers of the city)."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return (
            selectors.providers_readable(user)
            .select_related(*v.ProviderSerializer.joins)
            .prefetch_related("offerings")
        )

    serializer_class = v.ProviderSerializer
    filterset_class = ProviderFilter
    ordering_fields = ["accredited_from", "created_at"]
    ordering = ["city__code", "institution__name_en", "id"]
    http_method_names = ["get", "post", "patch", "head", "options"]
    input_serializer = v.ProviderCreateInput
    update_input_serializer = v.ProviderUpdateInput
    output_serializer = v.ProviderSerializer
    success_status = 201

    @extend_schema(request=input_serializer, responses={success_status: output_serializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        def act() -> Response:
            data = parse(self.input_serializer, request)
            city = get_object_or_404(selectors.staff_cities(request.user), code=data.pop("city").upper())
            require(request.user, Role.PROGRAMME_OFFICER, city.pk)
            provider = service.accredit_provider(
                city=city,
                actor=request.user,  # type: ignore[arg-type]
                credit_code=data["credit_code"],
                categories=data["categories"],
                accredited_from=data["accredited_from"],
                accredited_until=data["accredited_until"],
                offerings=data.get("offerings", []),
            )
            return Response(self.output_serializer.of(provider), status=self.success_status)

        return idempotency.run_once(request, idempotency.request_key(request), act)

    @extend_schema(request=update_input_serializer, responses={200: output_serializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        provider = get_object_or_404(selectors.providers_for(request.user), pk=kwargs["pk"])
        require(request.user, Role.PROGRAMME_OFFICER, provider.city_id)
        data = _not_empty(parse(self.update_input_serializer, request))
        service.change_provider(provider=provider, actor=request.user, **data)  # type: ignore[arg-type]
        return Response(self.output_serializer.of(provider))


class ProviderOfferingsApi(ActionApi):
    """Add an offering to an accredited provider: what it sells, in which category, of which class (domestic
    computing power may have its own rate)."""

    input_serializer = v.OfferingInput
    output_serializer = v.OfferingSerializer
    success_status = 201

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.providers_for(user)

    def permit(self, user: Any, obj: Provider) -> None:
        require(user, Role.PROGRAMME_OFFICER, obj.city_id)

    def perform(self, obj: Provider, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return service.add_offering(provider=obj, actor=user, **data)


@extend_schema(
    parameters=[
        OpenApiParameter("from", OpenApiTypes.DATE, description="Claims submitted on or after this day."),
        OpenApiParameter("to", OpenApiTypes.DATE, description="Claims submitted on or before this day."),
    ],
    responses={200: v.StatementSerializer},
)
class ProviderStatementApi(APIView):
    """GET /providers/{id}/statement/: the claims naming the provider, in every state, with what was claimed,
    approved and paid, and the totals (computed by the database). For the provider's users and the staff of its
    city. ?from= and ?to= narrow it to the claims submitted in those days (the site's local dates). Each pull is
    audited."""

    def get(self, request: Request, pk: int) -> Response:
        provider = get_object_or_404(
            selectors.providers_for(request.user)
            .select_related(*v.ProviderSerializer.joins)
            .prefetch_related("offerings"),
            pk=pk,
        )
        date_from, date_to = _day(request, "from"), _day(request, "to")
        claims = provider.claims.select_related("voucher__institution", "offering")
        if date_from is not None:
            claims = claims.filter(submitted_at__date__gte=date_from)
        if date_to is not None:
            claims = claims.filter(submitted_at__date__lte=date_to)
        totals = claims.aggregate(
            claims=Count("id"),
            claimed=Sum("amount", default=MONEY_ZERO),
            awaiting=Sum("amount", filter=Q(status=C.SUBMITTED), default=MONEY_ZERO),
            approved=Sum("approved_amount", filter=Q(status=C.PAID), default=MONEY_ZERO),
            paid_to_provider=Sum(
                "approved_amount",
                filter=Q(status=C.PAID, payee=VoucherScheme.Payee.PROVIDER),
                default=MONEY_ZERO,
            ),
            rejected=Sum("amount", filter=Q(status=C.REJECTED), default=MONEY_ZERO),
        )
        body = {
            "provider": provider,
            "date_from": date_from,
            "date_to": date_to,
            "totals": totals,
            "claims": claims.order_by("-submitted_at", "-id"),
        }
        data = v.StatementSerializer(body).data
        # A statement is a report pulled: audited as every report is, in the provider's city.
        audit.download(
            actor=request.user,
            report="provider_statement",
            format="json",
            filters={"provider": provider.pk, "from": date_from, "to": date_to},
            obj=provider,
            city_id=provider.city_id,
        )
        return Response(data)


def _day(request: Request, name: str) -> date | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    field = s.date_in()
    try:
        value: date = field.run_validation(raw)
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({name: exc.detail}) from None
    return value


# --- Schemes --------------------------------------------------------------------------------------------------


class SchemeFilter(df.FilterSet):
    city = CityCodeFilter(field_name="pool__programme__city__code", max_length=4)
    pool = id_filter("pool_id")

    class Meta:
        model = VoucherScheme
        fields = ["city", "pool"]


def _schemes(pools: QuerySet[Any]) -> QuerySet[VoucherScheme]:
    return VoucherScheme.objects.filter(pool__in=pools.values("pk")).select_related(
        *v.VoucherSchemeSerializer.joins
    )


class VoucherSchemeViewSet(mixins.CreateModelMixin, ScopedViewSet):
    """Pools run as vouchers, with their rules: rate per offering class, validity, who is paid. Everyone signed in
    reads the schemes of the calls they see (the rules are public); POST makes a pool of the caller's city run as
    vouchers and PATCH changes its rules (programme officers of the city)."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return _schemes(selectors.pools(user))

    serializer_class = v.VoucherSchemeSerializer
    filterset_class = SchemeFilter
    ordering_fields = ["created_at"]
    ordering = ["pool__programme__city__code", "pool__code", "id"]
    http_method_names = ["get", "post", "patch", "head", "options"]
    input_serializer = v.SchemeCreateInput
    update_input_serializer = v.SchemeUpdateInput
    output_serializer = v.VoucherSchemeSerializer
    success_status = 201

    @extend_schema(request=input_serializer, responses={success_status: output_serializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        def act() -> Response:
            data = parse(self.input_serializer, request)
            pool = get_object_or_404(selectors.pools_with_figures(request.user), pk=data.pop("pool"))
            require(request.user, Role.PROGRAMME_OFFICER, pool.programme.city_id)
            scheme = service.create_scheme(pool=pool, actor=request.user, **data)  # type: ignore[arg-type]
            return Response(self.output_serializer.of(scheme), status=self.success_status)

        return idempotency.run_once(request, idempotency.request_key(request), act)

    @extend_schema(request=update_input_serializer, responses={200: output_serializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        scheme = get_object_or_404(_schemes(selectors.pools_with_figures(request.user)), pk=kwargs["pk"])
        require(request.user, Role.PROGRAMME_OFFICER, scheme.pool.programme.city_id)
        data = _not_empty(parse(self.update_input_serializer, request))
        service.update_scheme(scheme=scheme, actor=request.user, **data)  # type: ignore[arg-type]
        return Response(self.output_serializer.of(scheme))


# --- Vouchers -------------------------------------------------------------------------------------------------


class VoucherFilter(df.FilterSet):
    city = CityCodeFilter(field_name="pool__programme__city__code", max_length=4)
    pool = id_filter("pool_id")
    institution = id_filter("institution_id")
    status = df.MultipleChoiceFilter(choices=Voucher.Status.choices)
    fiscal_year = year_filter("fiscal_year")
    code = df.CharFilter(field_name="code", max_length=40)

    class Meta:
        model = Voucher
        fields = ["city", "pool", "institution", "status", "fiscal_year", "code"]


def _officers_pool(request: Request, pool_id: int) -> Any:
    """The pool a voucher is issued from: among the pools of the caller's staff cities (404), for its programme
    officers (403)."""
    pool = get_object_or_404(selectors.pools_with_figures(request.user), pk=pool_id)
    require(request.user, Role.PROGRAMME_OFFICER, pool.programme.city_id)
    return pool


class VoucherViewSet(mixins.CreateModelMixin, ScopedViewSet):
    """Vouchers: city staff see their cities', holders their institutions'. POST issues one to an institution
    (by credit code or id): its face value is committed against every budget level of the pool as an award's is
    (409 `budget_exceeded` naming the level). Programme officers of the city."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.vouchers_for(user).select_related(*v.VoucherSerializer.joins)

    serializer_class = v.VoucherSerializer
    filterset_class = VoucherFilter
    ordering_fields = ["issued_at", "valid_until", "face_value"]
    ordering = ["-issued_at", "-id"]
    input_serializer = v.VoucherIssueInput
    output_serializer = v.VoucherSerializer
    success_status = 201

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = idempotency.request_key(request)

        def act() -> Response:
            data = parse(self.input_serializer, request)
            pool = _officers_pool(request, data["pool"])
            voucher = service.issue_voucher(
                pool=pool,
                institution=_holder(request, data),
                face_value=data["face_value"],
                actor=request.user,  # type: ignore[arg-type]
                valid_from=data["valid_from"],
                idempotency_key=idempotency.service_key(request, key),
            )
            return Response(self.output_serializer.of(voucher), status=self.success_status)

        return idempotency.run_once(request, key, act)


def _holder(request: Request, data: dict[str, Any]) -> Institution:
    """The holder: by id among the institutions the caller sees (404), or by credit code among all registered ones,
    as a bulk file names them."""
    if "institution" in data:
        return get_object_or_404(selectors.institutions(request.user), pk=data["institution"])
    code = service.normalise(data["credit_code"])
    institution = Institution.objects.filter(credit_code=code).first()
    if institution is None:
        message = _("No institution is registered with credit code %(code)s.") % {"code": code}
        raise InvalidInput(message, fields={"credit_code": [message]})
    return institution


@extend_schema(
    request={"multipart/form-data": v.VoucherBulkInput, "text/csv": OpenApiTypes.STR},
    parameters=[
        OpenApiParameter(
            "pool",
            OpenApiTypes.INT,
            description="The pool, when the CSV is the body (text/csv); in a multipart form it is a field.",
        )
    ],
    responses={201: v.VoucherBulkSerializer},
)
class VoucherBulkApi(UploadLimitMixin, APIView):
    """POST /vouchers/bulk/: issue vouchers from a CSV of credit codes and face values (header
    `credit_code,face_value[,valid_from]`), as a multipart form (`pool`, `file`) or as the body (text/csv,
    `?pool=`). Every row is checked first: if any is bad, 422 `bulk_refused` lists each bad row (`details.rows`:
    line, credit code, problems) and nothing is issued; otherwise all are issued in one transaction."""

    parser_classes = [MultiPartParser, CsvParser]
    max_body_bytes = MAX_CSV_BYTES + 64 * 1024
    output_serializer = v.VoucherBulkSerializer
    success_status = 201

    def post(self, request: Request) -> Response:
        key = idempotency.request_key(request)

        def act() -> Response:
            pool = _officers_pool(request, self._pool_id(request))
            try:
                vouchers = service.issue_bulk(
                    pool=pool,
                    csv_text=self._csv(request),
                    actor=request.user,  # type: ignore[arg-type]
                    idempotency_key=idempotency.service_key(request, key),
                )
            except csv.Error as exc:  # e.g. a field past the csv module's limit: not a file of vouchers
                message = _("The CSV file cannot be read (%(error)s).") % {"error": exc}
                raise InvalidInput(message, fields={"file": [message]}) from None
            issued = Voucher.objects.filter(pk__in=[x.pk for x in vouchers]).select_related(
                *v.VoucherSerializer.joins
            )
            body = {"pool": pool.pk, "issued": len(vouchers), "vouchers": issued.order_by("id")}
            return Response(self.output_serializer(body).data, status=self.success_status)

        return idempotency.run_once(request, key, act)

    @staticmethod
    def _pool_id(request: Request) -> int:
        # ?pool= first: then the pool's scope and the role are checked before the body is read.
        raw = request.query_params.get("pool")
        if raw is None and not isinstance(request.data, str):
            raw = request.data.get("pool")
        field = serializers.IntegerField(min_value=1, max_value=s.MAX_ID)
        try:
            return int(field.run_validation(raw))
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"pool": exc.detail}) from None

    @staticmethod
    def _csv(request: Request) -> str:
        if isinstance(request.data, str):
            return request.data
        upload = request.data.get("file") if hasattr(request.data, "get") else None
        if not isinstance(upload, UploadedFile):
            message = _("Send the CSV as the file field of a multipart form, or as a text/csv body.")
            raise InvalidInput(message, fields={"file": [message]})
        if (upload.size or 0) > MAX_CSV_BYTES:
            raise PayloadTooLarge()
        return _csv_text(upload.read(), field="file")


@extend_schema(responses={200: v.VoucherVerifySerializer})
class VoucherVerifyApi(APIView):
    """GET /vouchers/verify/{code}/: anyone (no sign-in) checks a printed voucher's code: the holder, the call,
    the face value, the validity and whether it is active, expired or spent. Nothing of its balance or claims.
    Throttled as every anonymous request (API_THROTTLE_ANON)."""

    permission_classes = [AllowAny]

    def get(self, request: Request, code: str) -> Response:
        voucher = service.find_by_code(code)  # read with the holder and the pool's city
        if voucher is None:
            raise Http404
        return Response(v.VoucherVerifySerializer(voucher).data)


# --- Claims ---------------------------------------------------------------------------------------------------


class ClaimFilter(df.FilterSet):
    city = CityCodeFilter(field_name="voucher__pool__programme__city__code", max_length=4)
    pool = id_filter("voucher__pool_id")
    voucher = id_filter("voucher_id")
    provider = id_filter("provider_id")
    status = df.MultipleChoiceFilter(choices=C.choices)
    reference = df.CharFilter(field_name="reference", max_length=50)

    class Meta:
        model = VoucherClaim
        fields = ["city", "pool", "voucher", "provider", "status", "reference"]


class VoucherClaimViewSet(UploadLimitMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Claims against vouchers: city staff see their cities', holders the claims on their vouchers, a provider's
    users the claims naming their institution. POST (multipart, with `invoice_file` and `payment_proof`) claims
    against a voucher named by `voucher` (id) or `voucher_code`, as a member of the holder or as a user of the
    provider sold to it. Every check is made and every failure listed at once: 422 `claim_refused` with
    `details.problems` per field and `details.checks`."""

    pagination_class = Pages
    parser_classes = [MultiPartParser]
    # Two documents of up to MAX_UPLOAD_BYTES each, and the form's fields.
    max_body_bytes = 2 * settings.MAX_UPLOAD_BYTES + 1024 * 1024
    serializer_class = v.VoucherClaimSerializer
    filterset_class = ClaimFilter
    ordering_fields = ["submitted_at", "amount", "decided_at"]
    ordering = ["-submitted_at", "-id"]
    input_serializer = v.ClaimCreateInput
    output_serializer = v.VoucherClaimSerializer
    success_status = 201

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.claims_for(self.request.user).select_related(*v.VoucherClaimSerializer.joins)

    @extend_schema(
        request={"multipart/form-data": input_serializer}, responses={success_status: output_serializer}
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = idempotency.request_key(request)

        def act() -> Response:
            data = parse(self.input_serializer, request)
            claim = service.submit_claim(
                voucher=self._voucher(request, data),
                actor=request.user,  # type: ignore[arg-type]
                data=service.ClaimInput.of(data, offering_id=data["offering"]),
                invoice_file=data["invoice_file"],
                payment_proof=data["payment_proof"],
                idempotency_key=idempotency.service_key(request, key),
            )
            return Response(self.output_serializer.of(claim), status=self.success_status)

        return idempotency.run_once(request, key, act)

    @staticmethod
    def _voucher(request: Request, data: dict[str, Any]) -> Voucher:
        """By id among the vouchers the caller sees (404); by code for anyone with it (a provider claims with the
        code its customer gave it: the code is what the public check shows). Whether the caller may claim on it
        is the service's question (403)."""
        if "voucher" in data:
            return get_object_or_404(selectors.vouchers_for(request.user), pk=data["voucher"])
        voucher = service.find_by_code(data["voucher_code"])
        if voucher is None:
            message = _("No voucher has this code.")
            raise InvalidInput(message, fields={"voucher_code": [message]})
        return voucher


# Every type a document may have been accepted as (grants/services/attachments.py): the download answers with it.
DOCUMENT_TYPES = sorted({kind.mime for kind in (*attachments.BY_DETECTED.values(), attachments.XLSX)})


@extend_schema(
    responses={
        **{(200, mime): OpenApiResponse(OpenApiTypes.BINARY) for mime in DOCUMENT_TYPES},
        404: OpenApiResponse(s.ErrorSerializer, description="No such claim or document in your scope."),
    }
)
class VoucherClaimFileApi(APIView):
    """GET /voucher-claims/{id}/files/{invoice_file|payment_proof}/: a document of a claim in your scope (city
    staff, the holder's members, the provider's users), always as a download with the type recognised at upload,
    as the portal serves an application's attachments."""

    def get(self, request: Request, pk: int, document: str) -> FileResponse:
        if document not in v.DOCUMENTS:
            raise Http404
        claim = get_object_or_404(selectors.claims_for(request.user), pk=pk)
        stored = getattr(claim, document)
        if not stored:
            raise Http404
        try:
            handle = stored.open("rb")
        except FileNotFoundError:
            raise Http404 from None
        name = stored.name.rsplit("/", 1)[-1]
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return FileResponse(handle, as_attachment=True, filename=name, content_type=content_type)


class ApplicationIssueVoucherApi(TransitionApi):
    """POST /applications/{id}/issue-voucher/: approve an application to a pool run as vouchers with a voucher
    instead of an award paid in tranches (201, the voucher). The same refusals as an approval (reviews, state,
    debarment, duplicate funding unacknowledged) and the same six budget levels; approving such an application
    with /approve/ answers 409 `voucher_pool`."""

    target = Application.Status.APPROVED
    input_serializer = v.IssueFromApplicationInput
    output_serializer = v.VoucherSerializer
    success_status = 201

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.applications(user)

    def perform(self, obj: Application, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return service.issue_from_application(
            application=obj, actor=user, amount=data.get("amount"), note=data["note"], idempotency_key=key
        )


class ClaimAction(TransitionApi):
    output_serializer: ClassVar[type[s.Output]] = v.VoucherClaimSerializer

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.claims_for(user).select_related("voucher__pool__programme")


class ClaimApproveApi(ClaimAction):
    """A finance officer of the city approves the claim, for the amount claimed or less, and records the payment:
    its amount is disbursed against the voucher's commitment (a ledger entry) to whoever the scheme pays; what the
    voucher has left stays its balance."""

    target = C.PAID
    input_serializer = v.ClaimApproveInput

    def perform(self, obj: VoucherClaim, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return service.approve_claim(
            claim=obj,
            actor=user,
            amount=data.get("amount"),
            payment_reference=data["payment_reference"],
        )


class ClaimRejectApi(ClaimAction):
    """A finance officer of the city rejects the claim with a reason the claimant sees; the amount it held goes
    back to the voucher's balance."""

    target = C.REJECTED
    input_serializer = v.ClaimRejectInput

    def perform(self, obj: VoucherClaim, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return service.reject_claim(claim=obj, actor=user, reason=data["reason"])
