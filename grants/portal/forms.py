"""Portal forms check shape only (types, required, ranges); the services check the domain."""

from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import User
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from cities.models import City
from grants.login_policy import PolicyLoginFormMixin
from grants.models import Institution, InstitutionRelation, InstitutionType

ONE_FEN = Decimal("0.01")


class SignUpForm(forms.Form):
    username = forms.CharField(
        label=_("Username"),
        max_length=150,
        help_text=_("Letters, digits and @ . + - _ only. You log in with it."),
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}),
    )
    email = forms.EmailField(
        label=_("E-mail address"),
        help_text=_("Used to reset your password and for the notices you choose to get by e-mail."),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_(
            "At least 10 characters, not a common password, not only digits, not like your username."
        ),
    )
    password2 = forms.CharField(
        label=_("Password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean_username(self) -> str:
        username = User.normalize_username(self.cleaned_data["username"])
        User.username_validator(username)
        if User.objects.filter(username__iexact=username).exists():
            # Says neither who holds the name nor anything about them.
            raise forms.ValidationError(_("This username is not available. Choose another."))
        return username

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        p1, p2 = data.get("password1"), data.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", _("The two passwords differ."))
        elif p1:
            probe = User(username=data.get("username", ""), email=data.get("email", ""))
            try:
                password_validation.validate_password(p1, probe)
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data


class ThrottledAuthenticationForm(PolicyLoginFormMixin, AuthenticationForm):
    """Django's log-in form under the login policy (grants/login_policy.py): after repeated failures it says when
    to try again. Wrong password and unknown username read the same, and so do their refusals."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": _("The username or the password is wrong."),
    }


class InstitutionForm(forms.Form):
    name_en = forms.CharField(label=_("Legal name in English"), max_length=200)
    name_zh = forms.CharField(label=_("Legal name in Chinese"), max_length=200, required=False)
    credit_code = forms.CharField(
        label=_("Unified Social Credit Code"),
        min_length=18,
        max_length=18,
        help_text=_("18 characters, as printed on the business licence, e.g. 91310000MA1FL0XX09."),
        widget=forms.TextInput(attrs={"autocapitalize": "characters", "spellcheck": "false"}),
    )
    type = forms.ChoiceField(label=_("Type of institution"), choices=InstitutionType.choices)
    city = forms.ModelChoiceField(label=_("City of registration"), queryset=City.objects.all())
    founded_on = forms.DateField(
        label=_("Founded on"),
        required=False,
        help_text=_("Format: 2024-05-31."),
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean_credit_code(self) -> str:
        return str(self.cleaned_data["credit_code"]).strip().upper()


class InstitutionEditForm(forms.Form):
    name_en = forms.CharField(label=_("Legal name in English"), max_length=200)
    name_zh = forms.CharField(label=_("Legal name in Chinese"), max_length=200, required=False)
    founded_on = forms.DateField(
        label=_("Founded on"),
        required=False,
        help_text=_("Format: 2024-05-31."),
        widget=forms.DateInput(attrs={"type": "date"}),
    )


class RelationForm(forms.Form):
    kind = forms.ChoiceField(label=_("Relation"), choices=InstitutionRelation.Kind.choices)
    name = forms.CharField(label=_("Name"), max_length=200)
    identifier = forms.CharField(
        label=_("ID number or credit code"),
        max_length=30,
        required=False,
        help_text=_("A person's ID number or a company's Unified Social Credit Code, where known."),
    )


class AddMemberForm(forms.Form):
    username = forms.CharField(label=_("Their username"), max_length=150)
    email = forms.EmailField(
        label=_("Their e-mail address"),
        help_text=_("Both must match the account, so that nobody is added by mistake."),
    )
    is_admin = forms.BooleanField(label=_("May manage the institution and its members"), required=False)


class ApplicationForm(forms.Form):
    institution = forms.ModelChoiceField(label=_("Applying institution"), queryset=Institution.objects.none())
    title = forms.CharField(label=_("Project title"), max_length=300)
    summary = forms.CharField(
        label=pgettext_lazy("application", "Summary"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("What the money is for and what it will achieve."),
    )
    eligible_cost = forms.DecimalField(
        label=_("Eligible project cost (yuan)"),
        help_text=_("The total cost the subsidy rate applies to, e.g. 10000000.00."),
        max_digits=16,
        decimal_places=2,
        min_value=ONE_FEN,
    )
    requested_amount = forms.DecimalField(
        label=_("Requested amount (yuan)"),
        help_text=_("At most the call's rate times the eligible cost, and at most its per-award maximum."),
        max_digits=16,
        decimal_places=2,
        min_value=ONE_FEN,
    )
    duration_years = forms.IntegerField(label=_("Duration (years)"), min_value=1, max_value=20, initial=1)
    proposed_start = forms.DateField(
        label=_("Proposed start"),
        help_text=_("Format: 2025-07-01."),
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(self, *args: Any, institutions: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if institutions is None:
            del self.fields["institution"]
        else:
            field = self.fields["institution"]
            assert isinstance(field, forms.ModelChoiceField)
            field.queryset = institutions
            if len(institutions) == 1:
                self.fields["institution"].initial = institutions[0]


class AttachmentForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        help_text=_("PDF, image (PNG, JPEG, GIF, WebP) or spreadsheet (XLSX, XLS, ODS), at most %(mb)s MB."),
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.png,.jpg,.jpeg,.gif,.webp,.xlsx,.xls,.ods"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["file"]
        field.help_text = str(field.help_text) % {"mb": f"{settings.MAX_UPLOAD_BYTES / 1024 / 1024:g}"}


class MilestoneReportForm(forms.Form):
    summary = forms.CharField(
        label=_("What was achieved"),
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=_("Describe the milestone reached and the evidence for it."),
    )
    attachment = forms.FileField(
        label=_("Evidence (optional)"),
        required=False,
        help_text=_("PDF, image or spreadsheet."),
    )
