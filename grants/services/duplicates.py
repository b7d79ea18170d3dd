"""Duplicate funding (issue #14.2): the one place that decides whether an application resembles another
application or award of the same institution, and whether an approval may go ahead.

Who is the same institution: the same unified social credit code, in any city and any pool (the query matches on
the code, not the row, so a firm registered separately in two cities is still one firm). What counts: its other
applications that are submitted, under review, returned for changes or approved (an approved one stands for its
award); drafts, rejected and withdrawn ones ask for no money. What is similar: the title, or the title and summary
together, at least `THRESHOLD` alike: PostgreSQL's trigram similarity where the `pg_trgm` extension is installed
(migration 0010 creates it where the database lets it), otherwise the share of words in common (Chinese, which has
no spaces, compared by pairs of characters). Only one institution's applications are compared, so no index is
needed: the candidates come from the institution's own rows.

When: on submission (`record_findings`, in the submission's transaction) and again at approval
(`require_acknowledged`). A finding is stored as a DuplicateFlag on the application being checked and, while the
other one is still undecided, on the other too, so whichever is decided second is stopped even if the two were
submitted at the same moment. An officer of the application's city acknowledges each flag with a reason
(`acknowledge_flag`, audited); until every flag whose other application still asks for or holds money is
acknowledged, approval refuses with `duplicate_funding_unacknowledged`.

What the officer sees of the other application: its reference, city, status and amount (`FlagView`), never its
title, summary or files, which belong to another city's file.
"""

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet, TextField, Value
from django.db.models.functions import Concat, Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from grants import audit
from grants.errors import DomainError, InvalidInput
from grants.models import Application, DuplicateFlag
from grants.money import format_money
from grants.roles import Role, require
from grants.workflow import roles_for

S = Application.Status
# The applications that ask for money (open) or hold it (approved: the award).
CANDIDATE_STATUSES = (S.SUBMITTED, S.UNDER_REVIEW, S.RETURNED, S.APPROVED)
# Undecided: a flag on them can still stop an approval.
UNDECIDED = (S.SUBMITTED, S.UNDER_REVIEW, S.RETURNED)
# Alike enough to ask an officer: 0.5 of trigrams or of words in common. Rewordings of one project score 0.6 to
# 0.95; two projects of one firm that share a word or two score below 0.35.
THRESHOLD = Decimal("0.5")
THOUSANDTH = Decimal("0.001")


class DuplicateFundingUnacknowledged(DomainError):
    code = "duplicate_funding_unacknowledged"
    status = 409


class FlagAlreadyAcknowledged(DomainError):
    code = "duplicate_flag_already_acknowledged"
    status = 409


# --- Similarity -----------------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A word split into runs of Chinese characters and runs of anything else.
_PARTS = re.compile(f"[{_HAN}]+|[^{_HAN}]+")


def tokens(text: str) -> set[str]:
    """Normalised tokens: lower-case words; a run of Chinese characters as its pairs of characters (a single
    character as itself), since Chinese is written without spaces."""
    found: set[str] = set()
    for word in _WORD.findall(text.lower()):
        for part in _PARTS.findall(word):
            if "\u3400" <= part[0] <= "\ufaff":
                found |= {part[i : i + 2] for i in range(max(len(part) - 1, 1))}
            else:
                found.add(part)
    return found


def overlap(a: str, b: str) -> Decimal:
    """The share of tokens in common (Jaccard): 1 for the same words, 0 for none in common."""
    ta, tb = tokens(a), tokens(b)
    if not ta or not tb:
        return Decimal(0)
    return (Decimal(len(ta & tb)) / Decimal(len(ta | tb))).quantize(THOUSANDTH, ROUND_HALF_UP)


def _text(title: str, summary: str) -> str:
    return f"{title} {summary}".strip()


