"""Vouchers in the portal: the holder's vouchers (list, detail, a printable page with a QR code), claims by the
holder or by the provider, the provider's claims and statement, and the public verification of a code.

Who sees what is the selectors' answer (grants.selectors.vouchers_for, claims_for, provider_institutions), narrowed
here to what the portal is for: a voucher's pages to members of its holder institution, a claim to its holder and
to the provider it names. Anything else is a 404. Every rule of a claim is the service's
(grants.services.vouchers.submit_claim), which lists every failed check at once; the page shows each next to its
field and stores nothing.
"""

from decimal import Decimal
from typing import Any

import segno
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, QuerySet, Sum
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from grants import selectors
from grants.errors import DomainError
from grants.models import InstitutionMember, Offering, OfferingClass, Provider, Voucher, VoucherClaim
from grants.portal.views.common import current_user
from grants.portal.voucher_forms import ClaimForm, ProviderChoiceForm, VoucherCodeForm
from grants.services import vouchers
from grants.services.vouchers import ClaimRefused

C = VoucherClaim.Status


# --- Scopes -------------------------------------------------------------------------------------------------------


def _held_vouchers(user: Any) -> QuerySet[Voucher]:
    """The vouchers of the institutions the user is a member of (staff see theirs in the admin, not here)."""
    return (
        selectors.vouchers_for(user)
        .filter(institution_id__in=_member_of(user))
        .select_related("pool__programme__city", "institution", "scheme")
    )


def _member_of(user: Any) -> QuerySet[InstitutionMember, int]:
    """The ids of the user's institutions, as a subquery (a join through the memberships would repeat rows)."""
    return InstitutionMember.objects.filter(user_id=user.pk).values_list("institution_id", flat=True)


def _held_voucher(user: Any, pk: int) -> Voucher:
    try:
        return _held_vouchers(user).get(pk=pk)
    except Voucher.DoesNotExist:
        raise Http404 from None


def _claims(user: Any) -> QuerySet[VoucherClaim]:
    """The claims the user is a party to: those on their institution's vouchers, and those naming the provider
    they act for."""
    mine = Q(voucher__institution_id__in=_member_of(user))
    named = Q(provider__institution_id__in=selectors.provider_institutions(user))
    return (
        selectors.claims_for(user)
        .filter(mine | named)
        .select_related(
            "voucher__pool__programme__city",
            "voucher__institution",
            "provider__institution",
            "offering",
            "submitted_by",
        )
    )


def _claim(user: Any, claim_pk: int) -> VoucherClaim:
    try:
        return _claims(user).get(pk=claim_pk)
    except VoucherClaim.DoesNotExist:
        raise Http404 from None


def _provider_claims(user: Any) -> QuerySet[VoucherClaim]:
    return (
        selectors.claims_for(user)
        .filter(provider__institution_id__in=selectors.provider_institutions(user))
        .select_related(
            "voucher__pool__programme__city", "voucher__institution", "offering", "provider__city"
        )
    )


def _is_holder(user: Any, voucher: Voucher) -> bool:
    return _member_of(user).filter(institution_id=voucher.institution_id).exists()


# --- The holder's vouchers ------------------------------------------------------------------------------------------


@login_required
def voucher_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "portal/vouchers/list.html",
        {
            "vouchers": _held_vouchers(request.user).order_by("-issued_at", "-id"),
            "today": timezone.localdate(),
        },
    )


def _holder_providers(voucher: Voucher) -> QuerySet[Provider]:
    """The providers the city publishes for the voucher's category (grants.selectors.accredited_providers), as
    they stand today or on the voucher's last day if it has passed. Whether the accreditation covers the invoice
    date is the service's check, with its message."""
    on = min(timezone.localdate(), voucher.valid_until)
    found = selectors.accredited_providers(voucher.pool.programme.city_id, voucher.pool.category, on)
    return (
        Provider.objects.filter(pk__in=[p.pk for p in found])
        .select_related("institution")
        .order_by("institution__name_en")
    )


@login_required
def voucher_detail(request: HttpRequest, pk: int) -> HttpResponse:
    voucher = _held_voucher(request.user, pk)
    claims = voucher.claims.select_related("provider__institution", "offering").order_by(
        "-submitted_at", "-id"
    )
    return render(
        request,
        "portal/vouchers/detail.html",
        {
            "voucher": voucher,
            "claims": claims,
            "rates": _rates(voucher),
            "provider_form": ProviderChoiceForm(providers=_holder_providers(voucher)),
            "claimable": voucher.status == Voucher.Status.ACTIVE,
        },
    )


