from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("grants", "0012_agreements_reporting")]

    operations: list[migrations.operations.base.Operation] = []
