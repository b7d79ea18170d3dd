"""Applications and reviews: officers assign reviewers, approve, reject or return; reviewers submit their review.

Approval has its own page: the officer sets the amount, the start and how the tranches split, reviews the schedule
that grants.services.default_schedule generates and the budget it will use, then confirms. The confirmation
carries a digest of the schedule shown: if the inputs changed since, the page shows the new schedule again instead
of approving something the officer has not seen.
"""

import hashlib
import uuid
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from grants import services, workflow
from grants.admin.base import (
    NoteForm,
    Operation,
    OperationForm,
    ReadOnlyInline,
    ScopedAdmin,
    city_scope,
    iso_date_input,
    money,
    transition,
    utilisation_bar,
)
from grants.admin.proposals import proposals_of
from grants.admin.reviews import DuplicateFlagInline
from grants.admin.vouchers import form_page
from grants.errors import DomainError
from grants.models import Application, Attachment, Proposal, Review, VoucherScheme
from grants.money import ZERO
from grants.roles import Role, city_ids, has_role, roles_of
from grants.selectors import PIPELINE_STATUSES, cleared_reviews, never_submitted
from grants.services.approval import approval_refusal
from grants.services.levels import cost_share_limit, levels_now, rate_for
from grants.services.vouchers import issue_from_application

RelatedOnly = admin.RelatedOnlyFieldListFilter
S = Application.Status
PO = (Role.PROGRAMME_OFFICER,)


def reviewer_choices(application: Application | None, request: HttpRequest | None) -> QuerySet[User]:
    """Users with the reviewer role in the application's city (or in the officer's cities for a bulk action)."""
    users = User.objects.filter(groups__name=Role.REVIEWER, is_active=True)
    if application is not None:
        city = application.pool.programme.city_id
        users = users.filter(Q(staff_scope__all_cities=True) | Q(staff_scope__cities=city))
    elif request is not None:
        ids = city_ids(request.user)
        if ids is not None:
            users = users.filter(Q(staff_scope__all_cities=True) | Q(staff_scope__cities__in=ids))
    return users.distinct().order_by("username")


