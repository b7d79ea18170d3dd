from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("grants", "0010_controls")]

    operations: list[migrations.operations.base.Operation] = []
