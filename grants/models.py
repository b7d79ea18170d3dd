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
from django.utils.translation import get_language, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from cities.models import City
from grants.money import MoneyField, format_money
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
    # Sum of the pools' reserved counters: money held by proposals awaiting a second officer (maker-checker).
    reserved = MoneyField(_("reserved"), default=0, editable=False)
    first_fiscal_year = models.PositiveSmallIntegerField(_("first fiscal year"))
    last_fiscal_year = models.PositiveSmallIntegerField(_("last fiscal year"))
    opens_at = models.DateTimeField(_("applications open"))
    closes_at = models.DateTimeField(_("applications close"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    policy_title = models.CharField(_("policy title"), max_length=300, blank=True)
    policy_url = models.URLField(_("policy URL"), blank=True)
    # Closing a fiscal year (grants.services.fiscal): what happens to each pool's unspent allotment and to the
    # tranches of the year that were not paid. Balances are carried over (结转) for at most `carry_over_years`
    # years after the year they were allotted for, and at most `carry_over_max_rate` of the year's allotment;
    # the rest lapses back as surplus (结余).
    carry_over_years = models.PositiveSmallIntegerField(
        _("carry unspent allotments over for (years)"),
        default=0,
        validators=[MaxValueValidator(10)],
        help_text=_("0: every unspent balance lapses when its year is closed."),
    )
    carry_over_max_rate = models.DecimalField(
        _("carry over at most (share of the year's allotment)"),
        max_digits=5,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text=_(
            "Empty: no limit in amount. 0.50 carries at most half of a pool's allotment of the year."
        ),
    )

    class UnpaidTranches(models.TextChoices):
        RESCHEDULE = "reschedule", _("rescheduled into the next year")
        DECOMMIT = "decommit", _("de-committed")

    unpaid_tranches = models.CharField(
        _("tranches unpaid when their year is closed are"),
        max_length=10,
        choices=UnpaidTranches.choices,
        default=UnpaidTranches.RESCHEDULE,
    )
    # The last fiscal year closed (every earlier one is closed too); set under the programme's lock by the close.
    closed_through = models.PositiveSmallIntegerField(
        _("closed through fiscal year"), null=True, editable=False
    )

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
            # Reserved money counts against the total like committed money: a proposal's room is kept for it.
            models.CheckConstraint(
                condition=Q(reserved__gte=0) & Q(total_budget__gte=F("committed") + F("reserved")),
                name="programme_reserved_within_budget",
            ),
            models.CheckConstraint(
                condition=Q(last_fiscal_year__gte=F("first_fiscal_year")), name="programme_years_ordered"
            ),
            models.CheckConstraint(condition=Q(closes_at__gt=F("opens_at")), name="programme_window_ordered"),
            models.CheckConstraint(
                condition=Q(carry_over_max_rate__isnull=True)
                | (Q(carry_over_max_rate__gte=0) & Q(carry_over_max_rate__lte=1)),
                name="programme_carry_over_rate_within",
            ),
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
    # Held by proposals awaiting a second officer: counts against the cap until confirmed (committed) or released.
    reserved = MoneyField(_("reserved"), default=0, editable=False)
    # Maker-checker (grants.services.proposals). Empty: one officer decides alone, whatever the amount.
    approval_threshold = MoneyField(
        _("second programme officer above"),
        null=True,
        blank=True,
        help_text=_(
            "An award (or an amendment up to an amount) above this needs a second programme officer."
        ),
    )
    payment_threshold = MoneyField(
        _("second finance officer above"),
        null=True,
        blank=True,
        help_text=_("A payment above this needs a second finance officer."),
    )
    proposal_expiry_days = models.PositiveSmallIntegerField(
        _("proposals expire after (days)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Empty: the PROPOSAL_EXPIRY_DAYS setting."),
    )
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
    tracked_at = models.DateTimeField(_("tracked at"), null=True, blank=True, editable=False)
    # The programme's closed_through, copied by the close under this row's lock: every movement of the pool
    # (payments too, which do not lock the programme) holds this lock and refuses a year it covers.
    closed_through = models.PositiveSmallIntegerField(
        _("closed through fiscal year"), null=True, editable=False
    )

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
                condition=Q(reserved__gte=0) & Q(cap__gte=F("committed") + F("reserved")),
                name="pool_reserved_within_cap",
            ),
            models.CheckConstraint(
                condition=Q(approval_threshold__isnull=True) | Q(approval_threshold__gt=0),
                name="pool_approval_threshold_positive",
            ),
            models.CheckConstraint(
                condition=Q(payment_threshold__isnull=True) | Q(payment_threshold__gt=0),
                name="pool_payment_threshold_positive",
            ),
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
        """What can still be awarded: neither committed nor reserved by a proposal awaiting a second officer."""
        return self.cap - self.committed - self.reserved

    @property
    def utilisation(self) -> Decimal:
        """Committed as a fraction of the cap."""
        return (self.committed / self.cap) if self.cap else Decimal(0)

    def thresholds(self) -> list[int]:
        return sorted({int(t) for t in (self.alert_thresholds or [50, 80, 95, 100])})


class FiscalYearAllotment(models.Model):
    """The part of a pool that may be spent in one fiscal year (the calendar year in China)."""

    pool = models.ForeignKey(
        FundingPool, on_delete=models.PROTECT, related_name="allotments", verbose_name=_("funding pool")
    )
    fiscal_year = models.PositiveSmallIntegerField(_("fiscal year"))
    amount = MoneyField(_("amount"))
    committed = MoneyField(_("committed"), default=0, editable=False)
    disbursed = MoneyField(_("disbursed"), default=0, editable=False)
    reserved = MoneyField(_("reserved"), default=0, editable=False)
    # Written by the close of a fiscal year (CARRY_IN, CARRY_OUT, LAPSE entries): what earlier years carried into
    # this one, and what this one carried over to the next or let lapse when it was closed. What may be committed
    # in the year is `spendable` (ALLOTMENT_SPENDABLE in SQL).
    carried_in = MoneyField(_("carried in"), default=0, editable=False)
    carried_out = MoneyField(_("carried out"), default=0, editable=False)
    lapsed = MoneyField(_("lapsed"), default=0, editable=False)

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
                condition=Q(carried_in__gte=0) & Q(carried_out__gte=0) & Q(lapsed__gte=0),
                name="allotment_carried_not_negative",
            ),
            # Committed and reserved money, what was carried over and what lapsed never pass what the year had:
            # its amount and what was carried into it.
            models.CheckConstraint(
                condition=Q(reserved__gte=0)
                & Q(
                    amount__gte=F("committed")
                    + F("reserved")
                    + F("carried_out")
                    + F("lapsed")
                    - F("carried_in")
                ),
                name="allotment_taken_within_spendable",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pool.code} FY{self.fiscal_year}"

    @property
    def spendable(self) -> Decimal:
        """What may be committed or reserved in the year: `ALLOTMENT_SPENDABLE`."""
        return self.amount + self.carried_in - self.carried_out - self.lapsed


