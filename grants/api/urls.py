"""/api/v1/: listings from a router, one path per action, the reports and the API tokens."""

from django.urls import URLPattern, URLResolver, path, register_converter
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from grants.api import export_views, report_views, schema, views

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
router.register("programmes", views.ProgrammeViewSet, basename="programme")
router.register("pools", views.PoolViewSet, basename="pool")
router.register("institutions", views.InstitutionViewSet, basename="institution")
router.register("applications", views.ApplicationViewSet, basename="application")
router.register("reviews", views.ReviewViewSet, basename="review")
router.register("awards", views.AwardViewSet, basename="award")
router.register("tranches", views.TrancheViewSet, basename="tranche")
router.register("milestone-reports", views.MilestoneReportViewSet, basename="milestone-report")
router.register("recoveries", views.RecoveryViewSet, basename="recovery")
router.register("ledger", views.LedgerViewSet, basename="ledger-entry")
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")
router.register("tokens", views.TokenViewSet, basename="token")
router.register("exports", export_views.ExportViewSet, basename="export")

ACTIONS: dict[str, dict[str, type[APIView]]] = {
    "applications": {
        "submit": views.ApplicationSubmitApi,
        "withdraw": views.ApplicationWithdrawApi,
        "assign-reviewers": views.ApplicationAssignReviewersApi,
        "review": views.ApplicationReviewApi,
        "approve": views.ApplicationApproveApi,
        "reject": views.ApplicationRejectApi,
        "return": views.ApplicationReturnApi,
    },
    "awards": {
        "suspend": views.AwardSuspendApi,
        "resume": views.AwardResumeApi,
        "terminate": views.AwardTerminateApi,
        "amend": views.AwardAmendApi,
    },
    "tranches": {
        "release": views.TrancheReleaseApi,
        "pay": views.TranchePayApi,
        "withhold": views.TrancheWithholdApi,
        "unwithhold": views.TrancheUnwithholdApi,
        "cancel": views.TrancheCancelApi,
    },
    "milestone-reports": {"accept": views.MilestoneAcceptApi, "reject": views.MilestoneRejectApi},
    "recoveries": {"receipt": views.RecoveryReceiptApi},
    "alerts": {"acknowledge": views.AlertAcknowledgeApi},
    "tokens": {"revoke": views.TokenRevokeApi},
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
    path("exports/<id:pk>/file/", export_views.ExportFileApi.as_view(), name="export-file"),
]
urlpatterns += router.urls
