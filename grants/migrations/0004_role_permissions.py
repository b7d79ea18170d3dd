"""The roles' model permissions (§1). City scope is separate (cities.StaffScope); these say what each role may do.

Nobody gets delete on a financial record: the ledger, awards, tranches, recoveries, milestone reports, the audit
log, snapshots, alerts, applications, programmes and pools (the admin refuses those deletions even to a superuser).
ApiToken and IdempotencyRecord are for administrators only.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW_ALL = [
    ("cities", "city"),
    ("grants", "programme"),
    ("grants", "fundingpool"),
    ("grants", "fiscalyearallotment"),
    ("grants", "institution"),
    ("grants", "institutionmember"),
    ("grants", "application"),
    ("grants", "attachment"),
    ("grants", "review"),
    ("grants", "award"),
    ("grants", "tranche"),
    ("grants", "milestonereport"),
    ("grants", "recovery"),
    ("grants", "ledgerentry"),
    ("grants", "usagesnapshot"),
    ("grants", "budgetalert"),
    ("grants", "auditevent"),
    ("grants", "webhookendpoint"),
    ("grants", "webhookdelivery"),
    ("grants", "exportjob"),
]


def _perms(action, models):
    return [(app, f"{action}_{model}") for app, model in models]


GRANTS = {
    "programme_officer": [
        *_perms("view", VIEW_ALL),
        *_perms(
            "add",
            [("grants", "programme"), ("grants", "fundingpool"), ("grants", "fiscalyearallotment"),
             ("grants", "webhookendpoint")],
        ),
        *_perms(
            "change",
            [("grants", "programme"), ("grants", "fundingpool"), ("grants", "fiscalyearallotment"),
             ("grants", "institution"), ("grants", "application"), ("grants", "award"),
             ("grants", "milestonereport"), ("grants", "budgetalert"), ("grants", "webhookendpoint")],
        ),
        # Not a financial record: an endpoint that should no longer receive events can go.
        ("grants", "delete_webhookendpoint"),
    ],
    "finance_officer": [
        *_perms("view", VIEW_ALL),
        *_perms("add", [("grants", "recovery")]),
        *_perms("change", [("grants", "tranche"), ("grants", "recovery"), ("grants", "budgetalert")]),
    ],
    "reviewer": [
        *_perms("view", [("grants", "application"), ("grants", "attachment"), ("grants", "review")]),
        ("grants", "change_review"),
    ],
    "auditor": _perms("view", VIEW_ALL),
}


def forwards(apps, schema_editor):
    # Permissions are normally created after all migrations ran (post_migrate); create them now so this migration
    # can hand them out on a fresh database.
    for label in ("cities", "grants"):
        config = apps.get_app_config(label)
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, wanted in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=role)
        perms = []
        for app_label, codename in wanted:
            perms.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.add(*perms)


def backwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name__in=GRANTS):
        group.permissions.clear()


class Migration(migrations.Migration):
    dependencies = [
        ("grants", "0003_role_groups"),
        ("cities", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
