import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations, models

import grants.models

# The roles' permissions on the new models (as 0004 does for the first ones): every city role sees agreements,
# requirements and duties; programme officers configure the pools' report requirements and their forms.
# Agreements and duties change only through the services (admin operations, portal, API).
NEW_MODELS = ["awardagreement", "reportrequirement", "reportfield", "reportingduty", "reportattachment"]
GRANTS = {
    "programme_officer": [
        *(f"view_{m}" for m in NEW_MODELS),
        "add_reportrequirement",
        "change_reportrequirement",
        "add_reportfield",
        "change_reportfield",
        "delete_reportfield",
    ],
    "finance_officer": [f"view_{m}" for m in NEW_MODELS],
    "auditor": [f"view_{m}" for m in NEW_MODELS],
}


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
    Permission.objects.filter(content_type__app_label="grants", content_type__model__in=NEW_MODELS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("grants", "0011_notifications"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ReportingDuty",
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
                        choices=[("progress", "progress report"), ("financial", "financial report")],
                        max_length=10,
                        verbose_name="kind",
                    ),
                ),
                ("sequence", models.PositiveSmallIntegerField(verbose_name="sequence")),
                ("due_date", models.DateField(verbose_name="due date")),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("due", "due"),
                            ("submitted", "submitted"),
                            ("accepted", "accepted"),
                            ("returned", "returned for changes"),
                        ],
                        default="due",
                        max_length=10,
                        verbose_name="status",
                    ),
                ),
                ("answers", models.JSONField(blank=True, default=dict, verbose_name="answers")),
                ("submitted_at", models.DateTimeField(blank=True, null=True, verbose_name="submitted at")),
                ("decided_at", models.DateTimeField(blank=True, null=True, verbose_name="decided at")),
                ("comment", models.TextField(blank=True, verbose_name="officer's comment")),
                (
                    "award",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="reporting_duties",
                        to="grants.award",
                        verbose_name="award",
                    ),
                ),
                (
                    "decided_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="decided by",
                    ),
                ),
                (
                    "pool",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="reporting_duties",
                        to="grants.fundingpool",
                        verbose_name="funding pool",
                    ),
                ),
                (
                    "submitted_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="submitted by",
                    ),
                ),
                (
                    "tranche",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="reporting_duties",
                        to="grants.tranche",
                        verbose_name="tranche",
                    ),
                ),
            ],
            options={
                "verbose_name": "reporting duty",
                "verbose_name_plural": "reporting duties",
                "ordering": ["due_date", "id"],
            },
        ),
        migrations.CreateModel(
            name="ReportAttachment",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "file",
                    models.FileField(upload_to=grants.models.report_attachment_path, verbose_name="file"),
                ),
                ("original_name", models.CharField(max_length=255, verbose_name="file name")),
                ("content_type", models.CharField(max_length=100, verbose_name="content type")),
                ("size", models.PositiveBigIntegerField(verbose_name="size (bytes)")),
                ("uploaded_at", models.DateTimeField(auto_now_add=True)),
                (
                    "uploaded_by",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "duty",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attachments",
                        to="grants.reportingduty",
                    ),
                ),
            ],
            options={
                "verbose_name": "report attachment",
                "verbose_name_plural": "report attachments",
                "ordering": ["uploaded_at"],
            },
        ),
        migrations.CreateModel(
            name="ReportRequirement",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name_en", models.CharField(max_length=200, verbose_name="name (English)")),
                ("name_zh", models.CharField(blank=True, max_length=200, verbose_name="name (Chinese)")),
                (
                    "kind",
                    models.CharField(
                        choices=[("progress", "progress report"), ("financial", "financial report")],
                        max_length=10,
                        verbose_name="kind",
                    ),
                ),
                (
                    "every_months",
                    models.PositiveSmallIntegerField(
                        blank=True,
                        help_text="Due this many months after the award starts, and again every as many months. Empty: none.",
                        null=True,
                        validators=[
                            django.core.validators.MinValueValidator(1),
                            django.core.validators.MaxValueValidator(60),
                        ],
                        verbose_name="every (months)",
                    ),
                ),
                ("at_end", models.BooleanField(default=True, verbose_name="due at the end of the award")),
                (
                    "attachment_required",
                    models.BooleanField(default=False, verbose_name="needs an attachment"),
                ),
                (
                    "gates_milestones",
                    models.BooleanField(
                        default=False, verbose_name="counts as the milestone report of the next tranche"
                    ),
                ),
                (
                    "pool",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="report_requirements",
                        to="grants.fundingpool",
                        verbose_name="funding pool",
                    ),
                ),
            ],
            options={
                "verbose_name": "report requirement",
                "verbose_name_plural": "report requirements",
                "ordering": ["pool", "kind", "id"],
            },
        ),
        migrations.AddField(
            model_name="reportingduty",
            name="requirement",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="duties",
                to="grants.reportrequirement",
                verbose_name="report",
            ),
        ),
        migrations.CreateModel(
            name="ReportField",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "name",
                    models.SlugField(
                        help_text="Key of the answer, e.g. spent_to_date.", max_length=40, verbose_name="name"
                    ),
                ),
                ("label_en", models.CharField(max_length=200, verbose_name="label (English)")),
                ("label_zh", models.CharField(blank=True, max_length=200, verbose_name="label (Chinese)")),
                (
                    "type",
                    models.CharField(
                        choices=[
                            ("text", "text"),
                            ("number", "number"),
                            ("money", "amount of money"),
                            ("date", "date"),
                        ],
                        default="text",
                        max_length=10,
                        verbose_name="type",
                    ),
                ),
                ("required", models.BooleanField(default=True, verbose_name="required")),
                ("position", models.PositiveSmallIntegerField(default=0, verbose_name="position")),
                (
                    "requirement",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="fields",
                        to="grants.reportrequirement",
                    ),
                ),
            ],
            options={
                "verbose_name": "report field",
                "verbose_name_plural": "report fields",
                "ordering": ["requirement", "position", "id"],
            },
        ),
        migrations.CreateModel(
            name="AwardAgreement",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[("issued", "awaiting acceptance"), ("accepted", "accepted")],
                        default="issued",
                        max_length=10,
                        verbose_name="status",
                    ),
                ),
                ("terms", models.JSONField(editable=False, verbose_name="terms")),
                (
                    "terms_sha256",
                    models.CharField(editable=False, max_length=64, verbose_name="digest of the terms"),
                ),
                (
                    "issued_at",
                    models.DateTimeField(default=django.utils.timezone.now, verbose_name="issued at"),
                ),
                ("accepted_at", models.DateTimeField(blank=True, null=True, verbose_name="accepted at")),
                (
                    "accepted_from",
                    models.GenericIPAddressField(blank=True, null=True, verbose_name="accepted from"),
                ),
                (
                    "accepted_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="accepted by",
                    ),
                ),
                (
                    "award",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="agreement",
                        to="grants.award",
                    ),
                ),
            ],
            options={
                "verbose_name": "award agreement",
                "verbose_name_plural": "award agreements",
                "ordering": ["-issued_at"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("status", "accepted"), _negated=True),
                            models.Q(("accepted_by__isnull", False), ("accepted_at__isnull", False)),
                            _connector="OR",
                        ),
                        name="accepted_agreement_has_acceptance",
                    )
                ],
            },
        ),
        migrations.AddConstraint(
            model_name="reportrequirement",
            constraint=models.CheckConstraint(
                condition=models.Q(("every_months__isnull", False), ("at_end", True), _connector="OR"),
                name="requirement_has_a_due_date",
            ),
        ),
        migrations.AddIndex(
            model_name="reportingduty",
            index=models.Index(fields=["status", "due_date"], name="duty_status_due_idx"),
        ),
        migrations.AddConstraint(
            model_name="reportingduty",
            constraint=models.UniqueConstraint(
                fields=("award", "requirement", "sequence"), name="reporting_duty_once_per_award"
            ),
        ),
        migrations.AddConstraint(
            model_name="reportingduty",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("status", "due"),
                    models.Q(("submitted_by__isnull", False), ("submitted_at__isnull", False)),
                    _connector="OR",
                ),
                name="reported_duty_has_submission",
            ),
        ),
        migrations.AddConstraint(
            model_name="reportfield",
            constraint=models.UniqueConstraint(
                fields=("requirement", "name"), name="report_field_name_unique"
            ),
        ),
        migrations.RunPython(grant, ungrant),
    ]
