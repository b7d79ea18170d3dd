from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("grants", "0009_fiscal_years")]

    operations: list[migrations.operations.base.Operation] = []
