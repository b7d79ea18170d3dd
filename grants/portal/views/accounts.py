"""Accounts and institutions: sign up, log in (throttled), password reset, the institution profile."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from grants import login_policy, services
from grants.client_ip import client_address
from grants.errors import DomainError
from grants.models import InstitutionMember, InstitutionRelation
from grants.portal import selectors
from grants.portal.forms import (
    AddMemberForm,
    InstitutionEditForm,
    InstitutionForm,
    RelationForm,
    SignUpForm,
    ThrottledAuthenticationForm,
)
from grants.portal.views.common import add_domain_error, current_user
from grants.services import notifications


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return render(request, "portal/welcome.html", {"calls": selectors.open_calls()[:5]})
    return render(
        request,
        "portal/dashboard.html",
        {
            "institutions": selectors.institutions_of(request.user),
            "applications": selectors.applications_of(request.user),
        },
    )


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("portal:home")
    form = SignUpForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        user = User.objects.create_user(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
        )
        notifications.set_language(user=user, language=request.LANGUAGE_CODE)
        login(request, user, backend="grants.login_policy.ThrottledModelBackend")
        messages.success(request, _("Welcome! Your account is ready. Next, register your institution."))
        return redirect("portal:institution_create")
    return render(request, "portal/signup.html", {"form": form}, status=400 if form.errors else 200)


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm
    template_name = "portal/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        return login_policy.refused_response(self.request, super().form_invalid(form))


class LogoutView(auth_views.LogoutView):
    template_name = "portal/logged_out.html"


class PasswordResetView(auth_views.PasswordResetView):
    # The "done" page reads the same whether or not an account has the address: nothing to enumerate.
    template_name = "portal/password_reset_form.html"
    email_template_name = "portal/password_reset_email.txt"
    subject_template_name = "portal/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password_reset_done")

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        # Every request counts, under the login policy's rules: nobody can flood a mailbox with reset links or
        # probe addresses at speed. The refusal is the same whether or not an account has the address.
        attempt = login_policy.begin(
            scope=login_policy.PASSWORD_RESET,
            account=form.cleaned_data["email"],
            address=client_address(self.request),
        )
        if attempt.refusal is not None:
            form.add_error(
                None,
                ngettext(
                    "Too many requests for a reset link. Try again in %(seconds)d second.",
                    "Too many requests for a reset link. Try again in %(seconds)d seconds.",
                    attempt.refusal.retry_after,
                )
                % {"seconds": attempt.refusal.retry_after},
            )
            setattr(self.request, login_policy.REFUSAL_ATTRIBUTE, attempt.refusal)
            return login_policy.refused_response(self.request, self.form_invalid(form))
        return super().form_valid(form)


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "portal/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "portal/password_reset_confirm.html"
    success_url = reverse_lazy("portal:password_reset_complete")


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "portal/password_reset_complete.html"


@login_required
def institution_create(request: HttpRequest) -> HttpResponse:
    form = InstitutionForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            institution = services.register_institution(
                actor=current_user(request),
                name_en=data["name_en"],
                name_zh=data["name_zh"],
                credit_code=data["credit_code"],
                type=data["type"],
                city=data["city"],
                founded_on=data["founded_on"],
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, _("Your institution is registered. You can now apply to open calls."))
            return redirect("portal:institution", pk=institution.pk)
    return render(request, "portal/institution_form.html", {"form": form}, status=400 if form.errors else 200)


def _profile(
    request: HttpRequest,
    pk: int,
    *,
    edit_form: InstitutionEditForm | None = None,
    member_form: AddMemberForm | None = None,
    relation_form: RelationForm | None = None,
    status: int = 200,
) -> HttpResponse:
    institution = selectors.institution_for(request.user, pk)
    memberships = InstitutionMember.objects.filter(institution=institution).select_related("user")
    is_manager = any(m.user_id == request.user.pk and m.is_admin for m in memberships)
    if edit_form is None:
        edit_form = InstitutionEditForm(
            initial={
                "name_en": institution.name_en,
                "name_zh": institution.name_zh,
                "founded_on": institution.founded_on,
            }
        )
    context = {
        "institution": institution,
        "memberships": memberships,
        "is_manager": is_manager,
        "edit_form": edit_form,
        "member_form": member_form or AddMemberForm(),
        "relation_form": relation_form or RelationForm(),
        "relations": institution.relations.all(),
        "applications": selectors.applications_of(request.user).filter(institution=institution),
    }
    return render(request, "portal/institution.html", context, status=status)


@login_required
def institution(request: HttpRequest, pk: int) -> HttpResponse:
    return _profile(request, pk)


@login_required
@require_POST
def institution_edit(request: HttpRequest, pk: int) -> HttpResponse:
    inst = selectors.institution_for(request.user, pk)
    form = InstitutionEditForm(request.POST)
    if form.is_valid():
        try:
            services.update_institution(institution=inst, actor=current_user(request), **form.cleaned_data)
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, _("The profile is saved."))
            return redirect("portal:institution", pk=inst.pk)
    return _profile(request, pk, edit_form=form, status=400)


@login_required
@require_POST
def institution_add_member(request: HttpRequest, pk: int) -> HttpResponse:
    inst = selectors.institution_for(request.user, pk)
    form = AddMemberForm(request.POST)
    if form.is_valid():
        # Both the username and the e-mail address must match, and a miss reads the same for either: the form
        # cannot be used to find out which accounts exist.
        user = User.objects.filter(
            username=form.cleaned_data["username"], email__iexact=form.cleaned_data["email"], is_active=True
        ).first()
        if user is None:
            form.add_error(None, _("No account matches this username and e-mail address."))
        else:
            try:
                services.add_member(
                    institution=inst,
                    actor=current_user(request),
                    user=user,
                    is_admin=form.cleaned_data["is_admin"],
                )
            except DomainError as exc:
                add_domain_error(form, exc)
            else:
                messages.success(request, _("%(user)s is now a member.") % {"user": user.get_username()})
                return redirect("portal:institution", pk=inst.pk)
    return _profile(request, pk, member_form=form, status=400)


@login_required
@require_POST
def institution_relation_add(request: HttpRequest, pk: int) -> HttpResponse:
    """Declare the legal representative or a shareholder (voucher claims between related institutions are
    refused)."""
    inst = selectors.institution_for(request.user, pk)
    form = RelationForm(request.POST)
    if form.is_valid():
        try:
            services.declare_relation(institution=inst, actor=current_user(request), **form.cleaned_data)
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, _("The declaration is saved."))
            return redirect("portal:institution", pk=inst.pk)
    return _profile(request, pk, relation_form=form, status=400)


@login_required
@require_POST
def institution_relation_remove(request: HttpRequest, pk: int, relation_pk: int) -> HttpResponse:
    inst = selectors.institution_for(request.user, pk)
    relation = get_object_or_404(InstitutionRelation, pk=relation_pk, institution=inst)
    try:
        services.remove_relation(relation=relation, actor=current_user(request))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("The declaration is removed."))
    return redirect("portal:institution", pk=inst.pk)
