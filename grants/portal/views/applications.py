"""Calls, applications, attachments, submission, the award and milestone reports."""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from grants import services, workflow
from grants.errors import DomainError, Ineligible
from grants.models import (
    Application,
    Attachment,
    FundingPool,
    InstitutionType,
    MilestoneReport,
    ReportingDuty,
    Tranche,
)
from grants.portal import selectors
from grants.portal.forms import ApplicationForm, AttachmentForm, MilestoneReportForm
from grants.portal.views.awards import award_documents
from grants.portal.views.common import add_domain_error, current_user
from grants.services import attachments as attachment_service
from grants.services.levels import rate_for

S = Application.Status
# The rows of the application summary, in order; eligibility failures are shown next to the row they concern.
SUMMARY_ROWS = (
    "pool",
    "institution",
    "title",
    "eligible_cost",
    "requested_amount",
    "duration_years",
    "proposed_start",
)


def calls(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/calls.html", {"calls": selectors.open_calls()})


def call_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pool = get_object_or_404(selectors.open_calls(), pk=pk)
    return render(request, "portal/call.html", _rules_context(pool))


def _rules_context(pool: FundingPool) -> dict[str, Any]:
    """The call's rules in the reader's language: institution types by their names, not their codes."""
    types = dict(InstitutionType.choices)
    overrides = sorted((pool.rate_by_type or {}).items())
    return {
        "pool": pool,
        "type_labels": [str(types[t]) for t in pool.eligible_types or [] if t in types],
        "rate_overrides": [(str(types.get(t, t)), Decimal(str(r))) for t, r in overrides],
    }


@login_required
def application_create(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool = get_object_or_404(selectors.open_calls(), pk=pool_pk)
    institutions = selectors.institutions_of(request.user)
    if not institutions:
        messages.info(request, _("Register your institution first; then you can apply."))
        return redirect("portal:institution_create")
    form = ApplicationForm(request.POST if request.method == "POST" else None, institutions=institutions)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            application = services.create_application(
                actor=current_user(request),
                institution=data["institution"],
                pool=pool,
                title=data["title"],
                summary=data["summary"],
                eligible_cost=data["eligible_cost"],
                requested_amount=data["requested_amount"],
                duration_years=data["duration_years"],
                proposed_start=data["proposed_start"],
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, _("Your draft is saved. Attach your documents, then submit."))
            return redirect("portal:application", pk=application.pk)
    return render(
        request,
        "portal/application_form.html",
        {**_rules_context(pool), "form": form, "application": None},
        status=400 if form.errors else 200,
    )


@login_required
def applications(request: HttpRequest) -> HttpResponse:
    return render(
        request, "portal/applications.html", {"applications": selectors.applications_of(request.user)}
    )


def _detail_context(
    request: HttpRequest,
    application: Application,
    *,
    bound_report: tuple[int, MilestoneReportForm] | None = None,
) -> dict[str, Any]:
    award = getattr(application, "award", None) if application.status == S.APPROVED else None
    tranches: list[Tranche] = []
    if award is not None:
        reports = MilestoneReport.objects.order_by("-submitted_at")
        tranches = list(
            award.tranches.order_by("sequence").prefetch_related(
                Prefetch("milestone_reports", reports),
                Prefetch("reporting_duties", ReportingDuty.objects.select_related("requirement")),
            )
        )
        for tranche in tranches:
            pending = [
                r for r in tranche.milestone_reports.all() if r.status != MilestoneReport.Status.REJECTED
            ]
            # A tranche unlocked by one of the award's scheduled reports is reported on there (Reports).
            due = (
                tranche.requires_milestone
                and tranche.status in workflow.OPEN_TRANCHE
                and not pending
                and not tranche.reporting_duties.all()
            )
            tranche.report_due = due  # type: ignore[attr-defined]
            if bound_report is not None and bound_report[0] == tranche.pk:
                tranche.report_form = bound_report[1]  # type: ignore[attr-defined]
            else:
                tranche.report_form = MilestoneReportForm(prefix=f"tranche-{tranche.pk}")  # type: ignore[attr-defined]
    pool = application.pool
    rate = rate_for(pool, application.institution)
    return {
        "application": application,
        "pool": pool,
        "rate": rate,
        "attachments": application.attachments.all(),
        "attachment_form": AttachmentForm(),
        # The buttons, shown exactly when the service would take the step (grants.workflow).
        "editable": workflow.editable(request.user, application),
        "deletable": application.status == S.DRAFT and not application.reference,
        "submittable": workflow.allowed(request.user, application, S.SUBMITTED),
        "withdrawable": workflow.allowed(request.user, application, S.WITHDRAWN),
        "timeline": selectors.timeline(application),
        "award": award,
        "tranches": tranches,
        **award_documents(request, award),
        "failures": {},
        "failure_list": [],
        "summary_rows": SUMMARY_ROWS,
    }


@login_required
def application_detail(request: HttpRequest, pk: int) -> HttpResponse:
    application = selectors.application_for(request.user, pk)
    return render(request, "portal/application.html", _detail_context(request, application))


@login_required
def application_edit(request: HttpRequest, pk: int) -> HttpResponse:
    application = selectors.application_for(request.user, pk)
    if not workflow.editable(request.user, application):
        messages.error(request, _("Only a draft or an application returned for changes can be edited."))
        return redirect("portal:application", pk=pk)
    initial = {name: getattr(application, name) for name in services.applications.EDITABLE_FIELDS}
    form = ApplicationForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_application(
                application=application, actor=current_user(request), **form.cleaned_data
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, _("Your changes are saved."))
            return redirect("portal:application", pk=pk)
    return render(
        request,
        "portal/application_form.html",
        {
            **_rules_context(selectors.pools_with_window().get(pk=application.pool_id)),
            "form": form,
            "application": application,
        },
        status=400 if form.errors else 200,
    )


def _confirm(
    request: HttpRequest,
    application: Any,
    act: Callable[[], object],
    *,
    done: str,
    then: HttpResponse,
    title: str,
    explanation: str,
    button: str,
) -> HttpResponse:
    """A confirmation page; on POST, one service call, its refusal shown on the same page."""
    error = ""
    if request.method == "POST":
        try:
            act()
        except DomainError as exc:
            error = exc.message
        else:
            messages.success(request, done)
            return then
    return render(
        request,
        "portal/confirm.html",
        {
            "application": application,
            "title": title,
            "explanation": explanation,
            "button": button,
            "error": error,
        },
        status=400 if error else 200,
    )


@login_required
def application_delete(request: HttpRequest, pk: int) -> HttpResponse:
    application = selectors.application_for(request.user, pk)
    return _confirm(
        request,
        application,
        lambda: services.delete_draft(application=application, actor=current_user(request)),
        done=_("The draft is deleted."),
        then=redirect("portal:applications"),
        title=_("Delete this draft?"),
        explanation=_("The draft and its attachments are removed for good."),
        button=_("Delete the draft"),
    )


@login_required
def application_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    application = selectors.application_for(request.user, pk)
    return _confirm(
        request,
        application,
        lambda: services.withdraw_application(application=application, actor=current_user(request)),
        done=_("The application is withdrawn."),
        then=redirect("portal:application", pk=pk),
        title=_("Withdraw this application?"),
        explanation=_("A withdrawn application cannot be submitted again; you would start a new one."),
        button=_("Withdraw the application"),
    )


@login_required
@require_POST
def application_submit(request: HttpRequest, pk: int) -> HttpResponse:
    application = selectors.application_for(request.user, pk)
    try:
        application = services.submit_application(application=application, actor=current_user(request))
    except Ineligible as exc:
        context = _detail_context(request, application)
        failures: dict[str, list[str]] = {}
        for _code, field, message in exc.failures:
            failures.setdefault(field if field in SUMMARY_ROWS else "pool", []).append(message)
        context["failures"] = failures
        # The summary at the top lists every failed rule, linked to the row it concerns.
        context["failure_list"] = [(field, message) for _code, field, message in exc.failures]
        context["submit_error"] = exc.message
        context["has_errors"] = True
        return render(request, "portal/application.html", context, status=400)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("portal:application", pk=pk)
    messages.success(
        request,
        _("Your application is submitted. Its reference is %(ref)s.") % {"ref": application.reference},
    )
    return redirect("portal:application", pk=pk)


@login_required
@require_POST
def attachment_add(request: HttpRequest, pk: int) -> HttpResponse:
    application = selectors.application_for(request.user, pk)
    form = AttachmentForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            attachment = attachment_service.add_attachment(
                application=application, actor=current_user(request), upload=form.cleaned_data["file"]
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, _("%(name)s is attached.") % {"name": attachment.original_name})
            return redirect("portal:application", pk=pk)
    context = _detail_context(request, application)
    context["attachment_form"] = form
    context["has_errors"] = True
    return render(request, "portal/application.html", context, status=400)


@login_required
@require_POST
def attachment_remove(request: HttpRequest, pk: int, attachment_pk: int) -> HttpResponse:
    application = selectors.application_for(request.user, pk)
    attachment = get_object_or_404(Attachment, pk=attachment_pk, application=application)
    try:
        attachment_service.remove_attachment(attachment=attachment, actor=current_user(request))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("%(name)s is removed.") % {"name": attachment.original_name})
    return redirect("portal:application", pk=pk)


@login_required
def attachment_download(request: HttpRequest, pk: int, attachment_pk: int) -> FileResponse:
    attachment = selectors.attachment_for(request.user, pk, attachment_pk)
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        raise Http404 from None
    # Always a download with the type recognised at upload, never rendered inline by the browser.
    return FileResponse(
        handle, as_attachment=True, filename=attachment.original_name, content_type=attachment.content_type
    )


@login_required
@require_POST
def milestone_report(request: HttpRequest, pk: int, tranche_pk: int) -> HttpResponse:
    application = selectors.application_for(request.user, pk)
    award = getattr(application, "award", None)
    if award is None:
        raise Http404
    tranche = get_object_or_404(Tranche, pk=tranche_pk, award=award)
    form = MilestoneReportForm(request.POST, request.FILES, prefix=f"tranche-{tranche.pk}")
    if form.is_valid():
        upload = form.cleaned_data["attachment"]
        try:
            if upload is not None:
                attachment_service.check_upload(upload)
            services.submit_milestone_report(
                tranche=tranche,
                actor=current_user(request),
                summary=form.cleaned_data["summary"],
                attachment=upload,
            )
        except DomainError as exc:
            for field, problems in exc.fields.items():
                for message in problems:
                    form.add_error(
                        "attachment" if field == "file" else (field if field in form.fields else None),
                        message,
                    )
            if not exc.fields:
                form.add_error(None, exc.message)
        else:
            messages.success(
                request, _("Your milestone report is submitted for tranche %(n)d.") % {"n": tranche.sequence}
            )
            return redirect("portal:application", pk=pk)
    context = _detail_context(request, application, bound_report=(tranche.pk, form))
    context["has_errors"] = True
    return render(request, "portal/application.html", context, status=400)


@login_required
def milestone_file(request: HttpRequest, pk: int, report_pk: int) -> FileResponse:
    application = selectors.application_for(request.user, pk)
    report = get_object_or_404(MilestoneReport, pk=report_pk, tranche__award__application=application)
    if not report.attachment:
        raise Http404
    try:
        handle = report.attachment.open("rb")
    except FileNotFoundError:
        raise Http404 from None
    return FileResponse(handle, as_attachment=True, filename=report.attachment.name.rsplit("/", 1)[-1])
