"""Maker-checker (issue 14.1): proposals awaiting a second officer, the money they reserve against every budget
level (RESERVE and RELEASE ledger entries, reserved counters with CHECK constraints: cap >= committed + reserved),
the pools' thresholds, and who released, paid and confirmed each tranche."""

import django.core.validators
import django.db.models.deletion
import django.db.models.expressions
import django.utils.timezone
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations, models

import grants.money

# Every city role sees the proposals of its cities (as 0004 does for the first models); they change only through
# the services (the admin's confirm and send-back operations, the API).
GRANTS = {role: ["view_proposal"] for role in ("programme_officer", "finance_officer", "auditor")}


def grant(apps, schema_editor):
    config = apps.get_app_config("grants")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codenames in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="grants", codename__in=codenames)
        )


def ungrant(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(content_type__app_label="grants", content_type__model="proposal").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("grants", "0007_retention"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Proposal",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("approval", "approval"),
                            ("amendment", "amendment"),
                            ("payment", "payment"),
                        ],
                        max_length=10,
                        verbose_name="kind",
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "awaiting confirmation"),
                            ("confirmed", "confirmed"),
                            ("sent_back", "sent back"),
                            ("expired", "expired"),
                        ],
                        default="pending",
                        max_length=10,
                        verbose_name="status",
                    ),
                ),
                ("amount", grants.money.MoneyField(decimal_places=2, max_digits=18, verbose_name="amount")),
                ("terms", models.JSONField(blank=True, default=dict)),
                (
                    "proposed_at",
                    models.DateTimeField(default=django.utils.timezone.now, verbose_name="proposed at"),
                ),
                ("expires_at", models.DateTimeField(verbose_name="expires at")),
                ("decided_at", models.DateTimeField(blank=True, null=True, verbose_name="decided at")),
                ("decision_note", models.CharField(blank=True, max_length=500, verbose_name="decision note")),
                (
                    "idempotency_key",
                    models.CharField(blank=True, editable=False, max_length=200, null=True, unique=True),
                ),
            ],
            options={
                "verbose_name": "proposal",
                "verbose_name_plural": "proposals",
                "ordering": ["-proposed_at"],
            },
        ),
        migrations.AddField(
            model_name="award",
            name="confirmed_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="confirmed by",
            ),
        ),
        migrations.AddField(
            model_name="fiscalyearallotment",
            name="reserved",
            field=grants.money.MoneyField(
                decimal_places=2, default=0, editable=False, max_digits=18, verbose_name="reserved"
            ),
        ),
        migrations.AddField(
            model_name="fundingpool",
            name="approval_threshold",
            field=grants.money.MoneyField(
                blank=True,
                decimal_places=2,
                help_text="An award (or an amendment up to an amount) above this needs a second programme officer.",
                max_digits=18,
                null=True,
                verbose_name="second programme officer above",
            ),
        ),
        migrations.AddField(
            model_name="fundingpool",
            name="payment_threshold",
            field=grants.money.MoneyField(
                blank=True,
                decimal_places=2,
                help_text="A payment above this needs a second finance officer.",
                max_digits=18,
                null=True,
                verbose_name="second finance officer above",
            ),
        ),
        migrations.AddField(
            model_name="fundingpool",
            name="proposal_expiry_days",
            field=models.PositiveSmallIntegerField(
                blank=True,
                help_text="Empty: the PROPOSAL_EXPIRY_DAYS setting.",
                null=True,
                validators=[django.core.validators.MinValueValidator(1)],
                verbose_name="proposals expire after (days)",
            ),
        ),
        migrations.AddField(
            model_name="fundingpool",
            name="reserved",
            field=grants.money.MoneyField(
                decimal_places=2, default=0, editable=False, max_digits=18, verbose_name="reserved"
            ),
        ),
        migrations.AddField(
            model_name="programme",
            name="reserved",
            field=grants.money.MoneyField(
                decimal_places=2, default=0, editable=False, max_digits=18, verbose_name="reserved"
            ),
        ),
        migrations.AddField(
            model_name="tranche",
            name="confirmed_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="confirmed by",
            ),
        ),
        migrations.AddField(
            model_name="tranche",
            name="paid_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="paid by",
            ),
        ),
        migrations.AddField(
            model_name="tranche",
            name="released_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="released by",
            ),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="kind",
            field=models.CharField(
                choices=[
                    ("commit", "commit"),
                    ("decommit", "de-commit"),
                    ("disburse", "disburse"),
                    ("recover", "recover"),
                    ("reserve", "reserve"),
                    ("release", "release"),
                ],
                max_length=10,
                verbose_name="kind",
            ),
        ),
        migrations.AddConstraint(
            model_name="fiscalyearallotment",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("reserved__gte", 0),
                    (
                        "amount__gte",
                        django.db.models.expressions.CombinedExpression(
                            models.F("committed"), "+", models.F("reserved")
                        ),
                    ),
                ),
                name="allotment_reserved_within_amount",
            ),
        ),
        migrations.AddConstraint(
            model_name="fundingpool",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("reserved__gte", 0),
                    (
                        "cap__gte",
                        django.db.models.expressions.CombinedExpression(
                            models.F("committed"), "+", models.F("reserved")
                        ),
                    ),
                ),
                name="pool_reserved_within_cap",
            ),
        ),
        migrations.AddConstraint(
            model_name="fundingpool",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("approval_threshold__isnull", True), ("approval_threshold__gt", 0), _connector="OR"
                ),
                name="pool_approval_threshold_positive",
            ),
        ),
        migrations.AddConstraint(
            model_name="fundingpool",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("payment_threshold__isnull", True), ("payment_threshold__gt", 0), _connector="OR"
                ),
                name="pool_payment_threshold_positive",
            ),
        ),
        migrations.AddConstraint(
            model_name="programme",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("reserved__gte", 0),
                    (
                        "total_budget__gte",
                        django.db.models.expressions.CombinedExpression(
                            models.F("committed"), "+", models.F("reserved")
                        ),
                    ),
                ),
                name="programme_reserved_within_budget",
            ),
        ),
        migrations.AddField(
            model_name="proposal",
            name="application",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="proposals",
                to="grants.application",
                verbose_name="application",
            ),
        ),
        migrations.AddField(
            model_name="proposal",
            name="award",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="proposals",
                to="grants.award",
                verbose_name="award",
            ),
        ),
        migrations.AddField(
            model_name="proposal",
            name="decided_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="decided by",
            ),
        ),
        migrations.AddField(
            model_name="proposal",
            name="institution",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="proposals",
                to="grants.institution",
                verbose_name="institution",
            ),
        ),
        migrations.AddField(
            model_name="proposal",
            name="pool",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="proposals",
                to="grants.fundingpool",
                verbose_name="funding pool",
            ),
        ),
        migrations.AddField(
            model_name="proposal",
            name="proposed_by",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="proposed by",
            ),
        ),
        migrations.AddField(
            model_name="proposal",
            name="tranche",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="proposals",
                to="grants.tranche",
                verbose_name="tranche",
            ),
        ),
        migrations.AddField(
            model_name="ledgerentry",
            name="proposal",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="ledger_entries",
                to="grants.proposal",
            ),
        ),
        migrations.AddIndex(
            model_name="proposal",
            index=models.Index(fields=["status", "expires_at"], name="proposal_status_expiry_idx"),
        ),
        migrations.AddConstraint(
            model_name="proposal",
            constraint=models.CheckConstraint(
                condition=models.Q(("amount__gt", 0)), name="proposal_amount_positive"
            ),
        ),
        migrations.AddConstraint(
            model_name="proposal",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("kind", "approval"), ("application__isnull", False)),
                    models.Q(("kind", "amendment"), ("award__isnull", False)),
                    models.Q(("kind", "payment"), ("tranche__isnull", False)),
                    _connector="OR",
                ),
                name="proposal_has_its_object",
            ),
        ),
        migrations.AddConstraint(
            model_name="proposal",
            constraint=models.UniqueConstraint(
                condition=models.Q(("kind", "approval"), ("status", "pending")),
                fields=("application",),
                name="proposal_one_pending_per_application",
            ),
        ),
        migrations.AddConstraint(
            model_name="proposal",
            constraint=models.UniqueConstraint(
                condition=models.Q(("kind", "amendment"), ("status", "pending")),
                fields=("award",),
                name="proposal_one_pending_per_award",
            ),
        ),
        migrations.AddConstraint(
            model_name="proposal",
            constraint=models.UniqueConstraint(
                condition=models.Q(("kind", "payment"), ("status", "pending")),
                fields=("tranche",),
                name="proposal_one_pending_per_tranche",
            ),
        ),
        migrations.RunPython(grant, ungrant),
    ]