# What may be committed or reserved in an allotment's year, in SQL: the same sum as FiscalYearAllotment.spendable.
ALLOTMENT_SPENDABLE = F("amount") + F("carried_in") - F("carried_out") - F("lapsed")


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
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

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
    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("institution")
    )
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="institution_memberships", verbose_name=_("user")
    )
    is_admin = models.BooleanField(_("manages the institution"), default=False)
    joined_at = models.DateTimeField(_("joined at"), auto_now_add=True)

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
    created_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", null=True, blank=True, verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
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
    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="attachments", verbose_name=_("application")
    )
    file = models.FileField(_("file"), upload_to=attachment_path)
    original_name = models.CharField(_("file name"), max_length=255)
    content_type = models.CharField(_("content type"), max_length=100)
    size = models.PositiveBigIntegerField(_("size (bytes)"))
    uploaded_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("uploaded by")
    )
    uploaded_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)

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

    class Declaration(models.TextChoices):
        PENDING = "", _("not declared yet")
        NO_CONFLICT = "no_conflict", _("no conflict of interest")
        RECUSED = "recused", _("recused")

    application = models.ForeignKey(
        Application, on_delete=models.PROTECT, related_name="reviews", verbose_name=_("application")
    )
    reviewer = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="reviews", verbose_name=_("reviewer")
    )
    assigned_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", null=True, verbose_name=_("assigned by")
    )
    assigned_at = models.DateTimeField(_("assigned at"), auto_now_add=True)
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
    # The reviewer's conflict-of-interest declaration, made before the application's content is shown to them
    # (grants/services/applications.py `declare_conflict`; grants/selectors.py `cleared_reviews`). A recused
    # review is never submitted and does not count toward the pool's minimum.
    declaration = models.CharField(
        _("conflict of interest"), max_length=12, choices=Declaration.choices, blank=True, default=""
    )
    declared_at = models.DateTimeField(_("declared at"), null=True, blank=True)
    recusal_reason = models.TextField(_("reason for recusal"), blank=True)

    class Meta:
        ordering = ["assigned_at"]
        verbose_name = _("review")
        verbose_name_plural = _("reviews")
        constraints = [
            models.UniqueConstraint(fields=["application", "reviewer"], name="one_review_per_reviewer"),
            # Scores only come after the reviewer declared no conflict; a recusal always says why.
            models.CheckConstraint(
                condition=Q(submitted_at__isnull=True) | Q(declaration="no_conflict"),
                name="submitted_review_declared",
            ),
            models.CheckConstraint(
                condition=~Q(declaration="recused") | ~Q(recusal_reason=""),
                name="recusal_has_reason",
            ),
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


class DuplicateFlag(models.Model):
    """Another application or award of the same institution (by credit code, in any city or pool) for a similar
    project, found when `application` was submitted or approved (grants/services/duplicates.py decides). The
    officer sees only the other's reference, city, status and amount, and acknowledges the flag with a reason
    before the application can be approved."""

    class Found(models.TextChoices):
        SUBMISSION = "submission", _("on submission")
        APPROVAL = "approval", _("at approval")

    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="duplicate_flags", verbose_name=_("application")
    )
    other = models.ForeignKey(
        Application, on_delete=models.PROTECT, related_name="+", verbose_name=_("similar application")
    )
    similarity = models.DecimalField(_("similarity"), max_digits=4, decimal_places=3)
    found_on = models.CharField(_("found"), max_length=10, choices=Found.choices)
    found_at = models.DateTimeField(_("found at"), default=timezone.now)
    acknowledged_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        verbose_name=_("acknowledged by"),
    )
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    reason = models.TextField(_("reason for going ahead"), blank=True)

    class Meta:
        ordering = ["found_at", "id"]
        verbose_name = _("duplicate funding flag")
        verbose_name_plural = _("duplicate funding flags")
        constraints = [
            # Found once: a second scan (at approval, or a concurrent submission) inserts nothing new.
            models.UniqueConstraint(fields=["application", "other"], name="duplicate_flag_once"),
            models.CheckConstraint(condition=~Q(application=F("other")), name="duplicate_flag_not_self"),
            models.CheckConstraint(
                condition=(Q(acknowledged_at__isnull=True) & Q(acknowledged_by__isnull=True) & Q(reason=""))
                | (Q(acknowledged_at__isnull=False) & Q(acknowledged_by__isnull=False) & ~Q(reason="")),
                name="duplicate_flag_acknowledged_with_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.application} resembles {self.other}"


# --- Awards, tranches, milestones, recoveries ---------------------------------------------------------------


class Award(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        SUSPENDED = "suspended", _("suspended")
        COMPLETED = "completed", _("completed")
        TERMINATED = "terminated", _("terminated")

    application = models.OneToOneField(
        Application, on_delete=models.PROTECT, related_name="award", verbose_name=_("application")
    )
    # Denormalised from the application: every report groups awards by pool and institution.
    pool = models.ForeignKey(
        FundingPool, on_delete=models.PROTECT, related_name="awards", verbose_name=_("funding pool")
    )
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="awards", verbose_name=_("institution")
    )
    reference = models.CharField(_("reference"), max_length=40, unique=True)
    # amount = Σ non-cancelled tranches; paid = Σ paid tranches; recovered = Σ recovery receipts.
    # The award holds (amount - recovered) committed and (paid - recovered) disbursed in its pool.
    amount = MoneyField(_("amount"), editable=False)
    paid = MoneyField(_("paid"), default=0, editable=False)
    recovered = MoneyField(_("recovered"), default=0, editable=False)
    start_date = models.DateField(_("start date"))
    duration_years = models.PositiveSmallIntegerField(_("duration (years)"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    approved_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("approved by")
    )
    approved_at = models.DateTimeField(_("approved at"))
    # The second programme officer when the approval was proposed (by approved_by) and confirmed.
    confirmed_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        verbose_name=_("confirmed by"),
    )
    amendments = models.PositiveSmallIntegerField(_("amendments"), default=0, editable=False)

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

    award = models.ForeignKey(
        Award, on_delete=models.PROTECT, related_name="tranches", verbose_name=_("award")
    )
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
    # Separation of duties: whoever made the tranche payable may not pay it (None: the daily job, or before
    # this was recorded). paid_by recorded the payment; confirmed_by is the second finance officer above the
    # pool's payment threshold.
    released_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", null=True, blank=True, verbose_name=_("released by")
    )
    paid_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", null=True, blank=True, verbose_name=_("paid by")
    )
    confirmed_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        verbose_name=_("confirmed by"),
    )

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

    tranche = models.ForeignKey(
        Tranche, on_delete=models.PROTECT, related_name="milestone_reports", verbose_name=_("tranche")
    )
    submitted_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("submitted by")
    )
    submitted_at = models.DateTimeField(_("submitted at"), auto_now_add=True)
    summary = models.TextField(_("summary"))
    attachment = models.FileField(_("attachment"), upload_to="milestones/", blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.SUBMITTED)
    decided_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", null=True, blank=True, verbose_name=_("decided by")
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_note = models.TextField(_("decision note"), blank=True)

    class Meta:
        ordering = ["-submitted_at"]
        verbose_name = _("milestone report")
        verbose_name_plural = _("milestone reports")

    def __str__(self) -> str:
        return f"milestone report for {self.tranche}"


