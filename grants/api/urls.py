"""/api/v1/: listings from a router, one path per action, the reports and the API tokens."""

from django.urls import URLPattern, URLResolver, path, register_converter
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from grants.api import (
    duty_views,
    export_views,
    fiscal_views,
    notice_views,
    proposal_views,
    report_views,
    schema,
    setup_views,
    views,
    voucher_reports,
    voucher_views,
)

# Imported for its registration with drf-spectacular (the token scheme in the OpenAPI document).
__all__ = ["schema"]


class SignedIntConverter:
    """Ids in action paths: any whole number, so a negative or absurd id is the API's own 404 in the error
    shape, not the site's HTML page for an unknown URL."""

    regex = "-?[0-9]+"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(SignedIntConverter, "id")

router = SimpleRouter()
router.register("cities", views.CityViewSet, basename="city")
router.register("programmes", setup_views.ProgrammeSetupViewSet, basename="programme")
router.register("pools", setup_views.PoolSetupViewSet, basename="pool")
router.register("institutions", views.InstitutionViewSet, basename="institution")
router.register("applications", views.ApplicationViewSet, basename="application")
router.register("reviews", views.ReviewViewSet, basename="review")
router.register("duplicate-flags", views.DuplicateFlagViewSet, basename="duplicate-flag")
router.register("awards", views.AwardViewSet, basename="award")
router.register("tranches", views.TrancheViewSet, basename="tranche")
router.register("milestone-reports", views.MilestoneReportViewSet, basename="milestone-report")
router.register("recoveries", views.RecoveryViewSet, basename="recovery")
router.register("reporting-duties", duty_views.ReportingDutyViewSet, basename="reporting-duty")
router.register("ledger", views.LedgerViewSet, basename="ledger-entry")
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")
router.register("tokens", views.TokenViewSet, basename="token")
router.register("exports", export_views.ExportViewSet, basename="export")
router.register("notifications", notice_views.NotificationViewSet, basename="notification")
router.register("proposals", proposal_views.ProposalViewSet, basename="proposal")
router.register("providers", voucher_views.ProviderViewSet, basename="provider")
router.register("voucher-schemes", voucher_views.VoucherSchemeViewSet, basename="voucher-scheme")
router.register("vouchers", voucher_views.VoucherViewSet, basename="voucher")
router.register("voucher-claims", voucher_views.VoucherClaimViewSet, basename="voucher-claim")

ACTIONS: dict[str, dict[str, type[APIView]]] = {
    "applications": {
        "submit": views.ApplicationSubmitApi,
        "withdraw": views.ApplicationWithdrawApi,
        "assign-reviewers": views.ApplicationAssignReviewersApi,
        "review": views.ApplicationReviewApi,
        "approve": views.ApplicationApproveApi,
        "propose": proposal_views.ApplicationProposeApi,
        "issue-voucher": voucher_views.ApplicationIssueVoucherApi,
        "reject": views.ApplicationRejectApi,
        "return": views.ApplicationReturnApi,
    },
    "awards": {
        "suspend": views.AwardSuspendApi,
        "resume": views.AwardResumeApi,
        "terminate": views.AwardTerminateApi,
        "amend": views.AwardAmendApi,
        "propose-amendment": proposal_views.AwardProposeAmendmentApi,
        "accept-agreement": duty_views.AwardAcceptAgreementApi,
    },
    "tranches": {
        "release": views.TrancheReleaseApi,
        "pay": views.TranchePayApi,
        "propose-payment": proposal_views.TrancheProposePaymentApi,
        "withhold": views.TrancheWithholdApi,
        "unwithhold": views.TrancheUnwithholdApi,
        "cancel": views.TrancheCancelApi,
        "reschedule": fiscal_views.TrancheRescheduleApi,
    },
    "pools": {"allotments": setup_views.PoolAllotmentsApi, "close": setup_views.PoolCloseApi},
    "milestone-reports": {"accept": views.MilestoneAcceptApi, "reject": views.MilestoneRejectApi},
    "recoveries": {"receipt": views.RecoveryReceiptApi},
    "reporting-duties": {
        "submit": duty_views.DutySubmitApi,
        "accept": duty_views.DutyAcceptApi,
        "return": duty_views.DutyReturnApi,
    },
    "alerts": {"acknowledge": views.AlertAcknowledgeApi},
    "reviews": {"declare": views.ReviewDeclareApi},
    "duplicate-flags": {"acknowledge": views.DuplicateFlagAcknowledgeApi},
    "tokens": {"revoke": views.TokenRevokeApi},
    "proposals": {
        "confirm": proposal_views.ProposalConfirmApi,
        "send-back": proposal_views.ProposalSendBackApi,
    },
    "notifications": {"read": notice_views.NotificationReadApi},
    "providers": {"offerings": voucher_views.ProviderOfferingsApi},
    "voucher-claims": {"approve": voucher_views.ClaimApproveApi, "reject": voucher_views.ClaimRejectApi},
}

urlpatterns: list[URLPattern | URLResolver] = [
    path(f"{resource}/<id:pk>/{action}/", view.as_view(), name=f"{resource}-{action}")
    for resource, actions in ACTIONS.items()
    for action, view in actions.items()
]
urlpatterns += [
    path("reports/disbursements/", report_views.DisbursementReportApi.as_view(), name="report-disbursements"),
    path("reports/budget/", report_views.BudgetReportApi.as_view(), name="report-budget"),
    path("reports/tranches/", report_views.TrancheExportApi.as_view(), name="report-tranches"),
    path("reports/360giving/", report_views.GivingPackageApi.as_view(), name="report-360giving"),
    path("reports/vouchers/", voucher_reports.VoucherReportApi.as_view(), name="report-vouchers"),
    path("exports/<id:pk>/file/", export_views.ExportFileApi.as_view(), name="export-file"),
    path(
        "programmes/<id:pk>/fiscal-years/<int:year>/close/",
        fiscal_views.FiscalYearCloseApi.as_view(),
        name="programme-fiscal-year-close",
    ),
    path(
        "notifications/read-all/",
        notice_views.NotificationReadAllApi.as_view(),
        name="notifications-read-all",
    ),
    path("awards/<id:pk>/agreement.pdf", duty_views.AgreementPdfApi.as_view(), name="award-agreement-pdf"),
    # Vouchers (issue 13). Before the router's urls: "bulk" and "verify" are not voucher ids.
    path(
        "providers/<id:pk>/statement/",
        voucher_views.ProviderStatementApi.as_view(),
        name="provider-statement",
    ),
    path("vouchers/bulk/", voucher_views.VoucherBulkApi.as_view(), name="voucher-bulk"),
    path("vouchers/verify/<str:code>/", voucher_views.VoucherVerifyApi.as_view(), name="voucher-verify"),
    path(
        "voucher-claims/<id:pk>/files/<str:document>/",
        voucher_views.VoucherClaimFileApi.as_view(),
        name="voucher-claim-file",
    ),
]
urlpatterns += router.urls
