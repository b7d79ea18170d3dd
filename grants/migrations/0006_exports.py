"""Background exports wired end to end: attempts, the sweep's time, retention, and the expired state."""

import django.utils.timezone
from django.db import migrations, models
from django.db.models.functions import Coalesce, Now


def expire_old_files_at_once(apps, schema_editor):
    # Files written before retention existed get no grace: the next sweep deletes them (a done job must carry
    # its expiry, see export_done_expires).
    ExportJob = apps.get_model("grants", "ExportJob")
    ExportJob.objects.filter(status="done", expires_at__isnull=True).update(
        expires_at=Coalesce("finished_at", Now())
    )


class Migration(migrations.Migration):
    dependencies = [
        ("grants", "0005_outbox"),
    ]

    operations = [
        migrations.AddField(
            model_name="exportjob",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="exportjob",
            name="expires_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.AddField(
            model_name="exportjob",
            name="started_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.AddField(
            model_name="exportjob",
            name="sweep_after",
            field=models.DateTimeField(default=django.utils.timezone.now),
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
            ),
        ),
        migrations.RunPython(expire_old_files_at_once, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="exportjob",
            index=models.Index(fields=["status", "sweep_after"], name="export_sweep_idx"),
        ),
        migrations.AddIndex(
            model_name="exportjob",
            index=models.Index(fields=["status", "expires_at"], name="export_expiry_idx"),
        ),
        migrations.AddConstraint(
            model_name="exportjob",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["pending", "running", "done", "failed", "expired"])),
                name="export_status_known",
            ),
        ),
        migrations.AddConstraint(
            model_name="exportjob",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "done"), _negated=True),
                    ("expires_at__isnull", False),
                    _connector="OR",
                ),
                name="export_done_expires",
            ),
        ),
    ]