class AssignReviewersForm(OperationForm):
    reviewers = forms.ModelMultipleChoiceField(
        label=gettext_lazy("reviewers"), queryset=User.objects.none(), widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reviewers"].queryset = reviewer_choices(self.obj, self.request)  # type: ignore[attr-defined]


class ReturnForm(OperationForm):
    note = forms.CharField(label=gettext_lazy("what must change"), widget=forms.Textarea(attrs={"rows": 3}))


class ReviewInline(ReadOnlyInline):
    model = Review
    fields = (
        "reviewer",
        "declaration",
        "technical_merit",
        "feasibility",
        "impact",
        "recommendation",
        "recommended_",
        "submitted_at",
    )
    readonly_fields = fields

    @admin.display(description=gettext_lazy("recommended amount"))
    def recommended_(self, review: Review) -> str:
        return money(review.recommended_amount)


class AttachmentInline(ReadOnlyInline):
    model = Attachment
    fields = ("original_name", "content_type", "size", "uploaded_at")
    readonly_fields = fields


class StatusFilter(admin.SimpleListFilter):
    title = gettext_lazy("stage")
    parameter_name = "stage"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("open", _("waiting for a decision")), ("decided", _("decided"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "open":
            return queryset.filter(status__in=PIPELINE_STATUSES)
        if self.value() == "decided":
            return queryset.filter(status__in=[S.APPROVED, S.REJECTED])
        return queryset


@admin.register(Application)
class ApplicationAdmin(ScopedAdmin):
    city_path = "pool__programme__city"
    list_display = (
        "reference_",
        "institution",
        "credit_code",
        "pool",
        "title",
        "requested_",
        "status",
        "submitted_at",
    )
    list_filter = (
        StatusFilter,
        "status",
        ("pool__programme__city", RelatedOnly),
        ("pool__programme", RelatedOnly),
        ("pool", RelatedOnly),
        "institution__type",
    )
    search_fields = (
        "reference",
        "title",
        "institution__name_en",
        "institution__name_zh",
        "institution__credit_code",
    )
    list_select_related = ("institution", "pool__programme__city")
    date_hierarchy = "submitted_at"
    inlines = (DuplicateFlagInline, ReviewInline, AttachmentInline)
    readonly_fields = (
        "reference",
        "institution",
        "pool",
        "status",
        "title",
        "summary",
        "eligible_",
        "requested_",
        "duration_years",
        "proposed_start",
        "submitted_at",
        "decided_at",
        "decision_note",
        "award_link",
        "proposals_",
    )
    fields = readonly_fields
    export_fields = (
        (gettext_lazy("reference"), "reference"),
        (gettext_lazy("city"), "pool__programme__city__code"),
        (gettext_lazy("programme"), "pool__programme__code"),
        (gettext_lazy("funding pool"), "pool__code"),
        (gettext_lazy("institution"), "institution__name_en"),
        (gettext_lazy("institution (Chinese)"), "institution__name_zh"),
        (gettext_lazy("unified social credit code"), "institution__credit_code"),
        (gettext_lazy("title"), "title"),
        (gettext_lazy("eligible project cost"), "eligible_cost"),
        (gettext_lazy("requested amount"), "requested_amount"),
        (gettext_lazy("duration (years)"), "duration_years"),
        (gettext_lazy("status"), "status"),
        (gettext_lazy("submitted at"), "submitted_at"),
    )
    operations = (
        Operation(
            "assign",
            gettext_lazy("assign reviewers"),
            lambda actor, app, d: services.assign_reviewers(
                application=app, actor=actor, reviewers=list(d["reviewers"])
            ),
            # Also while under review (more reviewers), so not only the transition: the service's own rule.
            roles=workflow.roles_for(Application, S.UNDER_REVIEW),
            form_class=AssignReviewersForm,
            available=lambda app: app.status in workflow.ASSIGNABLE,
            bulk_label=gettext_lazy("Assign reviewers to the selected applications"),
        ),
        transition(
            "return",
            gettext_lazy("return for changes"),
            lambda actor, app, d: services.return_application(application=app, actor=actor, note=d["note"]),
            model=Application,
            target=S.RETURNED,
            form_class=ReturnForm,
        ),
        transition(
            "reject",
            gettext_lazy("reject"),
            lambda actor, app, d: services.reject_application(application=app, actor=actor, note=d["note"]),
            model=Application,
            target=S.REJECTED,
            form_class=NoteForm,
            danger=True,
        ),
    )

    def scope_q(self, request: HttpRequest) -> Q:
        q = city_scope(request.user, self.city_path)
        if Role.REVIEWER in roles_of(request.user):
            # A reviewer sees the applications assigned to them once they declared no conflict of interest,
            # wherever an officer scope does not reach.
            q |= Q(pk__in=cleared_reviews(request.user).values("application_id"))
        # A draft never submitted is its institution's own work in progress: staff see it from its submission on.
        return q & ~never_submitted()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # applications come from institutions, through the portal or the API

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A submitted application is a record of the decision process; a never-submitted draft is deleted by its
        # institution (services.delete_draft), not by staff.
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions: dict[str, Any] = dict(super().get_actions(request))
        if has_role(request.user, Role.PROGRAMME_OFFICER):
            actions["approve"] = (
                type(self).approve_selected,
                "approve",
                _("Approve the selected application (review its schedule first)"),
            )
        return actions

    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(
                request,
                _("Approve one application at a time: each needs its schedule reviewed."),
                messages.WARNING,
            )
            return None
        return redirect(reverse("admin:grants_application_approve", args=[queryset.get().pk]))

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/approve/",
                self.admin_site.admin_view(self.approve_view),
                name="grants_application_approve",
            ),
            *super().get_urls(),
        ]

    def operations_for(self, request: HttpRequest, obj: Any) -> list[tuple[Operation, str]]:
        ops = super().operations_for(request, obj)
        if workflow.allowed(request.user, obj, S.APPROVED):
            approve = Operation(
                "approve", gettext_lazy("approve"), lambda *a: None, roles=PO, target=S.APPROVED
            )
            ops.insert(0, (approve, reverse("admin:grants_application_approve", args=[obj.pk])))
        return ops

    def approve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        application = self.get_object_or_404(request, object_id)
        if not has_role(request.user, Role.PROGRAMME_OFFICER):
            raise PermissionDenied
        change_url = reverse("admin:grants_application_change", args=[application.pk])
        # Not before it can succeed: the service's own check says why not and what to do first.
        refusal = approval_refusal(application, application.pool)
        # A proposal awaiting a second officer is decided (or sent back) first: its page says so and links it.
        pending = application.proposals.filter(
            kind=Proposal.Kind.APPROVAL, status=Proposal.Status.PENDING
        ).first()
        if refusal is not None or pending is not None:
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": _("Approve %(app)s") % {"app": application},
                "application": application,
                "refusal": refusal.message
                if refusal is not None
                else _("A proposal for this awaits a second officer: confirm it or send it back first."),
                "proposal_url": reverse("admin:grants_proposal_change", args=[pending.pk]) if pending else "",
                "change_url": change_url,
            }
            return TemplateResponse(request, "admin/grants/approve.html", context, status=409)
        if VoucherScheme.objects.filter(pool_id=application.pool_id).exists():
            return self.issue_voucher_view(request, application)
        form = ApproveForm(request.POST or None, application=application)
        schedule: list[services.TrancheSpec] = []
        if form.is_valid():
            try:
                schedule = form.schedule()
            except DomainError as exc:
                form.add_error(None, exc.message)
        digest = schedule_digest(schedule) if schedule else ""
        # Above the pool's threshold the same form proposes the approval for a second officer (maker-checker).
        second_officer = bool(schedule) and workflow.needs_second_officer(
            application.pool, Proposal.Kind.APPROVAL, form.cleaned_data["amount"]
        )
        if request.method == "POST" and "_confirm" in request.POST and schedule:
            if request.POST.get("digest") != digest:
                self.message_user(
                    request,
                    _("The schedule changed with your last edit: review it and confirm again."),
                    messages.WARNING,
                )
            else:
                decide = services.propose_approval if second_officer else services.approve_application
                try:
                    result = decide(
                        application=application,
                        actor=request.user,  # type: ignore[arg-type]  # admin_view: signed in
                        amount=form.cleaned_data["amount"],
                        start_date=form.cleaned_data["start_date"],
                        schedule=schedule,
                        note=form.cleaned_data["note"],
                        idempotency_key=form.cleaned_data["key"],
                    )
                except DomainError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                else:
                    if isinstance(result, Proposal):
                        self.message_user(
                            request,
                            _(
                                "Proposed for a second officer: %(amount)s is reserved until a second programme "
                                "officer confirms the approval or sends it back."
                            )
                            % {"amount": money(result.amount)},
                            messages.SUCCESS,
                        )
                        return redirect(reverse("admin:grants_proposal_change", args=[result.pk]))
                    self.message_user(
                        request,
                        _("Approved: award %(ref)s of %(amount)s, %(n)d tranche(s).")
                        % {"ref": result.reference, "amount": money(result.amount), "n": len(schedule)},
                        messages.SUCCESS,
                    )
                    return redirect(reverse("admin:grants_award_change", args=[result.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Approve %(app)s") % {"app": application},
            "application": application,
            "form": form,
            "schedule": [(t, money(t.amount)) for t in schedule],
            "schedule_total": money(sum((t.amount for t in schedule), ZERO)) if schedule else "",
            "digest": digest,
            "budget": approval_budget(application, schedule) if schedule else [],
            "change_url": change_url,
            "second_officer": second_officer,
            "threshold": money(application.pool.approval_threshold),
        }
        return TemplateResponse(request, "admin/grants/approve.html", context)

    def issue_voucher_view(self, request: HttpRequest, application: Application) -> HttpResponse:
        """In a pool run as vouchers the application is approved with a voucher (its face value, by default the
        requested amount) instead of an award paid in tranches: grants.services.vouchers.issue_from_application."""
        form = IssueVoucherForm(
            request.POST or None, initial={"amount": application.requested_amount, "key": uuid.uuid4().hex}
        )
        if request.method == "POST" and form.is_valid():
            try:
                voucher = issue_from_application(
                    application=application,
                    actor=request.user,  # type: ignore[arg-type]  # admin_view: signed in
                    amount=form.cleaned_data["amount"],
                    note=form.cleaned_data["note"],
                    idempotency_key=form.cleaned_data["key"],
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(
                    request,
                    _("Approved with voucher %(code)s of %(amount)s.")
                    % {"code": voucher.code, "amount": money(voucher.face_value)},
                    messages.SUCCESS,
                )
                return redirect(reverse("admin:grants_voucher_change", args=[voucher.pk]))
        return form_page(
            self,
            request,
            title=_("Approve %(app)s with a voucher") % {"app": application},
            form=form,
            intro=_(
                "This pool runs as vouchers: approving the application issues a voucher to %(holder)s, committed "
                "against every budget level, instead of an award paid in tranches."
            )
            % {"holder": application.institution.name},
            submit=_("Approve and issue the voucher"),
        )

    @admin.display(description=gettext_lazy("reference"), ordering="reference")
    def reference_(self, app: Application) -> str:
        return app.reference or _("draft #%(pk)s") % {"pk": app.pk}

    @admin.display(description=gettext_lazy("credit code"), ordering="institution__credit_code")
    def credit_code(self, app: Application) -> str:
        return app.institution.credit_code

    @admin.display(description=gettext_lazy("requested amount"), ordering="requested_amount")
    def requested_(self, app: Application) -> str:
        return money(app.requested_amount)

    @admin.display(description=gettext_lazy("eligible project cost"))
    def eligible_(self, app: Application) -> str:
        return money(app.eligible_cost)

    @admin.display(description=gettext_lazy("proposals for a second officer"))
    def proposals_(self, app: Application) -> SafeString:
        return proposals_of(app.proposals.filter(kind=Proposal.Kind.APPROVAL))

    @admin.display(description=gettext_lazy("award"))
    def award_link(self, app: Application) -> str:
        award = getattr(app, "award", None) if app.status == S.APPROVED else None
        if award is None:
            return "—"
        url = reverse("admin:grants_award_change", args=[award.pk])
        return format_html('<a href="{}">{}</a> ({})', url, award.reference, money(award.amount))


class IssueVoucherForm(forms.Form):
    amount = forms.DecimalField(
        label=gettext_lazy("face value"), max_digits=18, decimal_places=2, min_value=Decimal("0.01")
    )
    note = forms.CharField(
        label=gettext_lazy("note to the applicant"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    key = forms.CharField(widget=forms.HiddenInput)


class ApproveForm(forms.Form):
    amount = forms.DecimalField(
        label=gettext_lazy("award amount"), max_digits=18, decimal_places=2, min_value=Decimal("0.01")
    )
    start_date = forms.DateField(label=gettext_lazy("start date"), widget=iso_date_input())
    first_share = forms.DecimalField(
        label=gettext_lazy("share of the first tranche"),
        required=False,
        max_digits=5,
        decimal_places=4,
        min_value=Decimal("0.0001"),
        max_value=Decimal("0.9999"),
        help_text=gettext_lazy("e.g. 0.40; empty: equal tranches."),
    )
    milestone_gated = forms.BooleanField(
        label=gettext_lazy("tranches after the first need an accepted milestone report"), required=False
    )
    note = forms.CharField(
        label=gettext_lazy("note"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("Shown to the applicant word for word, with the award."),
    )
    key = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, data: Any = None, *, application: Application) -> None:
        self.application = application
        recommended = application.reviews.filter(submitted_at__isnull=False, recommended_amount__isnull=False)
        amounts = [r.recommended_amount for r in recommended]
        suggestion = min([application.requested_amount, *amounts])
        super().__init__(
            data,
            initial={
                "amount": suggestion,
                "start_date": application.proposed_start,
                "milestone_gated": True,
                "key": f"admin-approve-{application.pk}-{uuid.uuid4().hex}",
            },
        )
        if data is None:
            # Unbound: show the schedule of the suggested figures at once.
            self.data = {
                k: ("on" if v is True else v) for k, v in self.initial.items() if v not in (False, None)
            }
            self.is_bound = True

    def schedule(self) -> list[services.TrancheSpec]:
        data = self.cleaned_data
        return services.default_schedule(
            amount=data["amount"],
            start=data["start_date"],
            duration_years=self.application.duration_years,
            first_share=data.get("first_share"),
            milestone_gated=data.get("milestone_gated", False),
        )


def schedule_digest(schedule: list[services.TrancheSpec]) -> str:
    text = ";".join(f"{t.scheduled_date}|{t.amount}|{t.requires_milestone}" for t in schedule)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def approval_budget(application: Application, schedule: list[services.TrancheSpec]) -> list[dict[str, Any]]:
    """The levels of §4 the approval will be checked against, as the service computes them (`levels_now`), with
    what is left now: the officer sees which one would refuse before confirming (the service still decides, under
    its locks)."""
    pool = application.pool
    by_year: dict[int, Decimal] = {}
    for t in schedule:
        by_year[t.fiscal_year] = by_year.get(t.fiscal_year, ZERO) + t.amount
    rows = levels_now(
        pool_id=pool.pk,
        institution_id=application.institution_id,
        asked_by_year=by_year,
        award_total=sum(by_year.values(), ZERO),
        cost_share_limit=cost_share_limit(pool, application.institution, application.eligible_cost),
    )
    figures = {"rate": f"{((rate_for(pool, application.institution) or ZERO) * 100).normalize():f}"}
    return [
        {
            "level": row.name,
            "name": str(LEVEL_LABELS[row.name]) % {**figures, "year": row.fiscal_year},
            "asked": money(row.asked),
            "left": money(max(row.left, ZERO)),
            "ok": row.has_room,
            "bar": utilisation_bar(row.used, row.limit) if row.name in COUNTERS and row.limit else "",
        }
        for row in rows
    ]


LEVEL_LABELS = {
    "pool_cap": gettext_lazy("pool cap"),
    "fiscal_year_allotment": gettext_lazy("allotment %(year)d"),
    "institution_year": gettext_lazy("institution's maximum in %(year)d"),
    "per_award": gettext_lazy("per-award maximum"),
    "cost_share": gettext_lazy("cost-share limit (%(rate)s%%)"),
    "programme_total": gettext_lazy("programme total"),
}
# The levels kept as counters (committed out of an amount) show how full they are.
COUNTERS = {"pool_cap", "fiscal_year_allotment", "programme_total"}


# --- Reviews and attachments --------------------------------------------------------------------------------


# The review page, the reviewers' list and the ranking live in grants/admin/reviews.py.


@admin.register(Attachment)
class AttachmentAdmin(ScopedAdmin):
    city_path = "application__pool__programme__city"
    list_display = ("original_name", "application", "content_type", "size", "uploaded_at")
    search_fields = ("original_name", "application__reference")
    list_select_related = ("application",)
    readonly_fields = ("application", "original_name", "content_type", "size", "uploaded_by", "uploaded_at")
    fields = readonly_fields

    def scope_q(self, request: HttpRequest) -> Q:
        q = city_scope(request.user, self.city_path)
        if Role.REVIEWER in roles_of(request.user):
            q |= Q(application_id__in=cleared_reviews(request.user).values("application_id"))
        return q & ~never_submitted("application__")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
