"""The portal's forms for the award agreement and the reports: shape only. What an answer must be (a number, an
amount, a date, present) is checked once, by grants.services.reporting.clean_answers, and shown next to its field."""

from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from grants.models import ReportField, ReportingDuty

ACCEPT = ".pdf,.png,.jpg,.jpeg,.gif,.webp,.xlsx,.xls,.ods"


class AgreementAcceptForm(forms.Form):
    confirm = forms.BooleanField(
        label=_("I have read the award agreement and accept it on behalf of the institution"),
        error_messages={"required": _("Tick the box to confirm that you accept the agreement.")},
    )


def _widget(field: ReportField) -> forms.Widget:
    if field.type == ReportField.Type.TEXT:
        return forms.Textarea(attrs={"rows": 4})
    if field.type == ReportField.Type.DATE:
        return forms.DateInput(attrs={"type": "date"})
    return forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"})


def _help(field: ReportField) -> Any:
    return {
        ReportField.Type.MONEY: _("In yuan, e.g. 480000."),
        ReportField.Type.NUMBER: _("A number."),
        ReportField.Type.DATE: _("As 2025-05-31."),
    }.get(ReportField.Type(field.type), "")


class ReportForm(forms.Form):
    """The pool's form for one report: one field per ReportField, in its order, labelled in the reader's language,
    and a file (required or not, as the pool says)."""

    def __init__(self, duty: ReportingDuty, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("initial", dict(duty.answers or {}))
        super().__init__(*args, **kwargs)
        self.duty = duty
        for field in duty.requirement.fields.all():
            self.fields[field.name] = forms.CharField(
                label=field.label,
                required=field.required,
                max_length=10000,
                widget=_widget(field),
                help_text=_help(field),
            )
        # Marked required where the service will ask for it (the pool wants one and none is attached yet); the
        # service still decides, with the same message.
        self.fields["file"] = forms.FileField(
            label=_("Supporting document"),
            required=duty.requirement.attachment_required and not duty.attachments.exists(),
            error_messages={
                "required": _("Attach the report's supporting document (PDF, image or spreadsheet).")
            },
            help_text=_("PDF, image or spreadsheet, at most %(mb)s MB.")
            % {"mb": f"{settings.MAX_UPLOAD_BYTES / 1024 / 1024:g}"},
            widget=forms.ClearableFileInput(attrs={"accept": ACCEPT}),
        )

    def answers(self) -> dict[str, str]:
        return {name: value for name, value in self.cleaned_data.items() if name != "file"}