# --- Award agreements and reporting duties (§16.2, §16.3) ---------------------------------------------------


class AwardAgreement(models.Model):
    """The agreement issued with an award. `terms` is the snapshot of what the parties agree to (parties, amount,
    schedule, conditions, reporting duties), taken at approval; the PDF is rendered from it deterministically on
    demand (grants.services.agreements), and `terms_sha256` is the digest the acceptance refers to."""

    class Status(models.TextChoices):
        ISSUED = "issued", _("awaiting acceptance")
        ACCEPTED = "accepted", _("accepted")

    award = models.OneToOneField(
        Award, on_delete=models.PROTECT, related_name="agreement", verbose_name=_("award")
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ISSUED)
    terms = models.JSONField(_("terms"), editable=False)
    terms_sha256 = models.CharField(_("digest of the terms"), max_length=64, editable=False)
    issued_at = models.DateTimeField(_("issued at"), default=timezone.now)
    accepted_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        verbose_name=_("accepted by"),
    )
    accepted_at = models.DateTimeField(_("accepted at"), null=True, blank=True)
    accepted_from = models.GenericIPAddressField(_("accepted from"), null=True, blank=True)

    class Meta:
        ordering = ["-issued_at"]
        verbose_name = _("award agreement")
        verbose_name_plural = _("award agreements")
        constraints = [
            # An accepted agreement always says who accepted it and when.
            models.CheckConstraint(
                condition=~Q(status="accepted")
                | (Q(accepted_by__isnull=False) & Q(accepted_at__isnull=False)),
                name="accepted_agreement_has_acceptance",
            ),
        ]

    def __str__(self) -> str:
        return f"agreement {self.award.reference}"


