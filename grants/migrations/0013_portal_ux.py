# Labels only (issue #16.7): the fields the admin shows get translatable verbose names. No column changes.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import grants.money


class Migration(migrations.Migration):
    dependencies = [("grants", "0012_agreements_reporting")]

    operations = [
        migrations.AlterField(
            model_name="awardagreement",
            name="award",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="agreement",
                to="grants.award",
                verbose_name="award",
            ),
        ),
        migrations.AlterField(
            model_name="apitoken",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, verbose_name="created at"),
        ),
        migrations.AlterField(
            model_name="apitoken",
            name="last_used_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="last used at"),
        ),
        migrations.AlterField(
            model_name="apitoken",
            name="prefix",
            field=models.CharField(db_index=True, max_length=12, verbose_name="prefix"),
        ),
        migrations.AlterField(
            model_name="apitoken",
            name="revoked_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="revoked at"),
        ),
        migrations.AlterField(
            model_name="apitoken",
            name="user",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="api_tokens",
                to=settings.AUTH_USER_MODEL,
                verbose_name="user",
            ),
        ),
        migrations.AlterField(
            model_name="application",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, verbose_name="created at"),
        ),
        migrations.AlterField(
            model_name="application",
            name="created_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="created by",
            ),
        ),
        migrations.AlterField(
            model_name="application",
            name="decided_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="decided at"),
        ),
        migrations.AlterField(
            model_name="application",
            name="submitted_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="submitted at"),
        ),
        migrations.AlterField(
            model_name="application",
            name="updated_at",
            field=models.DateTimeField(auto_now=True, verbose_name="updated at"),
        ),
        migrations.AlterField(
            model_name="attachment",
            name="application",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attachments",
                to="grants.application",
                verbose_name="application",
            ),
        ),
        migrations.AlterField(
            model_name="attachment",
            name="uploaded_at",
            field=models.DateTimeField(auto_now_add=True, verbose_name="uploaded at"),
        ),
        migrations.AlterField(
            model_name="attachment",
            name="uploaded_by",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="uploaded by",
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="actor",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="actor",
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="after",
            field=models.JSONField(null=True, verbose_name="after"),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="before",
            field=models.JSONField(null=True, verbose_name="before"),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="city",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="cities.city",
                verbose_name="city",
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name="time"),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="remote_addr",
            field=models.GenericIPAddressField(null=True, verbose_name="address"),
        ),
        migrations.AlterField(
            model_name="award",
            name="amendments",
            field=models.PositiveSmallIntegerField(default=0, editable=False, verbose_name="amendments"),
        ),
        migrations.AlterField(
            model_name="award",
            name="application",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="award",
                to="grants.application",
                verbose_name="application",
            ),
        ),
        migrations.AlterField(
            model_name="award",
            name="approved_by",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="approved by",
            ),
        ),
        migrations.AlterField(
            model_name="award",
            name="institution",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="awards",
                to="grants.institution",
                verbose_name="institution",
            ),
        ),
        migrations.AlterField(
            model_name="award",
            name="pool",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="awards",
                to="grants.fundingpool",
                verbose_name="funding pool",
            ),
        ),
        migrations.AlterField(
            model_name="budgetalert",
            name="acknowledged_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="acknowledged at"),
        ),
        migrations.AlterField(
            model_name="budgetalert",
            name="acknowledged_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="acknowledged by",
            ),
        ),
        migrations.AlterField(
            model_name="budgetalert",
            name="cleared_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="cleared at"),
        ),
        migrations.AlterField(
            model_name="budgetalert",
            name="figures",
            field=models.JSONField(default=dict, verbose_name="figures"),
        ),
        migrations.AlterField(
            model_name="budgetalert",
            name="pool",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="alerts",
                to="grants.fundingpool",
                verbose_name="funding pool",
            ),
        ),
        migrations.AlterField(
            model_name="budgetalert",
            name="raised_at",
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name="raised at"),
        ),
        migrations.AlterField(
            model_name="budgetalert",
            name="subject",
            field=models.IntegerField(default=0, verbose_name="subject"),
        ),
        migrations.AlterField(
            model_name="exportjob",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=0, verbose_name="attempts"),
        ),
        migrations.AlterField(
            model_name="exportjob",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name="created at"),
        ),
        migrations.AlterField(
            model_name="exportjob",
            name="error",
            field=models.CharField(blank=True, max_length=500, verbose_name="error"),
        ),
        migrations.AlterField(
            model_name="exportjob",
            name="expires_at",
            field=models.DateTimeField(null=True, verbose_name="expires at"),
        ),
        migrations.AlterField(
            model_name="exportjob",
            name="file",
            field=models.FileField(blank=True, upload_to="exports/", verbose_name="file"),
        ),
        migrations.AlterField(
            model_name="exportjob",
            name="finished_at",
            field=models.DateTimeField(null=True, verbose_name="finished at"),
        ),
        migrations.AlterField(
            model_name="exportjob",
            name="format",
            field=models.CharField(max_length=10, verbose_name="format"),
        ),
        migrations.AlterField(
            model_name="exportjob",
            name="params",
            field=models.JSONField(default=dict, verbose_name="parameters"),
        ),
        migrations.AlterField(
            model_name="exportjob",
            name="report",
            field=models.CharField(max_length=40, verbose_name="report"),
        ),
        migrations.AlterField(
            model_name="exportjob",
            name="requested_by",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="export_jobs",
                to=settings.AUTH_USER_MODEL,
                verbose_name="requested by",
            ),
        ),
        migrations.AlterField(
            model_name="exportjob",
            name="row_count",
            field=models.PositiveIntegerField(null=True, verbose_name="rows"),
        ),
        migrations.AlterField(
            model_name="exportjob",
            name="started_at",
            field=models.DateTimeField(null=True, verbose_name="started at"),
        ),
        migrations.AlterField(
            model_name="exportjob",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "pending"),
                    ("running", "running"),
                    ("done", "done"),
                    ("failed", "failed"),
                    ("expired", "expired"),
                ],
                default="pending",
                max_length=10,
                verbose_name="status",
            ),
        ),
        migrations.AlterField(
            model_name="fiscalyearallotment",
            name="pool",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="allotments",
                to="grants.fundingpool",
                verbose_name="funding pool",
            ),
        ),
        migrations.AlterField(
            model_name="fundingpool",
            name="tracked_at",
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name="tracked at"),
        ),
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name="created at"),
        ),
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="key",
            field=models.CharField(max_length=200, verbose_name="key"),
        ),
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="method",
            field=models.CharField(max_length=10, verbose_name="method"),
        ),
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="path",
            field=models.CharField(max_length=300, verbose_name="path"),
        ),
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="status_code",
            field=models.PositiveSmallIntegerField(null=True, verbose_name="status code"),
        ),
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="user",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="user",
            ),
        ),
        migrations.AlterField(
            model_name="institution",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, verbose_name="created at"),
        ),
        migrations.AlterField(
            model_name="institutionmember",
            name="institution",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="memberships",
                to="grants.institution",
                verbose_name="institution",
            ),
        ),
        migrations.AlterField(
            model_name="institutionmember",
            name="joined_at",
            field=models.DateTimeField(auto_now_add=True, verbose_name="joined at"),
        ),
        migrations.AlterField(
            model_name="institutionmember",
            name="user",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="institution_memberships",
                to=settings.AUTH_USER_MODEL,
                verbose_name="user",
            ),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="actor",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="actor",
            ),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="award",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="ledger_entries",
                to="grants.award",
                verbose_name="award",
            ),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="pool",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="ledger_entries",
                to="grants.fundingpool",
                verbose_name="funding pool",
            ),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="tranche",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="ledger_entries",
                to="grants.tranche",
                verbose_name="tranche",
            ),
        ),
        migrations.AlterField(
            model_name="milestonereport",
            name="decided_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="decided at"),
        ),
        migrations.AlterField(
            model_name="milestonereport",
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
        migrations.AlterField(
            model_name="milestonereport",
            name="submitted_at",
            field=models.DateTimeField(auto_now_add=True, verbose_name="submitted at"),
        ),
        migrations.AlterField(
            model_name="milestonereport",
            name="submitted_by",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="submitted by",
            ),
        ),
        migrations.AlterField(
            model_name="milestonereport",
            name="tranche",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="milestone_reports",
                to="grants.tranche",
                verbose_name="tranche",
            ),
        ),
        migrations.AlterField(
            model_name="recovery",
            name="award",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="recoveries",
                to="grants.award",
                verbose_name="award",
            ),
        ),
        migrations.AlterField(
            model_name="recovery",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, verbose_name="created at"),
        ),
        migrations.AlterField(
            model_name="recovery",
            name="created_by",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="created by",
            ),
        ),
        migrations.AlterField(
            model_name="recovery",
            name="receipts",
            field=models.PositiveSmallIntegerField(default=0, editable=False, verbose_name="receipts"),
        ),
        migrations.AlterField(
            model_name="review",
            name="application",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="reviews",
                to="grants.application",
                verbose_name="application",
            ),
        ),
        migrations.AlterField(
            model_name="review",
            name="assigned_at",
            field=models.DateTimeField(auto_now_add=True, verbose_name="assigned at"),
        ),
        migrations.AlterField(
            model_name="review",
            name="assigned_by",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="assigned by",
            ),
        ),
        migrations.AlterField(
            model_name="review",
            name="reviewer",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="reviews",
                to=settings.AUTH_USER_MODEL,
                verbose_name="reviewer",
            ),
        ),
        migrations.AlterField(
            model_name="tranche",
            name="award",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="tranches",
                to="grants.award",
                verbose_name="award",
            ),
        ),
        migrations.AlterField(
            model_name="usagesnapshot",
            name="available",
            field=grants.money.MoneyField(decimal_places=2, max_digits=18, verbose_name="available"),
        ),
        migrations.AlterField(
            model_name="usagesnapshot",
            name="cap",
            field=grants.money.MoneyField(decimal_places=2, max_digits=18, verbose_name="cap"),
        ),
        migrations.AlterField(
            model_name="usagesnapshot",
            name="committed",
            field=grants.money.MoneyField(decimal_places=2, max_digits=18, verbose_name="committed"),
        ),
        migrations.AlterField(
            model_name="usagesnapshot",
            name="disbursed",
            field=grants.money.MoneyField(decimal_places=2, max_digits=18, verbose_name="disbursed"),
        ),
        migrations.AlterField(
            model_name="usagesnapshot",
            name="ledger_committed",
            field=grants.money.MoneyField(
                decimal_places=2, max_digits=18, verbose_name="committed by the ledger"
            ),
        ),
        migrations.AlterField(
            model_name="usagesnapshot",
            name="ledger_disbursed",
            field=grants.money.MoneyField(
                decimal_places=2, max_digits=18, verbose_name="disbursed by the ledger"
            ),
        ),
        migrations.AlterField(
            model_name="usagesnapshot",
            name="pipeline",
            field=grants.money.MoneyField(
                decimal_places=2, default=0, max_digits=18, verbose_name="pipeline"
            ),
        ),
        migrations.AlterField(
            model_name="usagesnapshot",
            name="pool",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="snapshots",
                to="grants.fundingpool",
                verbose_name="funding pool",
            ),
        ),
        migrations.AlterField(
            model_name="usagesnapshot",
            name="taken_at",
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name="taken at"),
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=0, verbose_name="attempts"),
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name="created at"),
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="delivered_at",
            field=models.DateTimeField(null=True, verbose_name="delivered at"),
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="endpoint",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="deliveries",
                to="grants.webhookendpoint",
                verbose_name="endpoint",
            ),
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="event_id",
            field=models.CharField(max_length=100, verbose_name="event id"),
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="last_error",
            field=models.CharField(blank=True, max_length=500, verbose_name="last error"),
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="last_status_code",
            field=models.PositiveSmallIntegerField(null=True, verbose_name="last status code"),
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="next_attempt_at",
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name="next attempt at"),
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="payload",
            field=models.JSONField(verbose_name="payload"),
        ),
        migrations.AlterField(
            model_name="webhookendpoint",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, verbose_name="created at"),
        ),
        migrations.AlterField(
            model_name="webhookendpoint",
            name="created_by",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="created by",
            ),
        ),
    ]