def trigram_available() -> bool:
    """Whether this database compares with pg_trgm: PostgreSQL with the extension installed."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        return cursor.fetchone() is not None


def candidates(application: Application) -> QuerySet[Application]:
    """The institution's other applications that ask for or hold money, in any city or pool (by credit code)."""
    return (
        Application.objects.filter(
            institution__credit_code=application.institution.credit_code, status__in=CANDIDATE_STATUSES
        )
        .exclude(pk=application.pk)
        .order_by("pk")
    )


def similar(application: Application) -> list[tuple[Application, Decimal]]:
    """The candidates at least THRESHOLD alike, with their similarity, most alike first."""
    title, text = application.title, _text(application.title, application.summary)
    found: list[tuple[Application, Decimal]] = []
    if trigram_available():
        from django.contrib.postgres.search import TrigramSimilarity

        rows = (
            candidates(application)
            .annotate(
                score=Greatest(
                    TrigramSimilarity("title", title),
                    TrigramSimilarity(Concat("title", Value(" "), "summary", output_field=TextField()), text),
                )
            )
            .filter(score__gte=float(THRESHOLD))
        )
        found = [(row, Decimal(str(row.score)).quantize(THOUSANDTH, ROUND_HALF_UP)) for row in rows]
    else:
        for row in candidates(application):
            score = max(overlap(title, row.title), overlap(text, _text(row.title, row.summary)))
            if score >= THRESHOLD:
                found.append((row, score))
    return sorted(found, key=lambda pair: (-pair[1], pair[0].pk))


# --- Flags ----------------------------------------------------------------------------------------------------


def _city_id(application: Application) -> int:
    return Application.objects.values_list("pool__programme__city_id", flat=True).get(pk=application.pk)


def _store(
    application: Application, other: Application, score: Decimal, found_on: str, actor: User | None
) -> None:
    """One flag, unless it exists: a concurrent scan of the same pair inserts nothing (the unique constraint, in a
    savepoint), so exactly one audit event records each finding."""
    try:
        with transaction.atomic():
            flag = DuplicateFlag.objects.create(
                application=application, other=other, similarity=score, found_on=found_on
            )
    except IntegrityError:
        return
    audit.record(
        actor=actor,
        action="application.duplicate_found",
        obj=application,
        city_id=_city_id(application),
        after={"flag": flag.pk, "other": other.reference, "similarity": str(score), "found_on": found_on},
    )


def record_findings(
    *, application: Application, found_on: str, actor: User | None = None
) -> list[DuplicateFlag]:
    """Compare the application with its institution's others and store what is new: a flag on it for each similar
    one, and one on the other while that is undecided. Returns the application's flags."""
    existing = set(DuplicateFlag.objects.filter(application=application).values_list("other_id", flat=True))
    for other, score in similar(application):
        if other.pk not in existing:
            _store(application, other, score, found_on, actor)
        if (
            other.status in UNDECIDED
            and not DuplicateFlag.objects.filter(application=other, other=application).exists()
        ):
            _store(other, application, score, found_on, actor)
    return list(DuplicateFlag.objects.filter(application=application))


def pending(application: Application) -> QuerySet[DuplicateFlag]:
    """Flags not yet acknowledged whose other application still asks for or holds money."""
    return DuplicateFlag.objects.filter(
        application=application, acknowledged_at__isnull=True, other__status__in=CANDIDATE_STATUSES
    )


