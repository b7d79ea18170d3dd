"""The domain of §2. Models are thin: fields, choices and the constraints the database enforces.

Rules live in grants/services; the counters on pools, allotments and awards change only there, in the same
transaction as the ledger entries that justify them.
"""

from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from cities.models import City
from grants.money import MoneyField
from grants.validators import validate_credit_code

User = settings.AUTH_USER_MODEL


class BilingualName(models.Model):
    name_en = models.CharField(_("name (English)"), max_length=200)
    name_zh = models.CharField(_("name (Chinese)"), max_length=200, blank=True)

    class Meta:
        abstract = True

    @property
    def name(self) -> str:
        if (get_language() or "").startswith("zh") and self.name_zh:
            return self.name_zh
        return self.name_en


# --- Programmes and pools -----------------------------------------------------------------------------------


class Programme(BilingualName):
    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        OPEN = "open", _("open")
        CLOSED = "closed", _("closed")
        ARCHIVED = "archived", _("archived")

    city = models.ForeignKey(
        City, on_delete=models.PROTECT, related_name="programmes", verbose_name=_("city")
    )
    code = models.CharField(_("code"), max_length=20)
    total_budget = MoneyField(_("total budget"))
    # Sum of the pools' committed counters, maintained with them: level 6 of an approval is checked against it.
    committed = MoneyField(_("committed"), default=0, editable=False)
    first_fiscal_year = models.PositiveSmallIntegerField(_("first fiscal year"))
    last_fiscal_year = models.PositiveSmallIntegerField(_("last fiscal year"))
    opens_at = models.DateTimeField(_("applications open"))
    closes_at = models.DateTimeField(_("applications close"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    policy_title = models.CharField(_("policy title"), max_length=300, blank=True)
    policy_url = models.URLField(_("policy URL"), blank=True)

    class Meta:
        ordering = ["city__code", "code"]
        verbose_name = _("programme")
        verbose_name_plural = _("programmes")
        constraints = [
            models.UniqueConstraint(fields=["city", "code"], name="programme_code_unique_in_city"),
            models.CheckConstraint(condition=Q(total_budget__gt=0), name="programme_budget_positive"),
            models.CheckConstraint(
                condition=Q(committed__gte=0) & Q(committed__lte=F("total_budget")),
                name="programme_committed_within_budget",
            ),
            models.CheckConstraint(
                condition=Q(last_fiscal_year__gte=F("first_fiscal_year")), name="programme_years_ordered"
            ),
            models.CheckConstraint(condition=Q(closes_at__gt=F("opens_at")), name="programme_window_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.city.code}-{self.code} {self.name}"


class InstitutionType(models.TextChoices):
    STARTUP = "startup", _("startup")
    SME = "sme", _("small or medium enterprise")
    LARGE = "large", _("large enterprise")
    UNIVERSITY = "university", _("university")
    RESEARCH = "research", _("research institute")
    OTHER = "other", _("other")


class FundingPool(BilingualName):
    class Category(models.TextChoices):
        COMPUTE = "compute", _("computing power")
        MODELS = "models", _("AI models")
        DATA = "data", _("training data")
        RESEARCH = "research", _("research institutions")
        OTHER = "other", _("other")

    programme = models.ForeignKey(
        Programme, on_delete=models.PROTECT, related_name="pools", verbose_name=_("programme")
    )
    code = models.CharField(_("code"), max_length=10, help_text=_("Appears in references, e.g. CMP."))
    category = models.CharField(_("category"), max_length=10, choices=Category.choices)
    cap = MoneyField(_("cap"))
    committed = MoneyField(_("committed"), default=0, editable=False)
    disbursed = MoneyField(_("disbursed"), default=0, editable=False)
    # Subsidy rules (§2). Empty means "no such limit".
    max_rate = models.DecimalField(
        _("maximum cost-share rate"),
        max_digits=5,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
    )
    rate_by_type = models.JSONField(
        _("rate per institution type"),
        default=dict,
        blank=True,
        help_text=_('Overrides of the rate for some institution types, e.g. {"startup": "0.60"}.'),
    )
    max_per_award = MoneyField(_("maximum per award"), null=True, blank=True)
    max_per_institution_year = MoneyField(_("maximum per institution per fiscal year"), null=True, blank=True)
    min_duration_years = models.PositiveSmallIntegerField(_("shortest award (years)"), default=1)
    max_duration_years = models.PositiveSmallIntegerField(_("longest award (years)"), default=1)
    eligible_types = models.JSONField(
        _("eligible institution types"), default=list, blank=True, help_text=_("Empty: every type.")
    )
    registration_required = models.BooleanField(_("must be registered in the city"), default=True)
    min_reviews = models.PositiveSmallIntegerField(_("reviews needed before approval"), default=1)
    alert_thresholds = models.JSONField(_("alert thresholds (% of cap)"), default=list, blank=True)
    opens_at = models.DateTimeField(_("applications open"), null=True, blank=True)
    closes_at = models.DateTimeField(_("applications close"), null=True, blank=True)
    accepting_applications = models.BooleanField(_("accepting applications"), default=True)
    next_reference_number = models.PositiveIntegerField(default=1, editable=False)
    # Set when money moves in the pool, cleared by the tracking job: the scheduled run picks up every pool
    # changed since its last run even if the job queued after the commit was lost with the broker.
    tracking_due_at = models.DateTimeField(null=True, blank=True, editable=False)
    tracked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["programme__city__code", "programme__code", "code"]
        verbose_name = _("funding pool")
        verbose_name_plural = _("funding pools")
        constraints = [
            models.UniqueConstraint(fields=["programme", "code"], name="pool_code_unique_in_programme"),
            models.CheckConstraint(condition=Q(cap__gt=0), name="pool_cap_positive"),
            # §4: 0 <= disbursed <= committed <= cap, whatever code runs.
            models.CheckConstraint(condition=Q(disbursed__gte=0), name="pool_disbursed_not_negative"),
            models.CheckConstraint(
                condition=Q(committed__gte=F("disbursed")), name="pool_disbursed_within_committed"
            ),
            models.CheckConstraint(condition=Q(cap__gte=F("committed")), name="pool_committed_within_cap"),
            models.CheckConstraint(
                condition=Q(max_duration_years__gte=F("min_duration_years")) & Q(min_duration_years__gte=1),
                name="pool_durations_ordered",
            ),
        ]
        indexes = [
            # The tracking sweep: pools whose money moved since they were last tracked.
            models.Index(fields=["tracking_due_at"], name="pool_tracking_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.programme.city.code}-{self.programme.code}-{self.code} {self.name}"

    @property
    def available(self) -> Decimal:
        return self.cap - self.committed

    @property
    def utilisation(self) -> Decimal:
        """Committed as a fraction of the cap."""
        return (self.committed / self.cap) if self.cap else Decimal(0)

    def thresholds(self) -> list[int]:
        return sorted({int(t) for t in (self.alert_thresholds or [50, 80, 95, 100])})


class FiscalYearAllotment(models.Model):
    """The part of a pool that may be spent in one fiscal year (the calendar year in China)."""

    pool = models.ForeignKey(FundingPool, on_delete=models.PROTECT, related_name="allotments")
    fiscal_year = models.PositiveSmallIntegerField(_("fiscal year"))
    amount = MoneyField(_("amount"))
    committed = MoneyField(_("committed"), default=0, editable=False)
    disbursed = MoneyField(_("disbursed"), default=0, editable=False)

    class Meta:
        ordering = ["pool", "fiscal_year"]
        verbose_name = _("fiscal-year allotment")
        verbose_name_plural = _("fiscal-year allotments")
        constraints = [
            models.UniqueConstraint(fields=["pool", "fiscal_year"], name="allotment_one_per_year"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="allotment_amount_positive"),
            models.CheckConstraint(condition=Q(disbursed__gte=0), name="allotment_disbursed_not_negative"),
            models.CheckConstraint(
                condition=Q(committed__gte=F("disbursed")), name="allotment_disbursed_within_committed"
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=F("committed")), name="allotment_committed_within_amount"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pool.code} FY{self.fiscal_year}"


# --- Institutions -------------------------------------------------------------------------------------------


class Institution(BilingualName):
    credit_code = models.CharField(
        _("unified social credit code"), max_length=18, unique=True, validators=[validate_credit_code]
    )
    type = models.CharField(_("type"), max_length=12, choices=InstitutionType.choices)
    city = models.ForeignKey(
        City, on_delete=models.PROTECT, related_name="institutions", verbose_name=_("city of registration")
    )
    founded_on = models.DateField(_("founded on"), null=True, blank=True)
    debarred_until = models.DateField(_("debarred until"), null=True, blank=True)
    debarment_reason = models.CharField(_("debarment reason"), max_length=500, blank=True)
    members: "models.ManyToManyField[Any, Any]" = models.ManyToManyField(
        User, through="InstitutionMember", related_name="institutions"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name_en"]
        verbose_name = _("institution")
        verbose_name_plural = _("institutions")

    def __str__(self) -> str:
        return self.name

    def is_debarred(self, on: date | None = None) -> bool:
        day = on or timezone.localdate()
        return self.debarred_until is not None and self.debarred_until >= day


class InstitutionMember(models.Model):
    institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="institution_memberships")
    is_admin = models.BooleanField(_("manages the institution"), default=False)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("institution member")
        verbose_name_plural = _("institution members")
        constraints = [models.UniqueConstraint(fields=["institution", "user"], name="member_once")]

    def __str__(self) -> str:
        return f"{self.user} at {self.institution}"


# --- Applications and reviews -------------------------------------------------------------------------------


class Application(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        SUBMITTED = "submitted", _("submitted")
        UNDER_REVIEW = "under_review", _("under review")
        RETURNED = "returned", _("returned for changes")
        APPROVED = "approved", _("approved")
        REJECTED = "rejected", _("rejected")
        WITHDRAWN = "withdrawn", _("withdrawn")

    OPEN_STATUSES = (Status.SUBMITTED, Status.UNDER_REVIEW, Status.RETURNED)

    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="applications", verbose_name=_("institution")
    )
    pool = models.ForeignKey(
        FundingPool, on_delete=models.PROTECT, related_name="applications", verbose_name=_("funding pool")
    )
    reference = models.CharField(
        _("reference"), max_length=40, unique=True, null=True, blank=True, editable=False
    )
    title = models.CharField(_("title"), max_length=300)
    summary = models.TextField(_("summary"), blank=True)
    eligible_cost = MoneyField(_("eligible project cost"))
    requested_amount = MoneyField(_("requested amount"))
    duration_years = models.PositiveSmallIntegerField(_("duration (years)"), default=1)
    proposed_start = models.DateField(_("proposed start"))
    status = models.CharField(_("status"), max_length=14, choices=Status.choices, default=Status.DRAFT)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(_("decision note"), blank=True)
    # Set when the retention run replaced the free text of a rejected or withdrawn application (its figures and
    # history stay): grants/services/retention.py.
    anonymised_at = models.DateTimeField(_("anonymised at"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("application")
        verbose_name_plural = _("applications")
        constraints = [
            models.CheckConstraint(condition=Q(eligible_cost__gt=0), name="application_cost_positive"),
            models.CheckConstraint(condition=Q(requested_amount__gt=0), name="application_request_positive"),
            models.CheckConstraint(condition=Q(duration_years__gte=1), name="application_duration_positive"),
            # §8: no other open application of the same institution to the same pool.
            models.UniqueConstraint(
                fields=["institution", "pool"],
                condition=Q(status__in=["submitted", "under_review", "returned"]),
                name="one_open_application_per_pool",
            ),
        ]
        indexes = [
            # Pipeline (requested amounts under review) per pool, and officers' work queues.
            models.Index(fields=["pool", "status"], name="application_pool_status_idx"),
        ]

    def __str__(self) -> str:
        return self.reference or f"draft #{self.pk}: {self.title}"


def attachment_path(instance: "Attachment", filename: str) -> str:
    return f"attachments/{instance.application_id}/{filename}"


class Attachment(models.Model):
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(_("file"), upload_to=attachment_path)
    original_name = models.CharField(_("file name"), max_length=255)
    content_type = models.CharField(_("content type"), max_length=100)
    size = models.PositiveBigIntegerField(_("size (bytes)"))
    uploaded_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["uploaded_at"]
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self) -> str:
        return self.original_name


class Review(models.Model):
    class Recommendation(models.TextChoices):
        FUND = "fund", _("fund")
        DO_NOT_FUND = "do_not_fund", _("do not fund")
        REVISE = "revise", _("revise")

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(User, on_delete=models.PROTECT, related_name="reviews")
    assigned_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", null=True)
    assigned_at = models.DateTimeField(auto_now_add=True)
    technical_merit = models.PositiveSmallIntegerField(
        _("technical merit"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    feasibility = models.PositiveSmallIntegerField(
        _("feasibility"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    impact = models.PositiveSmallIntegerField(
        _("impact"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    recommendation = models.CharField(
        _("recommendation"), max_length=12, choices=Recommendation.choices, blank=True
    )
    recommended_amount = MoneyField(_("recommended amount"), null=True, blank=True)
    comment = models.TextField(_("comment"), blank=True)
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)

    class Meta:
        ordering = ["assigned_at"]
        verbose_name = _("review")
        verbose_name_plural = _("reviews")
        constraints = [
            models.UniqueConstraint(fields=["application", "reviewer"], name="one_review_per_reviewer"),
            models.CheckConstraint(
                condition=Q(submitted_at__isnull=True)
                | (
                    Q(technical_merit__range=(1, 5))
                    & Q(feasibility__range=(1, 5))
                    & Q(impact__range=(1, 5))
                    & ~Q(recommendation="")
                ),
                name="submitted_review_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"review of {self.application} by {self.reviewer}"


# --- Awards, tranches, milestones, recoveries ---------------------------------------------------------------


class Award(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        SUSPENDED = "suspended", _("suspended")
        COMPLETED = "completed", _("completed")
        TERMINATED = "terminated", _("terminated")

    application = models.OneToOneField(Application, on_delete=models.PROTECT, related_name="award")
    # Denormalised from the application: every report groups awards by pool and institution.
    pool = models.ForeignKey(FundingPool, on_delete=models.PROTECT, related_name="awards")
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="awards")
    reference = models.CharField(_("reference"), max_length=40, unique=True)
    # amount = Σ non-cancelled tranches; paid = Σ paid tranches; recovered = Σ recovery receipts.
    # The award holds (amount - recovered) committed and (paid - recovered) disbursed in its pool.
    amount = MoneyField(_("amount"), editable=False)
    paid = MoneyField(_("paid"), default=0, editable=False)
    recovered = MoneyField(_("recovered"), default=0, editable=False)
    start_date = models.DateField(_("start date"))
    duration_years = models.PositiveSmallIntegerField(_("duration (years)"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    approved_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    approved_at = models.DateTimeField(_("approved at"))
    amendments = models.PositiveSmallIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-approved_at"]
        verbose_name = _("award")
        verbose_name_plural = _("awards")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="award_amount_not_negative"),
            models.CheckConstraint(
                condition=Q(paid__gte=0) & Q(paid__lte=F("amount")), name="award_paid_within"
            ),
            models.CheckConstraint(
                condition=Q(recovered__gte=0) & Q(recovered__lte=F("paid")),
                name="award_recovered_within_paid",
            ),
        ]
        indexes = [
            models.Index(fields=["pool", "institution"], name="award_pool_institution_idx"),
        ]

    def __str__(self) -> str:
        return self.reference


class Tranche(models.Model):
    class Status(models.TextChoices):
        PLANNED = "planned", _("planned")
        PAYABLE = "payable", _("payable")
        PAID = "paid", _("paid")
        WITHHELD = "withheld", _("withheld")
        CANCELLED = "cancelled", _("cancelled")

    award = models.ForeignKey(Award, on_delete=models.PROTECT, related_name="tranches")
    sequence = models.PositiveSmallIntegerField(_("sequence"))
    fiscal_year = models.PositiveSmallIntegerField(_("fiscal year"))
    scheduled_date = models.DateField(_("scheduled date"))
    amount = MoneyField(_("amount"))
    requires_milestone = models.BooleanField(_("needs an accepted milestone report"), default=False)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PLANNED)
    paid_on = models.DateField(_("paid on"), null=True, blank=True)
    payment_reference = models.CharField(
        _("payment reference"), max_length=64, unique=True, null=True, blank=True
    )
    status_note = models.CharField(_("note"), max_length=500, blank=True)

    class Meta:
        ordering = ["award", "sequence"]
        verbose_name = _("tranche")
        verbose_name_plural = _("tranches")
        constraints = [
            models.UniqueConstraint(fields=["award", "sequence"], name="tranche_sequence_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="tranche_amount_positive"),
            models.CheckConstraint(
                condition=~Q(status="paid") | (Q(paid_on__isnull=False) & Q(payment_reference__isnull=False)),
                name="paid_tranche_has_payment",
            ),
        ]
        indexes = [
            # The daily release sweep: planned tranches whose date has come.
            models.Index(fields=["status", "scheduled_date"], name="tranche_status_date_idx"),
            # The disbursement report grouped by fiscal year and the allotment forecast.
            models.Index(fields=["fiscal_year", "status"], name="tranche_year_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.award.reference} #{self.sequence}"


class MilestoneReport(models.Model):
    class Status(models.TextChoices):
        SUBMITTED = "submitted", _("submitted")
        ACCEPTED = "accepted", _("accepted")
        REJECTED = "rejected", _("rejected")

    tranche = models.ForeignKey(Tranche, on_delete=models.PROTECT, related_name="milestone_reports")
    submitted_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    submitted_at = models.DateTimeField(auto_now_add=True)
    summary = models.TextField(_("summary"))
    attachment = models.FileField(_("attachment"), upload_to="milestones/", blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.SUBMITTED)
    decided_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(_("decision note"), blank=True)

    class Meta:
        ordering = ["-submitted_at"]
        verbose_name = _("milestone report")
        verbose_name_plural = _("milestone reports")

    def __str__(self) -> str:
        return f"milestone report for {self.tranche}"


class Recovery(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("open")
        RECEIVED = "received", _("received in full")
        WAIVED = "waived", _("waived")

    award = models.ForeignKey(Award, on_delete=models.PROTECT, related_name="recoveries")
    amount = MoneyField(_("amount demanded"))
    received = MoneyField(_("amount received"), default=0, editable=False)
    due_date = models.DateField(_("due date"))
    reason = models.CharField(_("reason"), max_length=500)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    receipts = models.PositiveSmallIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("recovery")
        verbose_name_plural = _("recoveries")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="recovery_amount_positive"),
            models.CheckConstraint(
                condition=Q(received__gte=0) & Q(received__lte=F("amount")), name="recovery_received_within"
            ),
        ]

    def __str__(self) -> str:
        return f"recovery of {self.amount} from {self.award}"


# --- Ledger, tracking, alerts, audit --------------------------------------------------------------------------


class LedgerEntry(models.Model):
    """Append-only record of every movement of money against a pool. Never updated, never deleted
    (database triggers refuse both); a mistake is corrected by a new entry."""

    class Kind(models.TextChoices):
        COMMIT = "commit", _("commit")
        DECOMMIT = "decommit", _("de-commit")
        DISBURSE = "disburse", _("disburse")
        RECOVER = "recover", _("recover")

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    amount = MoneyField(_("amount"))
    pool = models.ForeignKey(FundingPool, on_delete=models.PROTECT, related_name="ledger_entries")
    fiscal_year = models.PositiveSmallIntegerField(_("fiscal year"))
    award = models.ForeignKey(Award, on_delete=models.PROTECT, related_name="ledger_entries", null=True)
    tranche = models.ForeignKey(Tranche, on_delete=models.PROTECT, related_name="ledger_entries", null=True)
    actor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", null=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now)
    reason = models.CharField(_("reason"), max_length=300)
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_amount_positive")]
        indexes = [
            # The tracking job's aggregate: Σ amount per kind for one pool (and per fiscal year).
            models.Index(fields=["pool", "kind", "fiscal_year"], name="ledger_pool_kind_year_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.pool.code} FY{self.fiscal_year}"


# What an entry of each kind does to the counters it justifies: (counter, sign). The one definition of the
# ledger's signs: postings (services.budget) apply it to the counters, the ledger totals (selectors.ledger_totals)
# to the entries' sums.
LEDGER_EFFECTS: dict[str, tuple[str, int]] = {
    LedgerEntry.Kind.COMMIT: ("committed", 1),
    LedgerEntry.Kind.DECOMMIT: ("committed", -1),
    LedgerEntry.Kind.DISBURSE: ("disbursed", 1),
    LedgerEntry.Kind.RECOVER: ("disbursed", -1),
}


class UsageSnapshot(models.Model):
    pool = models.ForeignKey(FundingPool, on_delete=models.PROTECT, related_name="snapshots")
    taken_at = models.DateTimeField(default=timezone.now)
    cap = MoneyField()
    committed = MoneyField()
    disbursed = MoneyField()
    available = MoneyField()
    pipeline = MoneyField(default=0)
    ledger_committed = MoneyField()
    ledger_disbursed = MoneyField()

    class Meta:
        ordering = ["-taken_at"]
        verbose_name = _("usage snapshot")
        verbose_name_plural = _("usage snapshots")
        indexes = [
            # A pool's usage history, newest first, for charts and the latest snapshot.
            models.Index(fields=["pool", "-taken_at"], name="snapshot_pool_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.pool.code} at {self.taken_at:%Y-%m-%d %H:%M}"


class BudgetAlert(models.Model):
    class Kind(models.TextChoices):
        THRESHOLD = "threshold", _("threshold crossed")
        DRIFT = "drift", _("counters drifted from the ledger")
        PIPELINE = "pipeline", _("pipeline exceeds what is left")
        ALLOTMENT = "allotment", _("fiscal-year payments forecast beyond allotment")

    class Severity(models.TextChoices):
        INFO = "info", _("info")
        WARNING = "warning", _("warning")
        CRITICAL = "critical", _("critical")

    pool = models.ForeignKey(FundingPool, on_delete=models.PROTECT, related_name="alerts")
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    severity = models.CharField(_("severity"), max_length=10, choices=Severity.choices)
    # What the alert is about: a threshold in % for THRESHOLD, a fiscal year for ALLOTMENT, 0 otherwise.
    subject = models.IntegerField(default=0)
    message = models.CharField(_("message"), max_length=500)
    figures = models.JSONField(default=dict)
    raised_at = models.DateTimeField(default=timezone.now)
    # Set by the tracking job when the condition no longer holds: a later crossing raises a new alert.
    cleared_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at"]
        verbose_name = _("budget alert")
        verbose_name_plural = _("budget alerts")
        constraints = [
            # Raised once per crossing, even when two tracking runs race: the second insert fails.
            models.UniqueConstraint(
                fields=["pool", "kind", "subject"],
                condition=Q(cleared_at__isnull=True),
                name="one_live_alert_per_crossing",
            )
        ]

    def __str__(self) -> str:
        return self.message


class AuditEvent(models.Model):
    """Who did what to which object, when, from where, with the values before and after. Append-only."""

    actor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", null=True)
    action = models.CharField(_("action"), max_length=60)
    object_type = models.CharField(_("object type"), max_length=60)
    object_id = models.CharField(_("object id"), max_length=40)
    object_repr = models.CharField(_("object"), max_length=200)
    # Scoping: the city the object belongs to, so auditors and officers see only their cities' events.
    city = models.ForeignKey(City, on_delete=models.PROTECT, related_name="+", null=True)
    before = models.JSONField(null=True)
    after = models.JSONField(null=True)
    remote_addr = models.GenericIPAddressField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        indexes = [
            # An object's history.
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.object_repr}"


# --- Integration: webhooks, exports, API tokens, idempotency ------------------------------------------------


class WebhookEndpoint(models.Model):
    city = models.ForeignKey(City, on_delete=models.PROTECT, related_name="webhooks", verbose_name=_("city"))
    url = models.URLField(_("URL"))
    secret = models.CharField(_("signing secret"), max_length=128)
    events = models.JSONField(_("events"), default=list, blank=True, help_text=_("Empty: every event."))
    active = models.BooleanField(_("active"), default=True)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        DELIVERED = "delivered", _("delivered")
        FAILED = "failed", _("failed")

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries")
    event_id = models.CharField(max_length=100)
    event = models.CharField(_("event"), max_length=60)
    payload = models.JSONField()
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveSmallIntegerField(null=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="one_delivery_per_event")
        ]
        indexes = [
            # The delivery sweep: pending deliveries that are due.
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.endpoint}"


class ExportJob(models.Model):
    """A report written to a file in the background (grants.services.exports says how a run claims, holds and
    gives back a job)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")
        EXPIRED = "expired", _("expired")

    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="export_jobs")
    report = models.CharField(max_length=40)
    format = models.CharField(max_length=10)
    params = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    file = models.FileField(upload_to="exports/", blank=True)
    row_count = models.PositiveIntegerField(null=True)
    error = models.CharField(max_length=500, blank=True)
    # Runs started; the run's number is its claim, so a run that lost the job cannot finish it.
    attempts = models.PositiveSmallIntegerField(default=0)
    # When the sweep looks again: a pending job not picked up by then lost its message; a running one past it
    # whose worker no longer holds it (row lock on PostgreSQL, the renewed lease elsewhere) died with its worker.
    sweep_after = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    # The file is deleted by the sweep after this (JOBS_EXPORT_RETENTION_HOURS after it was written).
    expires_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("export")
        verbose_name_plural = _("exports")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "running", "done", "failed", "expired"]),
                name="export_status_known",
            ),
            # A finished file is always deleted in time: a done job carries its expiry.
            models.CheckConstraint(
                condition=~models.Q(status="done") | models.Q(expires_at__isnull=False),
                name="export_done_expires",
            ),
        ]
        indexes = [
            # The sweep: pending and running jobs whose sweep_after has passed.
            models.Index(fields=["status", "sweep_after"], name="export_sweep_idx"),
            # The sweep's deletion of expired files: done jobs whose expires_at has passed.
            models.Index(fields=["status", "expires_at"], name="export_expiry_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.report}.{self.format} for {self.requested_by}"


class ApiToken(models.Model):
    """A per-user API token. Only a hash is stored; the key is shown once, when created."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class IdempotencyRecord(models.Model):
    """The first response to a POST carrying an Idempotency-Key, replayed for retries with the same body."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=300)
    body_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_once_per_user")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"


# --- Outbox -------------------------------------------------------------------------------------------------


class OutboxMessage(models.Model):
    """The notice that money moved in a pool (money-moved webhooks, prompt tracking), written in the same
    transaction as the ledger entries it announces: it exists exactly when they do, whether or not the broker was
    up at the commit. The worker drains it (grants.services.outbox) and marks it sent; the broker only says "now"."""

    pool = models.ForeignKey(FundingPool, on_delete=models.PROTECT, related_name="+")
    entry_ids = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The drain: unsent messages in id order (sent_at IS NULL); and the pruning of old sent ones.
            models.Index(fields=["sent_at", "id"], name="outbox_pending_idx"),
        ]

    def __str__(self) -> str:
        return f"money moved in pool {self.pool_id}: entries {self.entry_ids}"
