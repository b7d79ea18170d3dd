from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("grants", "0007_retention")]

    operations: list[migrations.operations.base.Operation] = []