def require_acknowledged(*, application: Application, actor: User) -> None:
    """At approval: scan again, store what is new (in its own transaction, so a refusal still leaves the finding
    for the officer to acknowledge), then refuse while a flag is unacknowledged.

    Called by approve_application before its own transaction. A role check comes first, so someone who may not
    approve changes nothing; an application that cannot be approved in its state is left to approval's own
    refusal. A similar application submitted between this check and the approval's commit is flagged on its
    own submission, on both sides: the second of the two to be approved is stopped.
    """
    application = Application.objects.select_related("pool__programme", "institution").get(pk=application.pk)
    require(actor, roles_for(Application, S.APPROVED), application.pool.programme.city_id)
    if application.status != S.UNDER_REVIEW:
        return
    with transaction.atomic():
        record_findings(application=application, found_on=DuplicateFlag.Found.APPROVAL, actor=actor)
    waiting = [view(flag) for flag in pending(application).select_related(*VIEW_JOINS)]
    if waiting:
        raise DuplicateFundingUnacknowledged(
            _(
                "The institution has %(n)d similar application(s) or award(s) elsewhere (%(refs)s): acknowledge "
                "each flag with a reason on the application's page before approving."
            )
            % {"n": len(waiting), "refs": ", ".join(v.reference for v in waiting)},
            flags=[v.as_dict() for v in waiting],
        )


def acknowledge_flag(*, flag: DuplicateFlag, actor: User, reason: str) -> DuplicateFlag:
    """A programme officer of the application's city says why the approval may go ahead despite the flag.
    Audited; a flag is acknowledged once."""
    reason = (reason or "").strip()
    with transaction.atomic():
        flag = (
            DuplicateFlag.objects.select_for_update(of=("self",))
            .select_related("application__pool__programme")
            .get(pk=flag.pk)
        )
        city_id = flag.application.pool.programme.city_id
        require(actor, Role.PROGRAMME_OFFICER, city_id)
        if flag.acknowledged_at is not None:
            raise FlagAlreadyAcknowledged(
                _("This flag was already acknowledged on %(at)s.")
                % {"at": timezone.localtime(flag.acknowledged_at).strftime("%Y-%m-%d %H:%M")}
            )
        if not reason:
            raise InvalidInput(
                _("Say why the approval may go ahead despite the similar application."),
                fields={"reason": [_("A reason is required.")]},
            )
        audit.change(
            flag,
            actor=actor,
            action="duplicate_flag.acknowledge",
            city_id=city_id,
            audited=("acknowledged_by", "acknowledged_at", "reason"),
            values={"acknowledged_by": actor, "acknowledged_at": timezone.now(), "reason": reason},
            noted={"application": flag.application.reference, "other": flag.other_id},
        )
    return flag


# --- What the officer sees --------------------------------------------------------------------------------------

VIEW_JOINS = ("other__pool__programme__city", "other__award", "acknowledged_by")


@dataclass(frozen=True)
class FlagView:
    """A flag as shown to the officer: the other application's reference, city, status and amount, nothing of
    its content."""

    id: int
    reference: str
    city: str
    status: str
    status_label: str
    amount: Decimal
    similarity: Decimal
    found_on: str
    acknowledged_by: str
    acknowledged_at: str
    reason: str

    @property
    def amount_display(self) -> str:
        return format_money(self.amount)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "reference": self.reference,
            "city": self.city,
            "status": self.status,
            "amount": str(self.amount),
        }


def view(flag: DuplicateFlag) -> FlagView:
    """The other application as the officer may see it: an approved one by its award (status and amount), any
    other by its own status and requested amount."""
    other = flag.other
    award = getattr(other, "award", None) if other.status == S.APPROVED else None
    status, label, amount = (
        (f"award_{award.status}", _("award %(s)s") % {"s": award.get_status_display()}, award.amount)
        if award is not None
        else (other.status, other.get_status_display(), other.requested_amount)
    )
    return FlagView(
        id=flag.pk,
        reference=other.reference or "",
        city=other.pool.programme.city.code,
        status=status,
        status_label=str(label),
        amount=amount,
        similarity=flag.similarity,
        found_on=flag.found_on,
        acknowledged_by=flag.acknowledged_by.get_username() if flag.acknowledged_by else "",
        acknowledged_at=flag.acknowledged_at.isoformat() if flag.acknowledged_at else "",
        reason=flag.reason,
    )


def flags_of(application: Application) -> list[FlagView]:
    return [view(flag) for flag in application.duplicate_flags.select_related(*VIEW_JOINS)]