def _rates(voucher: Voucher) -> list[tuple[str, Decimal]]:
    labels = dict(OfferingClass.choices)
    return [(str(labels.get(k, k)), Decimal(str(v))) for k, v in sorted((voucher.scheme.rates or {}).items())]


def verify_url(request: HttpRequest, voucher: Voucher) -> str:
    return request.build_absolute_uri(f"{reverse('portal:voucher_verify')}?code={voucher.code}")


@login_required
def voucher_print(request: HttpRequest, pk: int) -> HttpResponse:
    """A page to print: the code, as text and as a QR code of the verification URL (drawn here, inline SVG)."""
    voucher = _held_voucher(request.user, pk)
    url = verify_url(request, voucher)
    qr = segno.make(url, error="m").svg_inline(scale=4, dark="#000", light="#fff")
    return render(
        request, "portal/vouchers/print.html", {"voucher": voucher, "verify_url": url, "qr_svg": qr}
    )


# --- Claims ---------------------------------------------------------------------------------------------------------


def _show_problems(form: ClaimForm, problems: dict[str, list[str]]) -> None:
    """Each failed check next to its field; those about the voucher or the provider at the top."""
    for field, field_messages in problems.items():
        for message in field_messages:
            form.add_error(field if field in form.fields else None, message)


def _submit(request: HttpRequest, voucher: Voucher, form: ClaimForm) -> VoucherClaim | None:
    """One call of the service; None with the form's errors set when it refuses (nothing stored). The service
    checks the two files as application attachments are checked, with the claim's own checks, all at once."""
    if not form.is_valid():
        return None
    actor = current_user(request)
    submission = form.cleaned_data.get("submission")
    try:
        return vouchers.submit_claim(
            voucher=voucher,
            actor=actor,
            data=form.claim_input(),
            invoice_file=form.cleaned_data["invoice_file"],
            payment_proof=form.cleaned_data["payment_proof"],
            # A form sent twice (a double click, a reload) makes one claim.
            idempotency_key=f"portal-claim:{actor.pk}:{submission}" if submission else None,
        )
    except ClaimRefused as exc:
        _show_problems(form, exc.details.get("problems") or exc.fields)
    except DomainError as exc:
        _show_problems(form, exc.fields or {"voucher": [exc.message]})
    return None


def _claim_page(
    request: HttpRequest, voucher: Voucher, form: ClaimForm, context: dict[str, Any]
) -> HttpResponse:
    return render(
        request,
        "portal/vouchers/claim_form.html",
        {
            "voucher": voucher,
            "form": form,
            "rates": _rates(voucher),
            "has_errors": bool(form.errors),
            **context,
        },
        status=400 if form.errors else 200,
    )


def _submitted(request: HttpRequest, claim: VoucherClaim) -> HttpResponse:
    messages.success(
        request,
        _(
            "Claim %(ref)s is submitted. Its amount is held on the voucher until the city's finance office "
            "verifies it."
        )
        % {"ref": claim.reference},
    )
    return redirect("portal:claim", claim_pk=claim.pk)


@login_required
def voucher_claim(request: HttpRequest, pk: int) -> HttpResponse:
    """The holder's claim: first the accredited provider (a GET form on the voucher's page), then the claim with
    that provider's offerings."""
    voucher = _held_voucher(request.user, pk)
    providers = _holder_providers(voucher)
    choice = ProviderChoiceForm(request.POST or request.GET or None, providers=providers)
    if not choice.is_valid():
        return render(
            request,
            "portal/vouchers/choose_provider.html",
            {"voucher": voucher, "provider_form": choice, "has_errors": choice.is_bound},
            status=400 if choice.is_bound else 200,
        )
    provider = choice.cleaned_data["provider"]
    offerings = Offering.objects.filter(provider=provider, category=voucher.pool.category).order_by("name")
    form = ClaimForm(
        request.POST if request.method == "POST" else None,
        request.FILES if request.method == "POST" else None,
        offerings=offerings,
    )
    if request.method == "POST":
        claim = _submit(request, voucher, form)
        if claim is not None:
            return _submitted(request, claim)
    return _claim_page(
        request, voucher, form, {"provider": provider, "as_provider": False, "no_offerings": not offerings}
    )


