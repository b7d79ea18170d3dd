"""Template helpers of the portal: amounts in the reader's language and error summaries."""

from decimal import Decimal
from typing import Any

from django import template
from django.conf import settings
from django.urls import translate_url
from django.utils.safestring import SafeString

from grants.money import format_money

register = template.Library()


@register.filter
def money(amount: Decimal | None) -> str:
    if amount is None or amount == "":
        return "—"
    return format_money(Decimal(amount))


@register.filter
def percent(rate: Decimal | None) -> str:
    if rate is None:
        return "—"
    # normalize() drops the trailing zeros of numeric(5,4): 0.3000 reads 30%, 0.125 reads 12.5%.
    return f"{(Decimal(rate) * 100).normalize():f}%"


@register.simple_tag
def error_items(form: Any) -> list[tuple[str, str, str]]:
    """(anchor id, field label, message) for every error of a bound form, in field order."""
    items: list[tuple[str, str, str]] = []
    if form is None or not form.is_bound:
        return items
    for message in form.non_field_errors():
        items.append(("", "", str(message)))
    for field in form:
        for message in field.errors:
            items.append((field.id_for_label or field.auto_id, str(field.label), str(message)))
    return items


@register.simple_tag
def widget(field: Any) -> SafeString:
    """The field's input, described by its hint and its errors so a screen reader reads them with it."""
    described = []
    if field.help_text:
        described.append(f"{field.auto_id}-hint")
    if field.errors:
        described.append(f"{field.auto_id}-error")
    attrs: dict[str, str] = {}
    if described:
        attrs["aria-describedby"] = " ".join(described)
    if field.errors:
        attrs["aria-invalid"] = "true"
    return field.as_widget(attrs=attrs)  # already escaped and marked safe by Django


@register.simple_tag(takes_context=True)
def unprefixed_path(context: Any) -> str:
    """The current page's path in the default language, for the language switch's `next`.

    set_language runs at /i18n/setlang/, outside i18n_patterns, where Django activates the default language (the
    default has no prefix); there it cannot resolve a /zh-hans/... path, and would send the reader back to the
    Chinese page. The unprefixed path resolves, and set_language translates it to the chosen language."""
    request = context["request"]
    return translate_url(request.get_full_path(), settings.LANGUAGE_CODE)
