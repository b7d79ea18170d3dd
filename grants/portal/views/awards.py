"""The award's agreement and reports in the portal: download and accept the agreement; submit the reports the
pool asks for (and submit a returned one again). Reached from the application's page; everything is scoped to the
applicant's institutions through the application (404 otherwise)."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

from grants import audit, selectors, workflow
from grants.errors import DomainError
from grants.models import Application, Award, AwardAgreement, ReportAttachment, ReportingDuty
from grants.portal import selectors as portal_selectors
from grants.portal.report_forms import AgreementAcceptForm, ReportForm
from grants.portal.views.common import add_domain_error, current_user
from grants.services import agreements, reporting

G = AwardAgreement.Status
D = ReportingDuty.Status


def award_documents(request: HttpRequest, award: Award | None) -> dict[str, Any]:
    """The agreement and the reports for the application's page: what to show and which buttons (the workflow's)."""
    if award is None:
        return {"agreement": None, "duties": []}
    agreement = AwardAgreement.objects.filter(award=award).first()
    if agreement is not None:
        agreement.award = award
        agreement.acceptable = workflow.allowed(request.user, agreement, G.ACCEPTED)  # type: ignore[attr-defined]
    today = timezone.localdate()
    duties = list(award.reporting_duties.select_related("requirement", "tranche").order_by("due_date", "id"))
    for duty in duties:
        duty.award = award
        duty.overdue = selectors.is_overdue(duty, today)  # type: ignore[attr-defined]
        duty.submittable = workflow.allowed(request.user, duty, D.SUBMITTED)  # type: ignore[attr-defined]
    return {"agreement": agreement, "agreement_form": AgreementAcceptForm(), "duties": duties}


def _award_of(request: HttpRequest, pk: int) -> tuple[Application, Award]:
    application = portal_selectors.application_for(request.user, pk)
    award = getattr(application, "award", None) if application.status == Application.Status.APPROVED else None
    if award is None:
        raise Http404
    return application, award


@login_required
def agreement_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    _application, award = _award_of(request, pk)
    agreement = get_object_or_404(AwardAgreement, award=award)
    agreement.award = award
    body = agreements.document(agreement)
    audit.record(
        actor=current_user(request),
        action="agreement.download",
        obj=agreement,
        city_id=award.pool.programme.city_id,
        after={"terms_sha256": agreement.terms_sha256},
    )
    response = HttpResponse(body, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{agreements.filename(agreement)}"'
    return response


@login_required
def agreement_accept(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the agreement's summary, the document and the box to tick. POST: accept it."""
    application, award = _award_of(request, pk)
    agreement = get_object_or_404(AwardAgreement, award=award)
    agreement.award = award
    form = AgreementAcceptForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            agreements.accept_agreement(agreement=agreement, actor=current_user(request))
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(
                request,
                _("You accepted the award agreement of %(award)s. Its tranches are paid on their schedule.")
                % {"award": award.reference},
            )
            return redirect("portal:application", pk=pk)
    return render(
        request,
        "portal/agreement.html",
        {
            "application": application,
            "award": award,
            "agreement": agreement,
            "terms": agreement.terms,
            "acceptable": workflow.allowed(request.user, agreement, G.ACCEPTED),
            "form": form,
            "has_errors": bool(form.errors),
        },
        status=400 if form.errors else 200,
    )


@login_required
def report(request: HttpRequest, pk: int, duty_pk: int) -> HttpResponse:
    """GET: the report's form (with the answers of a returned report and the officer's comments). POST: submit."""
    application, award = _award_of(request, pk)
    duty = get_object_or_404(
        ReportingDuty.objects.select_related("requirement", "tranche").prefetch_related(
            "requirement__fields"
        ),
        pk=duty_pk,
        award=award,
    )
    duty.award = award
    submittable = workflow.allowed(request.user, duty, D.SUBMITTED)
    form = ReportForm(duty, request.POST if request.method == "POST" else None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data.get("file")
        try:
            reporting.submit_report(
                duty=duty,
                actor=current_user(request),
                answers=form.answers(),
                uploads=[upload] if upload else [],
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(
                request,
                _("Your report is submitted. The grant office will accept it or return it with comments."),
            )
            return redirect("portal:application", pk=pk)
    return render(
        request,
        "portal/report.html",
        {
            "application": application,
            "award": award,
            "duty": duty,
            "overdue": selectors.is_overdue(duty, timezone.localdate()),
            "submittable": submittable,
            "attachments": duty.attachments.all(),
            "form": form,
            "has_errors": bool(form.errors),
        },
        status=400 if form.errors else 200,
    )


@login_required
def report_file(request: HttpRequest, pk: int, duty_pk: int, attachment_pk: int) -> FileResponse:
    _application, award = _award_of(request, pk)
    attachment = get_object_or_404(ReportAttachment, pk=attachment_pk, duty_id=duty_pk, duty__award=award)
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        raise Http404 from None
    return FileResponse(handle, as_attachment=True, filename=attachment.original_name)
