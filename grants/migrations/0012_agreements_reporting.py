from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("grants", "0011_notifications")]

    operations: list[migrations.operations.base.Operation] = []
