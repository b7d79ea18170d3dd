"""Application.anonymised_at: when the retention run replaced a closed application's free text
(grants.services.retention)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("grants", "0006_exports"),
    ]

    operations = [
        migrations.AddField(
            model_name="application",
            name="anonymised_at",
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name="anonymised at"),
        ),
    ]
