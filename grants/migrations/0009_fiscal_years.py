from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("grants", "0008_maker_checker")]

    operations: list[migrations.operations.base.Operation] = []
