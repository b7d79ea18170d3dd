"""Helpers shared by the portal's views."""

from django import forms
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from grants.errors import DomainError


def add_domain_error(form: forms.Form, error: DomainError) -> None:
    """Show a service's refusal on the form: each field message next to its field, the rest at the top."""
    if not error.fields:
        form.add_error(None, error.message)
    for field, messages in error.fields.items():
        for message in messages:
            form.add_error(field if field in form.fields else None, message)


def current_user(request: HttpRequest) -> User:
    """The logged-in user of a view behind login_required."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied
    return user
