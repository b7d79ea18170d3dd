from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("grants", "0013_portal_ux")]

    operations: list[migrations.operations.base.Operation] = []
