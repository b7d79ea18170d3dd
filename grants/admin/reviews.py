"""Reviewing in the admin: the reviewer's page (the conflict-of-interest declaration first, then the application,
its budget and files beside a form with no defaults), the officers' ranking of applications by average score per
pool with the spread between reviewers, and the duplicate-funding flags on an application's page with their
acknowledgement.

Every write calls a service (grants/services/reviews.py, applications.submit_review, duplicates.acknowledge_flag);
the ranking is the selector `review_ranking`.
"""

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from grants import selectors, services
from grants.admin.base import (
    Operation,
    OperationForm,
    ReadOnlyInline,
    ReasonForm,
    ScopedAdmin,
    city_scope,
    money,
)
from grants.errors import DomainError
from grants.models import Application, DuplicateFlag, Review
from grants.roles import Role, has_role
from grants.services import duplicates
from grants.services.levels import cost_share_limit, rate_for
from grants.services.reviews import CRITERIA, SCALE, declare_conflict

D = Review.Declaration


# --- Forms ----------------------------------------------------------------------------------------------------


class DeclarationForm(forms.Form):
    declaration = forms.ChoiceField(
        label=gettext_lazy("conflict of interest"),
        choices=[
            ("no_conflict", gettext_lazy("I have no conflict of interest with this applicant")),
            ("recused", gettext_lazy("I have a conflict of interest and recuse myself")),
        ],
        widget=forms.RadioSelect,
        error_messages={"required": gettext_lazy("Choose one: no conflict, or recuse yourself.")},
    )
    reason = forms.CharField(
        label=gettext_lazy("reason for recusal"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("Only if you recuse yourself, e.g. a former employer or a shareholding."),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("declaration") == "recused" and not (data.get("reason") or "").strip():
            self.add_error("reason", _("A reason is required to recuse."))
        return data


class ReviewForm(forms.Form):
    """No field has a default: every score and the recommendation are the reviewer's own choice."""

    recommendation = forms.ChoiceField(
        label=gettext_lazy("recommendation"),
        choices=Review.Recommendation.choices,
        widget=forms.RadioSelect,
        error_messages={"required": gettext_lazy("Choose fund, do not fund or revise.")},
    )
    recommended_amount = forms.DecimalField(
        label=gettext_lazy("recommended amount"),
        required=False,
        max_digits=18,
        decimal_places=2,
        min_value=Decimal("0.01"),
        help_text=gettext_lazy("In yuan; leave empty to recommend no particular amount."),
    )
    comment = forms.CharField(
        label=gettext_lazy("comment"), widget=forms.Textarea(attrs={"rows": 4}), required=False
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        scores = {
            criterion.name: forms.TypedChoiceField(
                label=criterion.label,
                help_text=criterion.description,
                choices=SCALE,
                coerce=int,
                widget=forms.RadioSelect,
                error_messages={"required": _("Choose a score from 1 to 5.")},
            )
            for criterion in CRITERIA
        }
        self.fields = {**scores, **self.fields}

    def score_fields(self) -> list[forms.BoundField]:
        return [self[c.name] for c in CRITERIA]

    def other_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ("recommendation", "recommended_amount", "comment")]


# --- Reviews --------------------------------------------------------------------------------------------------


@admin.register(Review)
class ReviewAdmin(ScopedAdmin):
    city_path = "application__pool__programme__city"
    change_list_template = "admin/grants/review_change_list.html"
    list_display = (
        "application",
        "reviewer",
        "declaration",
        "recommendation",
        "technical_merit",
        "feasibility",
        "impact",
        "submitted_at",
    )
    list_filter = (
        "declaration",
        "recommendation",
        ("application__pool__programme__city", admin.RelatedOnlyFieldListFilter),
        ("application__pool", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("application__reference", "application__institution__name_en", "reviewer__username")
    list_select_related = ("application", "reviewer")
    readonly_fields = (
        "application",
        "reviewer",
        "assigned_at",
        "declaration",
        "declared_at",
        "recusal_reason",
        "technical_merit",
        "feasibility",
        "impact",
        "recommendation",
        "recommended_amount",
        "comment",
        "submitted_at",
    )
    fields = readonly_fields
    # The review itself is its own page (`review_view`): declaration, then the application beside the form.
    operations = ()

    def scope_q(self, request: HttpRequest) -> Q:
        return city_scope(request.user, self.city_path) | Q(reviewer_id=request.user.pk)

    def operations_for(self, request: HttpRequest, obj: Any) -> list[tuple[Operation, str]]:
        if obj.reviewer_id != request.user.pk or obj.submitted_at is not None or obj.declaration == D.RECUSED:
            return []
        label = gettext_lazy("declare and review") if obj.declaration == D.PENDING else gettext_lazy("review")
        op = Operation("review", label, lambda *a: None, roles=(Role.REVIEWER,))
        return [(op, reverse("admin:grants_review_form", args=[obj.pk]))]

    def get_urls(self) -> list[URLPattern]:
        return [
            path("ranking/", self.admin_site.admin_view(self.ranking_view), name="grants_review_ranking"),
            path(
                "<path:object_id>/form/",
                self.admin_site.admin_view(self.review_view),
                name="grants_review_form",
            ),
            *super().get_urls(),
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        context = {**(extra_context or {}), "show_ranking": selectors.is_city_staff(request.user)}
        return super().changelist_view(request, extra_context=context)

    # --- the reviewer's page

    def review_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        review = self.get_object_or_404(request, object_id)
        if review.reviewer_id != request.user.pk:
            raise PermissionDenied
        url = reverse("admin:grants_review_form", args=[review.pk])
        declaration_form = DeclarationForm(request.POST if "_declare" in request.POST else None)
        form = ReviewForm(request.POST if "_submit" in request.POST else None)
        if request.method == "POST" and "_declare" in request.POST and declaration_form.is_valid():
            try:
                declare_conflict(
                    review=review,
                    actor=request.user,  # admin_view: signed in
                    conflict=declaration_form.cleaned_data["declaration"] == "recused",
                    reason=declaration_form.cleaned_data["reason"],
                )
            except DomainError as exc:
                declaration_form.add_error(None, exc.message)
            else:
                return redirect(url)
        if request.method == "POST" and "_submit" in request.POST and form.is_valid():
            data = form.cleaned_data
            try:
                services.submit_review(
                    review=review,
                    actor=request.user,
                    technical_merit=data["technical_merit"],
                    feasibility=data["feasibility"],
                    impact=data["impact"],
                    recommendation=data["recommendation"],
                    recommended_amount=data.get("recommended_amount"),
                    comment=data.get("comment", ""),
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
                for name, problems in exc.fields.items():
                    for problem in problems:
                        form.add_error(name if name in form.fields else None, problem)
            else:
                self.message_user(
                    request, _("Your review of %(ref)s is submitted.") % {"ref": review.application}
                )
                return redirect(reverse("admin:grants_review_change", args=[review.pk]))
        review.refresh_from_db()
        application = review.application
        cleared = review.declaration == D.NO_CONFLICT
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Review of %(app)s") % {"app": application},
            "review": review,
            "application": application,
            "cleared": cleared,
            "declaration_form": declaration_form,
            "form": form,
            "criteria": CRITERIA,
            "scale": SCALE,
            "change_url": reverse("admin:grants_review_change", args=[review.pk]),
            **(self._content(application) if cleared else {}),
        }
        return TemplateResponse(request, "admin/grants/review_form.html", context)

    @staticmethod
    def _content(application: Application) -> dict[str, Any]:
        """The application as the reviewer reads it: its text, its budget and its files (downloaded through the
        portal, which asks the same scope: grants.selectors.cleared_reviews)."""
        pool = application.pool
        rate = rate_for(pool, application.institution)
        limit = cost_share_limit(pool, application.institution, application.eligible_cost)
        budget = [
            (_("eligible project cost"), money(application.eligible_cost)),
            (_("requested amount"), money(application.requested_amount)),
            (
                _("co-funding by the applicant"),
                money(application.eligible_cost - application.requested_amount),
            ),
            (_("duration (years)"), str(application.duration_years)),
            (_("proposed start"), application.proposed_start.isoformat()),
        ]
        if rate is not None and limit is not None:
            budget.append(
                (
                    _("most the call's rate allows (%(rate)s%%)") % {"rate": f"{(rate * 100).normalize():f}"},
                    money(limit),
                )
            )
        attachments = [
            (a, reverse("portal:attachment", args=[application.pk, a.pk]))
            for a in application.attachments.order_by("uploaded_at")
        ]
        return {"budget": budget, "attachments": attachments}

    # --- the officers' ranking

    def ranking_view(self, request: HttpRequest) -> HttpResponse:
        if not selectors.is_city_staff(request.user):
            raise PermissionDenied
        pools = selectors.pools_with_figures(request.user)
        chosen = request.GET.get("pool")
        pool_id = int(chosen) if chosen and chosen.isdigit() else None
        rows = selectors.review_ranking(request.user, pool_id=pool_id)
        groups: dict[int, dict[str, Any]] = {}
        for row in rows:
            group = groups.setdefault(row.application.pool_id, {"pool": row.application.pool, "rows": []})
            group["rows"].append(row)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Applications ranked by reviewers' average score"),
            "pools": pools,
            "pool_id": pool_id,
            "groups": list(groups.values()),
        }
        return TemplateResponse(request, "admin/grants/review_ranking.html", context)


# --- Duplicate-funding flags --------------------------------------------------------------------------------------


def _acknowledge(actor: Any, flag: DuplicateFlag, d: dict[str, Any]) -> DuplicateFlag:
    return duplicates.acknowledge_flag(flag=flag, actor=actor, reason=d["reason"])


class AcknowledgeForm(ReasonForm, OperationForm):
    pass


class FlagColumns:
    """What the officer sees of the other application: reference, city, status and amount, nothing else."""

    @admin.display(description=gettext_lazy("similar to"))
    def other_reference(self, flag: DuplicateFlag) -> str:
        return duplicates.view(flag).reference

    @admin.display(description=gettext_lazy("city"))
    def other_city(self, flag: DuplicateFlag) -> str:
        return duplicates.view(flag).city

    @admin.display(description=gettext_lazy("status"))
    def other_status(self, flag: DuplicateFlag) -> str:
        return duplicates.view(flag).status_label

    @admin.display(description=gettext_lazy("amount"))
    def other_amount(self, flag: DuplicateFlag) -> str:
        return money(duplicates.view(flag).amount)


class StaffOnly:
    """Flags are for the staff of the application's city (the querysets are scoped); reviewers and applicants
    never see them."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return selectors.is_city_staff(request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return selectors.is_city_staff(request.user)


class DuplicateFlagInline(StaffOnly, FlagColumns, ReadOnlyInline):
    model = DuplicateFlag
    fk_name = "application"
    verbose_name = gettext_lazy("similar application or award of the same institution")
    verbose_name_plural = gettext_lazy(
        "duplicate funding: similar applications or awards of the same institution"
    )
    fields = (
        "other_reference",
        "other_city",
        "other_status",
        "other_amount",
        "similarity",
        "found_on",
        "acknowledgement",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related(*duplicates.VIEW_JOINS)

    @admin.display(description=gettext_lazy("acknowledgement"))
    def acknowledgement(self, flag: DuplicateFlag) -> str:
        if flag.acknowledged_at is not None:
            return format_html(
                "{} ({}, {}): {}",
                _("acknowledged"),
                flag.acknowledged_by,
                flag.acknowledged_at.strftime("%Y-%m-%d"),
                flag.reason,
            )
        url = reverse("admin:grants_duplicateflag_op", args=[flag.pk, "acknowledge"])
        return format_html(
            '<strong class="bad">{}</strong> <a class="button op-acknowledge" href="{}">{}</a>',
            _("not acknowledged: approval waits"),
            url,
            _("Acknowledge with a reason"),
        )


@admin.register(DuplicateFlag)
class DuplicateFlagAdmin(StaffOnly, FlagColumns, ScopedAdmin):
    city_path = "application__pool__programme__city"
    list_display = (
        "application",
        "other_reference",
        "other_city",
        "other_status",
        "other_amount",
        "similarity",
        "found_on",
        "acknowledged_at",
    )
    list_filter = ("found_on", ("application__pool__programme__city", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("application", *duplicates.VIEW_JOINS)
    search_fields = ("application__reference", "other__reference")
    readonly_fields = (
        "application",
        "other_reference",
        "other_city",
        "other_status",
        "other_amount",
        "similarity",
        "found_on",
        "found_at",
        "acknowledged_by",
        "acknowledged_at",
        "reason",
    )
    fields = readonly_fields
    operations = (
        Operation(
            "acknowledge",
            gettext_lazy("acknowledge"),
            _acknowledge,
            roles=(Role.PROGRAMME_OFFICER,),
            form_class=AcknowledgeForm,
            available=lambda flag: flag.acknowledged_at is None,
            bulk=False,
        ),
    )

    def operation_summary(self, obj: Any) -> list[tuple[str, Any]]:
        shown = duplicates.view(obj)
        return [
            (_("application"), obj.application),
            (_("similar to"), shown.reference),
            (_("city"), shown.city),
            (_("status"), shown.status_label),
            (_("amount"), money(shown.amount)),
        ]

    def may_take(self, request: HttpRequest, op: Operation) -> bool:
        return has_role(request.user, Role.PROGRAMME_OFFICER)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def operation_view(self, request: HttpRequest, object_id: str, name: str) -> HttpResponse:
        response = super().operation_view(request, object_id, name)
        if response.status_code == 302:
            # Back to the application the flag stops, where the approval waits.
            flag = self.get_object_or_404(request, object_id)
            self.message_user(
                request,
                _("The approval of %(app)s may go ahead once every flag is acknowledged.")
                % {"app": flag.application},
                messages.INFO,
            )
            return redirect(reverse("admin:grants_application_change", args=[flag.application_id]))
        return response