@login_required
def provider_claim(request: HttpRequest) -> HttpResponse:
    """A provider user's claim against a customer's voucher, found by its code."""
    user = request.user
    institutions = selectors.provider_institutions(user)
    if not institutions:
        return render(request, "portal/vouchers/not_provider.html")
    source = request.POST if request.method == "POST" else request.GET
    lookup = VoucherCodeForm(source if "code" in source else None)
    voucher = vouchers.find_by_code(lookup.cleaned_data["code"]) if lookup.is_valid() else None
    if lookup.is_valid() and voucher is None:
        lookup.add_error("code", _("No voucher has this code. Check it against the printed voucher."))
    if voucher is None:
        return render(
            request,
            "portal/vouchers/provider_find.html",
            {"lookup": lookup, "has_errors": bool(lookup.errors)},
            status=400 if lookup.errors else 200,
        )
    offerings = Offering.objects.filter(
        provider__institution_id__in=institutions,
        provider__city_id=voucher.pool.programme.city_id,
        category=voucher.pool.category,
    ).order_by("name")
    form = ClaimForm(
        request.POST if request.method == "POST" else None,
        request.FILES if request.method == "POST" else None,
        offerings=offerings,
    )
    if request.method == "POST":
        claim = _submit(request, voucher, form)
        if claim is not None:
            return _submitted(request, claim)
    return _claim_page(request, voucher, form, {"as_provider": True, "no_offerings": not offerings})


@login_required
def claim_detail(request: HttpRequest, claim_pk: int) -> HttpResponse:
    claim = _claim(request.user, claim_pk)
    return render(
        request,
        "portal/vouchers/claim.html",
        {
            "claim": claim,
            "is_holder": _is_holder(request.user, claim.voucher),
            "lowered": claim.status == C.PAID
            and claim.approved_amount is not None
            and claim.approved_amount < claim.amount,
        },
    )


def _file(request: HttpRequest, claim_pk: int, field: str) -> FileResponse:
    claim = _claim(request.user, claim_pk)
    stored = getattr(claim, field)
    if not stored:
        raise Http404
    try:
        handle = stored.open("rb")
    except FileNotFoundError:
        raise Http404 from None
    # Always a download, never rendered inline by the browser.
    return FileResponse(handle, as_attachment=True, filename=stored.name.rsplit("/", 1)[-1])


@login_required
def claim_invoice(request: HttpRequest, claim_pk: int) -> FileResponse:
    return _file(request, claim_pk, "invoice_file")


@login_required
def claim_payment_proof(request: HttpRequest, claim_pk: int) -> FileResponse:
    return _file(request, claim_pk, "payment_proof")


# --- The provider's claims and statement ----------------------------------------------------------------------------


@login_required
def provider_claims(request: HttpRequest) -> HttpResponse:
    if not selectors.provider_institutions(request.user):
        return render(request, "portal/vouchers/not_provider.html")
    claims = _provider_claims(request.user).order_by("-submitted_at", "-id")
    status = request.GET.get("status", "")
    if status in C.values:
        claims = claims.filter(status=status)
    return render(
        request,
        "portal/vouchers/provider_claims.html",
        {"claims": claims, "statuses": C.choices, "status": status},
    )


@login_required
def provider_statement(request: HttpRequest) -> HttpResponse:
    """What the provider's claims add up to, by status: claimed, approved (paid) and their counts. Sums in SQL."""
    if not selectors.provider_institutions(request.user):
        return render(request, "portal/vouchers/not_provider.html")
    zero = Decimal("0")
    rows = {
        row["status"]: row
        for row in _provider_claims(request.user)
        .order_by()
        .values("status")
        .annotate(
            count=Count("id"),
            claimed=Sum("amount", default=zero),
            approved=Sum("approved_amount", default=zero),
        )
    }
    labels = dict(C.choices)
    lines = [
        {
            "status": value,
            "label": labels[value],
            "count": rows.get(value, {}).get("count", 0),
            "claimed": rows.get(value, {}).get("claimed", zero),
            "approved": rows.get(value, {}).get("approved", zero),
        }
        for value in C.values
    ]
    total = _provider_claims(request.user).aggregate(
        count=Count("id"), claimed=Sum("amount", default=zero), approved=Sum("approved_amount", default=zero)
    )
    return render(
        request,
        "portal/vouchers/statement.html",
        {"lines": lines, "total": total, "today": timezone.localdate()},
    )


# --- Public verification ----------------------------------------------------------------------------------------------


def voucher_verify(request: HttpRequest) -> HttpResponse:
    """Anyone may check a printed code: whether it is valid today, the holder, the face value, the validity and
    the status. Never the balance or the claims."""
    form = VoucherCodeForm(request.GET if "code" in request.GET else None)
    voucher = vouchers.find_by_code(form.cleaned_data["code"]) if form.is_valid() else None
    today = timezone.localdate()
    valid = (
        voucher is not None
        and voucher.status == Voucher.Status.ACTIVE
        and voucher.valid_from <= today <= voucher.valid_until
    )
    return render(
        request,
        "portal/vouchers/verify.html",
        {"form": form, "checked": form.is_valid(), "voucher": voucher, "valid": valid, "today": today},
    )
