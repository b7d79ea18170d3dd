"""Award agreements and reporting duties in the admin (§16.2, §16.3).

- Report requirements: per pool, which reports awards owe (progress or financial, every N months and/or at the end)
  and the fields of each report's form, labelled in both languages. Awards approved afterwards get the duties.
- Reporting duties: the reports owed, with an overdue filter and flag (grants.selectors.overdue_duties); a programme
  officer accepts a submitted report or returns it with comments (the workflow's table says who may).
- Award agreements: issued with each award, accepted by the institution in the portal; the list shows which still
  wait for acceptance (their tranches are not released), the page who accepted, when and from where, and the PDF.
"""

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy

from grants import selectors
from grants.admin.base import OperationForm, ReadOnlyAdmin, ReadOnlyInline, ScopedAdmin, transition
from grants.admin.overdue import today
from grants.models import AwardAgreement, ReportAttachment, ReportField, ReportingDuty, ReportRequirement
from grants.services import agreements, reporting

RelatedOnly = admin.RelatedOnlyFieldListFilter
D = ReportingDuty.Status


# --- Requirements ---------------------------------------------------------------------------------------------


class ReportFieldInline(admin.TabularInline):
    model = ReportField
    extra = 1
    fields = ("position", "name", "label_en", "label_zh", "type", "required")


@admin.register(ReportRequirement)
class ReportRequirementAdmin(ScopedAdmin):
    city_path = "pool__programme__city"
    inlines = (ReportFieldInline,)
    list_display = ("name_en", "name_zh", "pool", "kind", "every_months", "at_end", "gates_milestones")
    list_filter = (("pool__programme__city", RelatedOnly), ("pool", RelatedOnly), "kind")
    search_fields = ("name_en", "name_zh", "pool__code")
    list_select_related = ("pool__programme__city",)
    fieldsets = (
        (None, {"fields": ("pool", "kind", "name_en", "name_zh")}),
        (
            gettext_lazy("When it is due"),
            {
                "fields": ("every_months", "at_end", "gates_milestones", "attachment_required"),
                "description": gettext_lazy(
                    "Awards approved from now on owe this report; awards already approved keep their schedule."
                ),
            },
        ),
    )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A requirement awards already owe stays (the duties refer to it); an unused one may go.
        return super().has_delete_permission(request, obj) and (obj is None or not obj.duties.exists())


# --- Duties ---------------------------------------------------------------------------------------------------


