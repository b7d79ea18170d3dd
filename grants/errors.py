"""Domain errors: a stable machine-readable code, a human message, and the figures behind it.

The API turns them into its error shape (409 for budget and transition refusals, 400 for invalid requests, 403 for
a role that may not act); the admin and the portal show the same message.
"""

from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from grants.money import format_money


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

    # One sentence per kind, so that each reads right ("an application") and translates whole.
    SENTENCES = {
        "application": gettext_noop("An application that is %(current)s cannot become %(target)s."),
        "award": gettext_noop("An award that is %(current)s cannot become %(target)s."),
        "tranche": gettext_noop("A tranche that is %(current)s cannot become %(target)s."),
        "award agreement": gettext_noop("An award agreement that is %(current)s cannot become %(target)s."),
        "reporting duty": gettext_noop("A reporting duty that is %(current)s cannot become %(target)s."),
        "proposal": gettext_noop("A proposal that is %(current)s cannot become %(target)s."),
        "voucher claim": gettext_noop("A voucher claim that is %(current)s cannot become %(target)s."),
    }

    def __init__(
        self,
        *,
        kind: str,
        current: str,
        target: str,
        labels: tuple[str, str] | None = None,
        next_step: str = "",
    ) -> None:
        """`labels`: the two states as people read them (grants.workflow.transition_refusal passes the model's
        translated labels); `next_step`: what would make the step possible, in a sentence."""
        named = {"current": labels[0] if labels else current, "target": labels[1] if labels else target}
        if current == target:
            message = _("This %(kind)s is already %(current)s.") % {**named, "kind": _(kind)}
        else:
            sentence = self.SENTENCES.get(kind)
            message = (
                _(sentence) % named
                if sentence
                else _("A %(kind)s that is %(current)s cannot become %(target)s.")
                % {**named, "kind": _(kind)}
            )
        super().__init__(
            f"{message} {next_step}".strip(),
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

    # What the officer can do about each level: the next step of the refusal.
    NEXT = {
        "pool_cap": gettext_noop("Lower the amount to at most %(left)s, or raise the pool's cap."),
        "fiscal_year_allotment": gettext_noop(
            "Ask at most %(left)s in that year (move tranches to other years or lower the amount), or raise the "
            "year's allotment."
        ),
        "institution_year": gettext_noop(
            "Ask at most %(left)s of this institution in that year: lower the amount or move tranches to other "
            "years."
        ),
        "per_award": gettext_noop("Lower the amount to at most %(left)s."),
        "cost_share": gettext_noop("Lower the amount to at most %(left)s."),
        "programme_total": gettext_noop(
            "Lower the amount to at most %(left)s, or raise the programme's total."
        ),
    }

    def __init__(self, *, level: str, asked: Decimal, left: Decimal, fiscal_year: int | None = None) -> None:
        where = _(self.LEVELS[level])
        if fiscal_year is not None:
            where = f"{where} ({_('fiscal year')} {fiscal_year})"
        room = format_money(max(left, Decimal(0)))
        super().__init__(
            _("Refused: %(asked)s asked exceeds %(where)s, which has %(left)s left.")
            % {"asked": format_money(asked), "where": where, "left": room}
            + " "
            + _(self.NEXT[level]) % {"left": room},
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
            _("The application does not meet %(n)d eligibility rule(s).") % {"n": len(failures)}
            + " "
            + _("Change what each rule names, then submit it again."),
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


class AlreadyExists(DomainError):
    """The code is taken: programme codes are unique in their city, pool codes in their programme (references are
    made of them). A create retried without an Idempotency-Key meets this instead of creating a second one."""

    code = "already_exists"
    status = 409


class SeparationOfDuties(DomainError):
    """Maker-checker (issue 14): the same person may not take both steps (propose and confirm a decision; release
    and pay a tranche). `reason` is "proposed_it" or "released_it"."""

    code = "separation_of_duties"
    status = 403

    @classmethod
    def of(cls, reason: str) -> "SeparationOfDuties":
        messages = {
            "proposed_it": _("You proposed this; a second officer must confirm it or send it back."),
            "released_it": _("You released this tranche; another finance officer must pay it."),
        }
        return cls(messages[reason], reason=reason)


class SecondOfficerRequired(DomainError):
    """Above the pool's threshold one officer alone may not decide: propose it for a second officer instead."""

    code = "second_officer_required"
    status = 409


class FiscalYearClosed(DomainError):
    """Money may no longer move in a fiscal year its programme closed (grants.services.fiscal)."""

    code = "fiscal_year_closed"
    status = 409

    def __init__(self, *, fiscal_year: int, closed_through: int) -> None:
        super().__init__(
            _(
                "Fiscal year %(year)d is closed (every year up to %(closed)d is): no money can move in it any "
                "more. Schedule the payment in a later year."
            )
            % {"year": fiscal_year, "closed": closed_through},
            fiscal_year=fiscal_year,
            closed_through=closed_through,
        )


class ProposalPending(DomainError):
    """A proposal for this object awaits a second officer: it is confirmed or sent back (or expires) first."""

    code = "proposal_pending"
    status = 409
