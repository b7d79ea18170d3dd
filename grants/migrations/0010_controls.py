"""Controls (issue #14): duplicate-funding flags, reviewers' conflict-of-interest declarations; pg_trgm where
PostgreSQL lets us create it (grants/services/duplicates.py falls back to token overlap without it)."""

from typing import Any

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import DatabaseError, migrations, models, transaction


def create_pg_trgm(apps: Any, schema_editor: Any) -> None:
    """Only on PostgreSQL, and only if this role may: a managed database may refuse CREATE EXTENSION, and the
    duplicate check then uses its fallback instead of failing the migration."""
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError:
        pass


def declare_past_reviews(apps: Any, schema_editor: Any) -> None:
    """Reviews submitted before declarations existed were made by reviewers who passed the one conflict rule of
    the time (not a member of the applicant): they count as declared without conflict, with no declaration time
    (declared_at stays empty, which tells them apart from a declaration made in the form)."""
    Review = apps.get_model("grants", "Review")
    Review.objects.filter(submitted_at__isnull=False).update(declaration="no_conflict")


class Migration(migrations.Migration):
    dependencies = [
        ("grants", "0009_fiscal_years"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations: list[migrations.operations.base.Operation] = [
        migrations.RunPython(create_pg_trgm, migrations.RunPython.noop, elidable=True),
        migrations.AddField(
            model_name="review",
            name="declaration",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "not declared yet"),
                    ("no_conflict", "no conflict of interest"),
                    ("recused", "recused"),
                ],
                default="",
                max_length=12,
                verbose_name="conflict of interest",
            ),
        ),
        migrations.AddField(
            model_name="review",
            name="declared_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="declared at"),
        ),
        migrations.AddField(
            model_name="review",
            name="recusal_reason",
            field=models.TextField(blank=True, verbose_name="reason for recusal"),
        ),
        migrations.RunPython(declare_past_reviews, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="review",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("submitted_at__isnull", True), ("declaration", "no_conflict"), _connector="OR"
                ),
                name="submitted_review_declared",
            ),
        ),
        migrations.AddConstraint(
            model_name="review",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("declaration", "recused"), _negated=True),
                    models.Q(("recusal_reason", ""), _negated=True),
                    _connector="OR",
                ),
                name="recusal_has_reason",
            ),
        ),
        migrations.CreateModel(
            name="DuplicateFlag",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "similarity",
                    models.DecimalField(decimal_places=3, max_digits=4, verbose_name="similarity"),
                ),
                (
                    "found_on",
                    models.CharField(
                        choices=[("submission", "on submission"), ("approval", "at approval")],
                        max_length=10,
                        verbose_name="found",
                    ),
                ),
                (
                    "found_at",
                    models.DateTimeField(default=django.utils.timezone.now, verbose_name="found at"),
                ),
                (
                    "acknowledged_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="acknowledged at"),
                ),
                ("reason", models.TextField(blank=True, verbose_name="reason for going ahead")),
                (
                    "acknowledged_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="acknowledged by",
                    ),
                ),
                (
                    "application",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="duplicate_flags",
                        to="grants.application",
                        verbose_name="application",
                    ),
                ),
                (
                    "other",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="grants.application",
                        verbose_name="similar application",
                    ),
                ),
            ],
            options={
                "verbose_name": "duplicate funding flag",
                "verbose_name_plural": "duplicate funding flags",
                "ordering": ["found_at", "id"],
                "constraints": [
                    models.UniqueConstraint(fields=("application", "other"), name="duplicate_flag_once"),
                    models.CheckConstraint(
                        condition=models.Q(("application", models.F("other")), _negated=True),
                        name="duplicate_flag_not_self",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("acknowledged_at__isnull", True),
                                ("acknowledged_by__isnull", True),
                                ("reason", ""),
                            ),
                            models.Q(
                                ("acknowledged_at__isnull", False),
                                ("acknowledged_by__isnull", False),
                                models.Q(("reason", ""), _negated=True),
                            ),
                            _connector="OR",
                        ),
                        name="duplicate_flag_acknowledged_with_reason",
                    ),
                ],
            },
        ),
    ]
