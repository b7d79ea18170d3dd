"""Domain errors: a stable machine-readable code, a human message, and the figures behind it.

The API turns them into its error shape (409 for budget and transition refusals, 400 for invalid requests, 403 for
a role that may not act); the admin and the portal show the same message.
"""

from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _


class DomainError(Exception):
    code = "domain_error"
    status = 400

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        if self.details:
            body["details"] = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.details.items()}
        return body


class InvalidInput(DomainError):
    code = "invalid"


class NotPermitted(DomainError):
    code = "not_permitted"
    status = 403


class InvalidTransition(DomainError):
    code = "invalid_transition"
    status = 409

    def __init__(self, *, kind: str, current: str, target: str) -> None:
        super().__init__(
            _("A %(kind)s that is %(current)s cannot become %(target)s.")
            % {"kind": kind, "current": current, "target": target},
            object=kind,
            current=current,
            target=target,
        )


class BudgetExceeded(DomainError):
    """One level of §4 would be exceeded. Names the level, the amount asked and the amount left."""

    code = "budget_exceeded"
    status = 409

    LEVELS = {
        "pool_cap": "the pool cap",
        "fiscal_year_allotment": "the fiscal-year allotment",
        "institution_year": "the institution's per-year maximum in this pool",
        "per_award": "the per-award maximum",
        "cost_share": "the cost-share rate times the eligible cost",
        "programme_total": "the programme total",
    }

    def __init__(self, *, level: str, asked: Decimal, left: Decimal, fiscal_year: int | None = None) -> None:
        where = _(self.LEVELS[level])
        if fiscal_year is not None:
            where = f"{where} ({_('fiscal year')} {fiscal_year})"
        super().__init__(
            _("Refused: %(asked)s asked exceeds %(where)s, which has %(left)s left.")
            % {"asked": f"{asked:,.2f}", "where": where, "left": f"{max(left, Decimal(0)):,.2f}"},
            level=level,
            asked=asked,
            left=max(left, Decimal("0.00")),
            fiscal_year=fiscal_year,
        )


class Ineligible(DomainError):
    """Every failed eligibility rule at once, each with a stable code and the field it concerns."""

    code = "ineligible"
    status = 400

    def __init__(self, failures: list[tuple[str, str, str]]) -> None:
        # failures: (code, field, message)
        fields: dict[str, list[str]] = {}
        for _code, field, message in failures:
            fields.setdefault(field, []).append(message)
        super().__init__(
            _("The application does not meet %(n)d eligibility rule(s).") % {"n": len(failures)},
            fields=fields,
            rules=[{"code": c, "field": f, "message": m} for c, f, m in failures],
        )
        self.failures = failures


class ConflictOfInterest(DomainError):
    code = "conflict_of_interest"
    status = 409


class InstitutionDebarred(DomainError):
    """The institution is debarred: no approvals, no payments (its applications fail eligibility instead)."""

    code = "institution_debarred"
    status = 409


class DuplicatePaymentReference(DomainError):
    code = "duplicate_payment_reference"
    status = 409
