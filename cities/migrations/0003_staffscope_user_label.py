# A label only (issue #16.7): the admin shows the user of a staff scope under a translated name.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("cities", "0002_agency_credit_code"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="staffscope",
            name="user",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="staff_scope",
                to=settings.AUTH_USER_MODEL,
                verbose_name="user",
            ),
        ),
    ]