class OverdueDutyFilter(admin.SimpleListFilter):
    title = gettext_lazy("overdue")
    parameter_name = "overdue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("yes", gettext_lazy("overdue: still owed after its due date")),
            ("no", gettext_lazy("not overdue")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return selectors.overdue_duties(queryset, today=today())
        if self.value() == "no":
            return queryset.exclude(pk__in=selectors.overdue_duties(queryset, today=today()).values("pk"))
        return queryset


class CommentForm(OperationForm):
    note = forms.CharField(
        label=gettext_lazy("comments for the institution"), widget=forms.Textarea(attrs={"rows": 4})
    )


class OptionalCommentForm(OperationForm):
    note = forms.CharField(
        label=gettext_lazy("comments for the institution"),
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
    )


@admin.register(ReportingDuty)
class ReportingDutyAdmin(ReadOnlyAdmin):
    city_path = "pool__programme__city"
    list_display = (
        "__str__",
        "institution",
        "report",
        "due_date",
        "status",
        "overdue",
        "tranche",
        "submitted_at",
    )
    list_filter = (
        OverdueDutyFilter,
        "status",
        "kind",
        ("pool__programme__city", RelatedOnly),
        ("pool", RelatedOnly),
    )
    search_fields = ("award__reference", "award__institution__name_en", "award__institution__name_zh")
    list_select_related = ("award__institution", "requirement", "tranche__award")
    date_hierarchy = "due_date"
    readonly_fields = (
        "award",
        "report",
        "kind",
        "due_date",
        "overdue",
        "tranche",
        "status",
        "answers_",
        "files",
        "submitted_by",
        "submitted_at",
        "decided_by",
        "decided_at",
        "comment",
    )
    fields = readonly_fields
    export_fields = (
        (gettext_lazy("award"), "award__reference"),
        (gettext_lazy("institution"), "award__institution__name_en"),
        (gettext_lazy("funding pool"), "pool__code"),
        (gettext_lazy("kind"), "kind"),
        (gettext_lazy("due date"), "due_date"),
        (gettext_lazy("status"), "status"),
        (gettext_lazy("submitted at"), "submitted_at"),
        (gettext_lazy("decided at"), "decided_at"),
    )
    operations = (
        transition(
            "accept",
            gettext_lazy("accept the report"),
            lambda actor, duty, d: reporting.decide_report(
                duty=duty, actor=actor, accept=True, comment=d["note"]
            ),
            model=ReportingDuty,
            target=D.ACCEPTED,
            form_class=OptionalCommentForm,
            bulk=False,
        ),
        transition(
            "return",
            gettext_lazy("return the report with comments"),
            lambda actor, duty, d: reporting.decide_report(
                duty=duty, actor=actor, accept=False, comment=d["note"]
            ),
            model=ReportingDuty,
            target=D.RETURNED,
            form_class=CommentForm,
            bulk=False,
            danger=True,
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # The workflow's buttons ask the award's city: join it once for the page.
        return super().get_queryset(request).select_related("award__pool__programme", "requirement")

    def operation_summary(self, duty: ReportingDuty) -> list[tuple[str, Any]]:
        return [
            (str(gettext_lazy("award")), duty.award.reference),
            (str(gettext_lazy("report requirement")), duty.requirement.name),
            (str(gettext_lazy("due date")), duty.due_date),
            *[(label, value) for label, value in self._answers(duty)],
        ]

    @admin.display(description=gettext_lazy("institution"), ordering="award__institution__name_en")
    def institution(self, duty: ReportingDuty) -> str:
        return duty.award.institution.name

    @admin.display(description=gettext_lazy("report requirement"), ordering="requirement__name_en")
    def report(self, duty: ReportingDuty) -> str:
        return duty.requirement.name

    @admin.display(description=gettext_lazy("overdue"), boolean=True)
    def overdue(self, duty: ReportingDuty) -> bool:
        return selectors.is_overdue(duty, today())

    @staticmethod
    def _answers(duty: ReportingDuty) -> list[tuple[str, str]]:
        answers = duty.answers or {}
        return [(f.label, str(answers.get(f.name, "—"))) for f in duty.requirement.fields.all()]

    @admin.display(description=gettext_lazy("answers"))
    def answers_(self, duty: ReportingDuty) -> SafeString:
        rows = self._answers(duty)
        if not rows:
            return format_html("{}", "—")
        return format_html(
            "<dl>{}</dl>",
            format_html_join("", "<dt>{}</dt><dd>{}</dd>", ((label, value) for label, value in rows)),
        )

    @admin.display(description=gettext_lazy("files"))
    def files(self, duty: ReportingDuty) -> SafeString:
        items = [
            (reverse("admin:grants_reportingduty_file", args=[duty.pk, a.pk]), a.original_name)
            for a in duty.attachments.all()
        ]
        if not items:
            return format_html("{}", "—")
        return format_html_join(format_html("<br>"), '<a href="{}">{}</a>', items)

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "<path:object_id>/files/<int:attachment_id>/",
                self.admin_site.admin_view(self.file_view),
                name="grants_reportingduty_file",
            )
        ]
        return [*extra, *super().get_urls()]

    def file_view(self, request: HttpRequest, object_id: str, attachment_id: int) -> FileResponse:
        duty = self.get_object_or_404(request, object_id)  # scoped: 404 outside the officer's cities
        if not self.has_view_permission(request, duty):
            raise Http404
        attachment = get_object_or_404(ReportAttachment, pk=attachment_id, duty=duty)
        try:
            handle = attachment.file.open("rb")
        except FileNotFoundError:
            raise Http404 from None
        return FileResponse(handle, as_attachment=True, filename=attachment.original_name)


class ReportingDutyInline(ReadOnlyInline):
    """The award's reports, on its page."""

    model = ReportingDuty
    fields = ("requirement", "due_date", "status", "tranche", "submitted_at")
    readonly_fields = fields
    show_change_link = True


# --- Agreements -----------------------------------------------------------------------------------------------


@admin.register(AwardAgreement)
class AwardAgreementAdmin(ReadOnlyAdmin):
    city_path = "award__pool__programme__city"
    list_display = (
        "award",
        "institution",
        "status",
        "issued_at",
        "accepted_by",
        "accepted_at",
        "accepted_from",
    )
    list_filter = ("status", ("award__pool__programme__city", RelatedOnly), ("award__pool", RelatedOnly))
    search_fields = ("award__reference", "award__institution__name_en", "award__institution__credit_code")
    list_select_related = ("award__institution", "accepted_by")
    readonly_fields = (
        "award",
        "status",
        "issued_at",
        "accepted_by",
        "accepted_at",
        "accepted_from",
        "terms_sha256",
        "document",
    )
    fields = readonly_fields

    @admin.display(description=gettext_lazy("institution"), ordering="award__institution__name_en")
    def institution(self, agreement: AwardAgreement) -> str:
        return agreement.award.institution.name

    @admin.display(description=gettext_lazy("document"))
    def document(self, agreement: AwardAgreement) -> SafeString:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:grants_awardagreement_pdf", args=[agreement.pk]),
            agreements.filename(agreement),
        )

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "<path:object_id>/agreement.pdf",
                self.admin_site.admin_view(self.pdf_view),
                name="grants_awardagreement_pdf",
            )
        ]
        return [*extra, *super().get_urls()]

    def pdf_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        agreement = self.get_object_or_404(request, object_id)
        if not self.has_view_permission(request, agreement):
            raise Http404
        response = HttpResponse(agreements.document(agreement), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{agreements.filename(agreement)}"'
        return response


def agreement_link(award: Any) -> SafeString:
    """The award's agreement for its admin page: status, acceptance and a link."""
    agreement = AwardAgreement.objects.filter(award=award).select_related("accepted_by").first()
    if agreement is None:
        return format_html("{}", gettext_lazy("none (approved before agreements)"))
    url = reverse("admin:grants_awardagreement_change", args=[agreement.pk])
    if agreement.status == AwardAgreement.Status.ACCEPTED:
        return format_html(
            '<a href="{}">{}</a>: {} {} ({})',
            url,
            agreement.get_status_display(),
            agreement.accepted_by,
            timezone.localtime(agreement.accepted_at).strftime("%Y-%m-%d %H:%M")
            if agreement.accepted_at
            else "",
            agreement.accepted_from or "—",
        )
    return format_html('<a href="{}">{}</a>', url, agreement.get_status_display())