class ReportRequirement(BilingualName):
    """A report the pool asks of every award: progress or financial, every `every_months` months after the award
    starts and/or at its end, with the fields of its form (ReportField)."""

    class Kind(models.TextChoices):
        PROGRESS = "progress", _("progress report")
        FINANCIAL = "financial", _("financial report")

    pool = models.ForeignKey(
        FundingPool,
        on_delete=models.PROTECT,
        related_name="report_requirements",
        verbose_name=_("funding pool"),
    )
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    every_months = models.PositiveSmallIntegerField(
        _("every (months)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(60)],
        help_text=_(
            "Due this many months after the award starts, and again every as many months. Empty: none."
        ),
    )
    at_end = models.BooleanField(_("due at the end of the award"), default=True)
    attachment_required = models.BooleanField(_("needs an attachment"), default=False)
    # A progress report due on or before a tranche that needs a milestone report stands for it (§3).
    gates_milestones = models.BooleanField(
        _("counts as the milestone report of the next tranche"), default=False
    )

    class Meta:
        ordering = ["pool", "kind", "id"]
        verbose_name = _("report requirement")
        verbose_name_plural = _("report requirements")
        constraints = [
            models.CheckConstraint(
                condition=Q(every_months__isnull=False) | Q(at_end=True), name="requirement_has_a_due_date"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ReportField(models.Model):
    """One field of a report's form, labelled in both languages."""

    class Type(models.TextChoices):
        TEXT = "text", _("text")
        NUMBER = "number", _("number")
        MONEY = "money", _("amount of money")
        DATE = "date", _("date")

    requirement = models.ForeignKey(ReportRequirement, on_delete=models.CASCADE, related_name="fields")
    name = models.SlugField(_("name"), max_length=40, help_text=_("Key of the answer, e.g. spent_to_date."))
    label_en = models.CharField(_("label (English)"), max_length=200)
    label_zh = models.CharField(_("label (Chinese)"), max_length=200, blank=True)
    type = models.CharField(_("type"), max_length=10, choices=Type.choices, default=Type.TEXT)
    required = models.BooleanField(_("required"), default=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        ordering = ["requirement", "position", "id"]
        verbose_name = _("report field")
        verbose_name_plural = _("report fields")
        constraints = [
            models.UniqueConstraint(fields=["requirement", "name"], name="report_field_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        if (get_language() or "").startswith("zh") and self.label_zh:
            return self.label_zh
        return self.label_en


class ReportingDuty(models.Model):
    """One report an award owes by a date. Overdue is not a state: a duty still due (or returned) after its date
    (grants.selectors.overdue_duties)."""

    class Status(models.TextChoices):
        DUE = "due", _("due")
        SUBMITTED = "submitted", _("submitted")
        ACCEPTED = "accepted", _("accepted")
        RETURNED = "returned", _("returned for changes")

    award = models.ForeignKey(
        Award, on_delete=models.PROTECT, related_name="reporting_duties", verbose_name=_("award")
    )
    # Denormalised from the award: the officers' and the dashboard's listings filter duties by pool.
    pool = models.ForeignKey(
        FundingPool, on_delete=models.PROTECT, related_name="reporting_duties", verbose_name=_("funding pool")
    )
    requirement = models.ForeignKey(
        ReportRequirement, on_delete=models.PROTECT, related_name="duties", verbose_name=_("report")
    )
    kind = models.CharField(_("kind"), max_length=10, choices=ReportRequirement.Kind.choices)
    sequence = models.PositiveSmallIntegerField(_("sequence"))
    due_date = models.DateField(_("due date"))
    # The milestone-gated tranche this report unlocks when accepted (null: none).
    tranche = models.ForeignKey(
        Tranche,
        on_delete=models.PROTECT,
        related_name="reporting_duties",
        null=True,
        blank=True,
        verbose_name=_("tranche"),
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DUE)
    answers = models.JSONField(_("answers"), default=dict, blank=True)
    submitted_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        verbose_name=_("submitted by"),
    )
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)
    decided_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    comment = models.TextField(_("officer's comment"), blank=True)

    class Meta:
        ordering = ["due_date", "id"]
        verbose_name = _("reporting duty")
        verbose_name_plural = _("reporting duties")
        constraints = [
            models.UniqueConstraint(
                fields=["award", "requirement", "sequence"], name="reporting_duty_once_per_award"
            ),
            models.CheckConstraint(
                condition=Q(status="due") | (Q(submitted_by__isnull=False) & Q(submitted_at__isnull=False)),
                name="reported_duty_has_submission",
            ),
        ]
        indexes = [
            # The overdue and due-soon listings (dashboard, reminders): outstanding duties by date.
            models.Index(fields=["status", "due_date"], name="duty_status_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.award.reference} {self.kind} #{self.sequence} ({self.due_date})"


def report_attachment_path(instance: "ReportAttachment", filename: str) -> str:
    return f"reports/{instance.duty_id}/{filename}"


class ReportAttachment(models.Model):
    duty = models.ForeignKey(ReportingDuty, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(_("file"), upload_to=report_attachment_path)
    original_name = models.CharField(_("file name"), max_length=255)
    content_type = models.CharField(_("content type"), max_length=100)
    size = models.PositiveBigIntegerField(_("size (bytes)"))
    uploaded_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["uploaded_at"]
        verbose_name = _("report attachment")
        verbose_name_plural = _("report attachments")

    def __str__(self) -> str:
        return self.original_name


class Recovery(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("open")
        RECEIVED = "received", _("received in full")
        WAIVED = "waived", _("waived")

    award = models.ForeignKey(
        Award, on_delete=models.PROTECT, related_name="recoveries", verbose_name=_("award")
    )
    amount = MoneyField(_("amount demanded"))
    received = MoneyField(_("amount received"), default=0, editable=False)
    due_date = models.DateField(_("due date"))
    reason = models.CharField(_("reason"), max_length=500)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    created_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    receipts = models.PositiveSmallIntegerField(_("receipts"), default=0, editable=False)

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


class Proposal(models.Model):
    """A decision above the pool's threshold, made by one officer and awaiting a second (maker-checker).

    An approval or an upward amendment reserves its amount against every budget level while it waits (RESERVE
    ledger entries; the reserved counters); confirmation releases the reservation and commits through the same
    approval or amendment service as a direct decision; sending back or expiry releases it. A payment proposal
    reserves nothing (a payment moves money within what is committed). Transitions and who may take them:
    grants.workflow.PROPOSAL."""

    class Kind(models.TextChoices):
        APPROVAL = "approval", _("approval")
        AMENDMENT = "amendment", _("amendment")
        PAYMENT = "payment", _("payment")

    class Status(models.TextChoices):
        PENDING = "pending", _("awaiting confirmation")
        CONFIRMED = "confirmed", _("confirmed")
        SENT_BACK = "sent_back", _("sent back")
        EXPIRED = "expired", _("expired")

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    pool = models.ForeignKey(
        FundingPool, on_delete=models.PROTECT, related_name="proposals", verbose_name=_("funding pool")
    )
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="proposals", verbose_name=_("institution")
    )
    application = models.ForeignKey(
        Application,
        on_delete=models.PROTECT,
        related_name="proposals",
        null=True,
        blank=True,
        verbose_name=_("application"),
    )
    # The award amended, or (once an approval is confirmed) the award it created.
    award = models.ForeignKey(
        Award,
        on_delete=models.PROTECT,
        related_name="proposals",
        null=True,
        blank=True,
        verbose_name=_("award"),
    )
    tranche = models.ForeignKey(
        Tranche,
        on_delete=models.PROTECT,
        related_name="proposals",
        null=True,
        blank=True,
        verbose_name=_("tranche"),
    )
    # The award's amount (approval, amendment: the new amount) or the payment's.
    amount = MoneyField(_("amount"))
    # What the confirmation replays: the schedule, note, reason, payment reference, as the proposer gave them.
    terms = models.JSONField(default=dict, blank=True)
    proposed_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("proposed by")
    )
    proposed_at = models.DateTimeField(_("proposed at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"))
    decided_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_note = models.CharField(_("decision note"), max_length=500, blank=True)
    # The proposer's Idempotency-Key: a retried proposal returns the first instead of making a second.
    idempotency_key = models.CharField(max_length=200, unique=True, null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-proposed_at"]
        verbose_name = _("proposal")
        verbose_name_plural = _("proposals")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="proposal_amount_positive"),
            models.CheckConstraint(
                condition=(Q(kind="approval") & Q(application__isnull=False))
                | (Q(kind="amendment") & Q(award__isnull=False))
                | (Q(kind="payment") & Q(tranche__isnull=False)),
                name="proposal_has_its_object",
            ),
            # One decision at a time per object: a second proposal would reserve the same money twice.
            models.UniqueConstraint(
                fields=["application"],
                condition=Q(status="pending", kind="approval"),
                name="proposal_one_pending_per_application",
            ),
            models.UniqueConstraint(
                fields=["award"],
                condition=Q(status="pending", kind="amendment"),
                name="proposal_one_pending_per_award",
            ),
            models.UniqueConstraint(
                fields=["tranche"],
                condition=Q(status="pending", kind="payment"),
                name="proposal_one_pending_per_tranche",
            ),
        ]
        indexes = [
            # The expiry sweep: pending proposals whose time has passed.
            models.Index(fields=["status", "expires_at"], name="proposal_status_expiry_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {format_money(self.amount)} ({self.get_status_display()})"


# --- Vouchers (算力券): accredited providers, schemes, vouchers, claims -------------------------------------------


class OfferingClass(models.TextChoices):
    """What a scheme's rate depends on (VoucherScheme.rates): e.g. Hangzhou pays more for domestic computing power."""

    STANDARD = "standard", _("standard")
    DOMESTIC = "domestic", _("domestic")


VOUCHER_CATEGORIES = ("compute", "models", "data")


class Provider(models.Model):
    """An institution a city accredits (by its credit code) to sell computing power, models or datasets under its
    vouchers. Accredited for some categories, from a date, until a date or open-ended."""

    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="accreditations", verbose_name=_("institution")
    )
    city = models.ForeignKey(
        City, on_delete=models.PROTECT, related_name="providers", verbose_name=_("accrediting city")
    )
    categories = models.JSONField(
        _("categories"), default=list, help_text=_('Some of "compute", "models", "data".')
    )
    accredited_from = models.DateField(_("accredited from"))
    accredited_until = models.DateField(_("accredited until"), null=True, blank=True)
    suspended = models.BooleanField(_("accreditation suspended"), default=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["city__code", "institution__name_en"]
        verbose_name = _("accredited provider")
        verbose_name_plural = _("accredited providers")
        constraints = [
            models.UniqueConstraint(fields=["city", "institution"], name="provider_once_per_city"),
            models.CheckConstraint(
                condition=Q(accredited_until__isnull=True) | Q(accredited_until__gte=F("accredited_from")),
                name="provider_accreditation_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.institution} ({self.city.code})"


class Offering(models.Model):
    """What an accredited provider sells: e.g. A800 GPU-hours, domestic or not."""

    provider = models.ForeignKey(
        Provider, on_delete=models.CASCADE, related_name="offerings", verbose_name=_("provider")
    )
    category = models.CharField(_("category"), max_length=10, choices=FundingPool.Category.choices)
    name = models.CharField(_("name"), max_length=200)
    accelerator_type = models.CharField(_("accelerator type"), max_length=100, blank=True)
    offering_class = models.CharField(
        _("class"), max_length=10, choices=OfferingClass.choices, default=OfferingClass.STANDARD
    )
    unit = models.CharField(_("unit"), max_length=40, blank=True, help_text=_("e.g. accelerator-hours"))

    class Meta:
        ordering = ["provider", "category", "name"]
        verbose_name = _("offering")
        verbose_name_plural = _("offerings")
        constraints = [
            models.CheckConstraint(
                condition=Q(category__in=VOUCHER_CATEGORIES), name="offering_voucher_category"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_offering_class_display()})"


class InstitutionRelation(models.Model):
    """What an institution declares on its profile about who controls it: its legal representative and its
    shareholders. A buyer and a provider that share either are related and may not trade under a voucher."""

    class Kind(models.TextChoices):
        LEGAL_REPRESENTATIVE = "legal_rep", _("legal representative")
        SHAREHOLDER = "shareholder", _("shareholder")

    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="relations", verbose_name=_("institution")
    )
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    name = models.CharField(_("name"), max_length=200)
    # A person's identity number or a company's credit code, where declared: compared before names.
    identifier = models.CharField(_("ID or credit code"), max_length=30, blank=True)

    class Meta:
        ordering = ["institution", "kind", "name"]
        verbose_name = _("declared relation")
        verbose_name_plural = _("declared relations")

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.name}"


class VoucherScheme(models.Model):
    """A pool run as vouchers. The face value a holder may get per fiscal year is the pool's maximum per institution
    per year; the share of what was paid a claim may cover is the rate of the offering's class."""

    class Payee(models.TextChoices):
        HOLDER = "holder", _("the voucher holder")
        PROVIDER = "provider", _("the provider")

    pool = models.OneToOneField(
        FundingPool, on_delete=models.PROTECT, related_name="voucher_scheme", verbose_name=_("funding pool")
    )
    rates = models.JSONField(
        _("subsidy rate per offering class"),
        default=dict,
        help_text=_(
            'e.g. {"standard": "0.30", "domestic": "0.50"}; a class not listed takes the standard rate.'
        ),
    )
    validity_days = models.PositiveSmallIntegerField(
        _("valid for (days)"),
        default=365,
        validators=[MinValueValidator(1)],
        help_text=_("From issue; never past the end of the fiscal year the voucher is issued for."),
    )
    pays = models.CharField(_("pays"), max_length=10, choices=Payee.choices, default=Payee.HOLDER)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("voucher scheme")
        verbose_name_plural = _("voucher schemes")

    def __str__(self) -> str:
        return f"{self.pool} ({_('vouchers')})"


class Voucher(models.Model):
    """A commitment of its face value against every budget level of its pool, held by an institution and spent by
    claims. face_value = paid + held + lapsed + balance: held by claims awaiting verification, paid by approved
    claims, lapsed at expiry (DECOMMIT). The pool holds (face_value - lapsed) committed and `paid` disbursed."""

    class Status(models.TextChoices):
        ACTIVE = "active", pgettext_lazy("voucher", "active")
        EXPIRED = "expired", _("expired")
        SPENT = "spent", _("spent")

    scheme = models.ForeignKey(
        VoucherScheme, on_delete=models.PROTECT, related_name="vouchers", verbose_name=_("voucher scheme")
    )
    # Denormalised from the scheme: every report groups by pool and holder.
    pool = models.ForeignKey(
        FundingPool, on_delete=models.PROTECT, related_name="vouchers", verbose_name=_("funding pool")
    )
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="vouchers", verbose_name=_("holder")
    )
    application = models.OneToOneField(
        Application,
        on_delete=models.PROTECT,
        related_name="voucher",
        null=True,
        blank=True,
        verbose_name=_("application"),
    )
    code = models.CharField(_("code"), max_length=40, unique=True)
    face_value = MoneyField(_("face value"))
    fiscal_year = models.PositiveSmallIntegerField(_("fiscal year"))
    valid_from = models.DateField(_("valid from"))
    valid_until = models.DateField(_("valid until"))
    held = MoneyField(_("held by claims awaiting verification"), default=0, editable=False)
    paid = MoneyField(_("paid"), default=0, editable=False)
    lapsed = MoneyField(_("lapsed"), default=0, editable=False)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    issued_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("issued by")
    )
    issued_at = models.DateTimeField(_("issued at"), default=timezone.now)
    expired_at = models.DateTimeField(_("expired at"), null=True, blank=True)
    reminded_at = models.DateTimeField(_("reminded at"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-issued_at", "-id"]
        verbose_name = _("voucher")
        verbose_name_plural = _("vouchers")
        constraints = [
            models.CheckConstraint(condition=Q(face_value__gt=0), name="voucher_face_value_positive"),
            models.CheckConstraint(
                condition=Q(held__gte=0) & Q(paid__gte=0) & Q(lapsed__gte=0),
                name="voucher_parts_not_negative",
            ),
            # The balance never goes below zero, whatever code runs.
            models.CheckConstraint(
                condition=Q(face_value__gte=F("paid") + F("held") + F("lapsed")),
                name="voucher_balance_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(valid_until__gte=F("valid_from")), name="voucher_validity_ordered"
            ),
        ]
        indexes = [
            models.Index(fields=["pool", "institution", "fiscal_year"], name="voucher_pool_holder_year_idx"),
            # The expiry sweep: active vouchers whose validity has ended.
            models.Index(fields=["status", "valid_until"], name="voucher_status_until_idx"),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def balance(self) -> Decimal:
        return self.face_value - self.paid - self.held - self.lapsed


def claim_file_path(instance: "VoucherClaim", filename: str) -> str:
    return f"claims/{instance.voucher_id}/{filename}"


class ProviderContract(models.Model):
    """A provider's contract as claims have presented it, across every city: what it is worth and how much of it
    claims have invoiced. Its row lock serialises claims on one contract; its CHECK keeps them within its value."""

    provider_institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="+", verbose_name=_("provider")
    )
    number = models.CharField(_("contract number (normalised)"), max_length=100)
    value = MoneyField(_("contract value"))
    invoiced = MoneyField(_("invoiced under claims"), default=0)

    class Meta:
        verbose_name = _("provider contract")
        verbose_name_plural = _("provider contracts")
        constraints = [
            models.UniqueConstraint(fields=["provider_institution", "number"], name="contract_once"),
            models.CheckConstraint(condition=Q(value__gt=0), name="contract_value_positive"),
            models.CheckConstraint(
                condition=Q(invoiced__gte=0) & Q(invoiced__lte=F("value")),
                name="contract_invoiced_within_value",
            ),
        ]

    def __str__(self) -> str:
        return self.number


class VoucherClaim(models.Model):
    """A claim against a voucher for part of what the holder paid an accredited provider, with the contract, the
    VAT invoice, the payment proof and a usage statement. Its amount is held on the voucher until a finance officer
    approves it (paid: a DISBURSE entry, possibly a lower amount) or rejects it with a reason."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted", _("awaiting verification")
        PAID = "paid", _("approved and paid")
        REJECTED = "rejected", _("rejected")

    voucher = models.ForeignKey(
        Voucher, on_delete=models.PROTECT, related_name="claims", verbose_name=_("voucher")
    )
    provider = models.ForeignKey(
        Provider, on_delete=models.PROTECT, related_name="claims", verbose_name=_("provider")
    )
    offering = models.ForeignKey(
        Offering, on_delete=models.PROTECT, related_name="claims", verbose_name=_("offering")
    )
    reference = models.CharField(_("reference"), max_length=50, unique=True)
    submitted_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("submitted by")
    )
    submitted_as = models.CharField(_("submitted as"), max_length=10, choices=VoucherScheme.Payee.choices)
    submitted_at = models.DateTimeField(_("submitted at"), default=timezone.now)
    contract = models.ForeignKey(
        ProviderContract, on_delete=models.PROTECT, related_name="claims", verbose_name=_("contract")
    )
    contract_number = models.CharField(_("contract number"), max_length=100)
    contract_value = MoneyField(_("contract value"))
    invoice_code = models.CharField(_("invoice code"), max_length=20, blank=True)
    invoice_number = models.CharField(_("invoice number"), max_length=30)
    # Code and number, digits and letters only, full-width folded: unique over every claim ever stored.
    invoice_key = models.CharField(_("invoice (normalised)"), max_length=60, unique=True, editable=False)
    invoice_date = models.DateField(_("invoice date"))
    invoice_amount = MoneyField(_("invoice amount before tax"))
    invoice_tax = MoneyField(_("invoice tax"))
    amount_paid = MoneyField(_("amount actually paid"))
    amount = MoneyField(_("amount claimed"))
    usage_statement = models.TextField(_("usage statement"))
    usage_quantity = models.DecimalField(
        _("usage (e.g. accelerator-hours)"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    invoice_file = models.FileField(_("invoice file"), upload_to=claim_file_path)
    payment_proof = models.FileField(_("payment proof"), upload_to=claim_file_path)
    rate = models.DecimalField(_("subsidy rate"), max_digits=5, decimal_places=4)
    payee = models.CharField(_("paid to"), max_length=10, choices=VoucherScheme.Payee.choices)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.SUBMITTED)
    approved_amount = MoneyField(_("approved amount"), null=True, blank=True)
    decided_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", null=True, blank=True, verbose_name=_("decided by")
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_reason = models.CharField(_("reason"), max_length=500, blank=True)
    payment_reference = models.CharField(
        _("payment reference"), max_length=64, unique=True, null=True, blank=True
    )
    idempotency_key = models.CharField(max_length=200, unique=True, null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-submitted_at", "-id"]
        verbose_name = _("voucher claim")
        verbose_name_plural = _("voucher claims")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="claim_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount_paid__gt=0) & Q(amount_paid__lte=F("invoice_amount") + F("invoice_tax")),
                name="claim_paid_within_invoice",
            ),
            models.CheckConstraint(
                condition=Q(invoice_amount__gt=0) & Q(invoice_tax__gte=0), name="claim_invoice_positive"
            ),
            models.CheckConstraint(
                condition=~Q(status="paid")
                | (
                    Q(approved_amount__gt=0)
                    & Q(approved_amount__lte=F("amount"))
                    & Q(payment_reference__isnull=False)
                ),
                name="claim_paid_has_amount",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "submitted_at"], name="claim_status_idx"),
            models.Index(fields=["provider", "status"], name="claim_provider_status_idx"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def invoice_total(self) -> Decimal:
        return self.invoice_amount + self.invoice_tax


# --- Ledger, tracking, alerts, audit --------------------------------------------------------------------------


class LedgerEntry(models.Model):
    """Append-only record of every movement of money against a pool. Never updated, never deleted
    (database triggers refuse both); a mistake is corrected by a new entry."""

    class Kind(models.TextChoices):
        COMMIT = "commit", _("commit")
        DECOMMIT = "decommit", _("de-commit")
        DISBURSE = "disburse", _("disburse")
        RECOVER = "recover", _("recover")
        RESERVE = "reserve", _("reserve")
        RELEASE = "release", _("release")
        # The close of a fiscal year (grants.services.fiscal): an unspent balance carried from the closed year
        # (CARRY_OUT) into the next (CARRY_IN), or lapsed back as surplus (LAPSE).
        CARRY_OUT = "carry_out", _("carry over (out)")
        CARRY_IN = "carry_in", _("carry over (in)")
        LAPSE = "lapse", _("lapse")

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    amount = MoneyField(_("amount"))
    pool = models.ForeignKey(
        FundingPool, on_delete=models.PROTECT, related_name="ledger_entries", verbose_name=_("funding pool")
    )
    fiscal_year = models.PositiveSmallIntegerField(_("fiscal year"))
    award = models.ForeignKey(
        Award, on_delete=models.PROTECT, related_name="ledger_entries", null=True, verbose_name=_("award")
    )
    tranche = models.ForeignKey(
        Tranche, on_delete=models.PROTECT, related_name="ledger_entries", null=True, verbose_name=_("tranche")
    )
    # A voucher's commitment (COMMIT at issue, DECOMMIT of what lapses) and its claims' payments (DISBURSE).
    voucher = models.ForeignKey(
        "Voucher", on_delete=models.PROTECT, related_name="ledger_entries", null=True, blank=True
    )
    claim = models.ForeignKey(
        "VoucherClaim", on_delete=models.PROTECT, related_name="ledger_entries", null=True, blank=True
    )
    # The proposal whose reservation a RESERVE or RELEASE entry holds or gives back.
    proposal = models.ForeignKey(
        "Proposal", on_delete=models.PROTECT, related_name="ledger_entries", null=True, blank=True
    )
    actor = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", null=True, verbose_name=_("actor")
    )
    created_at = models.DateTimeField(_("time"), default=timezone.now)
    reason = models.CharField(_("reason"), max_length=300)
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    # CARRY_OUT, CARRY_IN and LAPSE entries: the fiscal year the money was first allotted for. A balance may be
    # carried over for a limited number of years after it (Programme.carry_over_years).
    origin_year = models.PositiveSmallIntegerField(_("allotted for fiscal year"), null=True, blank=True)

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
    LedgerEntry.Kind.RESERVE: ("reserved", 1),
    LedgerEntry.Kind.RELEASE: ("reserved", -1),
    # Only allotments keep these counters: carrying over moves room between two years of one pool (its committed
    # money does not change), and lapsed money stays within the pool's cap, unusable in its closed year.
    LedgerEntry.Kind.CARRY_OUT: ("carried_out", 1),
    LedgerEntry.Kind.CARRY_IN: ("carried_in", 1),
    LedgerEntry.Kind.LAPSE: ("lapsed", 1),
}
# The counters only fiscal-year allotments keep.
ALLOTMENT_ONLY_COUNTERS = ("carried_in", "carried_out", "lapsed")


class UsageSnapshot(models.Model):
    pool = models.ForeignKey(
        FundingPool, on_delete=models.PROTECT, related_name="snapshots", verbose_name=_("funding pool")
    )
    taken_at = models.DateTimeField(_("taken at"), default=timezone.now)
    cap = MoneyField(_("cap"))
    committed = MoneyField(_("committed"))
    disbursed = MoneyField(_("disbursed"))
    available = MoneyField(_("available"))
    pipeline = MoneyField(_("pipeline"), default=0)
    ledger_committed = MoneyField(_("committed by the ledger"))
    ledger_disbursed = MoneyField(_("disbursed by the ledger"))

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

    pool = models.ForeignKey(
        FundingPool, on_delete=models.PROTECT, related_name="alerts", verbose_name=_("funding pool")
    )
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    severity = models.CharField(_("severity"), max_length=10, choices=Severity.choices)
    # What the alert is about: a threshold in % for THRESHOLD, a fiscal year for ALLOTMENT, 0 otherwise.
    subject = models.IntegerField(_("subject"), default=0)
    message = models.CharField(_("message"), max_length=500)
    figures = models.JSONField(_("figures"), default=dict)
    raised_at = models.DateTimeField(_("raised at"), default=timezone.now)
    # Set by the tracking job when the condition no longer holds: a later crossing raises a new alert.
    cleared_at = models.DateTimeField(_("cleared at"), null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        verbose_name=_("acknowledged by"),
    )
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)

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

    actor = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", null=True, verbose_name=_("actor")
    )
    action = models.CharField(_("action"), max_length=60)
    object_type = models.CharField(_("object type"), max_length=60)
    object_id = models.CharField(_("object id"), max_length=40)
    object_repr = models.CharField(_("object"), max_length=200)
    # Scoping: the city the object belongs to, so auditors and officers see only their cities' events.
    city = models.ForeignKey(
        City, on_delete=models.PROTECT, related_name="+", null=True, verbose_name=_("city")
    )
    before = models.JSONField(_("before"), null=True)
    after = models.JSONField(_("after"), null=True)
    remote_addr = models.GenericIPAddressField(_("address"), null=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now)

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
    created_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", null=True, verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

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

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries", verbose_name=_("endpoint")
    )
    event_id = models.CharField(_("event id"), max_length=100)
    event = models.CharField(_("event"), max_length=60)
    payload = models.JSONField(_("payload"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    last_status_code = models.PositiveSmallIntegerField(_("last status code"), null=True)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    delivered_at = models.DateTimeField(_("delivered at"), null=True)

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

    requested_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="export_jobs", verbose_name=_("requested by")
    )
    report = models.CharField(_("report"), max_length=40)
    format = models.CharField(_("format"), max_length=10)
    params = models.JSONField(_("parameters"), default=dict)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    file = models.FileField(_("file"), upload_to="exports/", blank=True)
    row_count = models.PositiveIntegerField(_("rows"), null=True)
    error = models.CharField(_("error"), max_length=500, blank=True)
    # Runs started; the run's number is its claim, so a run that lost the job cannot finish it.
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # When the sweep looks again: a pending job not picked up by then lost its message; a running one past it
    # whose worker no longer holds it (row lock on PostgreSQL, the renewed lease elsewhere) died with its worker.
    sweep_after = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    started_at = models.DateTimeField(_("started at"), null=True)
    finished_at = models.DateTimeField(_("finished at"), null=True)
    # The file is deleted by the sweep after this (JOBS_EXPORT_RETENTION_HOURS after it was written).
    expires_at = models.DateTimeField(_("expires at"), null=True)

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

    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="api_tokens", verbose_name=_("user")
    )
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class IdempotencyRecord(models.Model):
    """The first response to a POST carrying an Idempotency-Key, replayed for retries with the same body."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+", verbose_name=_("user"))
    key = models.CharField(_("key"), max_length=200)
    method = models.CharField(_("method"), max_length=10)
    path = models.CharField(_("path"), max_length=300)
    body_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(_("status code"), null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

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


# --- Notices to people (grants/services/notifications.py) ---------------------------------------------------


class UserProfile(models.Model):
    """What the site remembers about a person beyond django.contrib.auth: the language they read it in (e-mails
    sent while they are away use it) and the notices they do not want by e-mail."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="profile")
    language = models.CharField(
        _("language"), max_length=10, choices=settings.LANGUAGES, default=settings.LANGUAGE_CODE
    )
    # Events turned off (not those turned on): an event added later reaches everyone until they turn it off.
    email_muted = models.JSONField(_("notices not sent by e-mail"), default=list, blank=True)

    class Meta:
        verbose_name = _("user profile")
        verbose_name_plural = _("user profiles")

    def __str__(self) -> str:
        return f"profile of {self.user}"


class Notification(models.Model):
    """One notice to one person, shown in their portal list; rendered in the reader's language when read."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(_("event"), max_length=40)
    # What it is about (application, award, tranche, review ...): its link.
    object_type = models.CharField(max_length=40)
    object_id = models.BigIntegerField()
    context = models.JSONField(default=dict)
    created_at = models.DateTimeField(_("time"), default=timezone.now)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("notice")
        verbose_name_plural = _("notices")
        indexes = [
            # A user's list, newest first (the portal page and the API).
            models.Index(fields=["user", "-id"], name="notice_user_idx"),
            # The unread count in every portal page's navigation.
            models.Index(fields=["user"], condition=Q(read_at__isnull=True), name="notice_unread_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.user}"


class NotificationEmail(models.Model):
    """The outbox row of one notice's e-mail, written with the notice in the announcing transaction and sent by
    the worker after COMMIT (grants.services.notifications.send_email). `claimed_until` is the lease of the run
    sending it; `next_attempt_at` when beat's sweep may pick it up if its queued task was lost."""

    notification = models.OneToOneField(
        Notification, on_delete=models.CASCADE, related_name="email", verbose_name=_("notice")
    )
    created_at = models.DateTimeField(_("written at"), default=timezone.now)
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    failed_at = models.DateTimeField(_("given up at"), null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("notice e-mail")
        verbose_name_plural = _("notice e-mails")
        indexes = [
            # The sweep: e-mails neither sent nor given up whose next attempt is due.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(sent_at__isnull=True, failed_at__isnull=True),
                name="notice_email_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"e-mail of notice {self.notification_id}"


class Reminder(models.Model):
    """That a reminder about one item (a reporting duty) was sent: at most one per item and kind, so a second
    run of the daily job, or two at once, sends nothing more (the second insert fails)."""

    class Kind(models.TextChoices):
        DUE_30 = "due_30", _("due in 30 days")
        DUE_7 = "due_7", _("due in 7 days")
        OVERDUE = "overdue", _("overdue")

    item_type = models.CharField(max_length=40)
    item_id = models.BigIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("reminder")
        verbose_name_plural = _("reminders")
        constraints = [
            models.UniqueConstraint(fields=["item_type", "item_id", "kind"], name="reminder_once_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.kind} reminder for {self.item_type} {self.item_id}"
