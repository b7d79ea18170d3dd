"""Notices (issue #16 item 1): user profiles (language, e-mail choices), notices, their e-mail outbox, reminders."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("grants", "0010_controls"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="UserProfile",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "language",
                    models.CharField(
                        choices=[("en", "English"), ("zh-hans", "Simplified Chinese")],
                        default="en",
                        max_length=10,
                        verbose_name="language",
                    ),
                ),
                (
                    "email_muted",
                    models.JSONField(blank=True, default=list, verbose_name="notices not sent by e-mail"),
                ),
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="profile",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"verbose_name": "user profile", "verbose_name_plural": "user profiles"},
        ),
        migrations.CreateModel(
            name="Notification",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("event", models.CharField(max_length=40, verbose_name="event")),
                ("object_type", models.CharField(max_length=40)),
                ("object_id", models.BigIntegerField()),
                ("context", models.JSONField(default=dict)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, verbose_name="time")),
                ("read_at", models.DateTimeField(blank=True, null=True, verbose_name="read at")),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="notifications",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "notice",
                "verbose_name_plural": "notices",
                "ordering": ["-id"],
                "indexes": [
                    models.Index(fields=["user", "-id"], name="notice_user_idx"),
                    models.Index(
                        condition=models.Q(("read_at__isnull", True)),
                        fields=["user"],
                        name="notice_unread_idx",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="NotificationEmail",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, verbose_name="written at"),
                ),
                (
                    "next_attempt_at",
                    models.DateTimeField(default=django.utils.timezone.now, verbose_name="next attempt at"),
                ),
                ("claimed_until", models.DateTimeField(blank=True, null=True)),
                ("attempts", models.PositiveSmallIntegerField(default=0, verbose_name="attempts")),
                ("last_error", models.CharField(blank=True, max_length=500, verbose_name="last error")),
                ("sent_at", models.DateTimeField(blank=True, null=True, verbose_name="sent at")),
                ("failed_at", models.DateTimeField(blank=True, null=True, verbose_name="given up at")),
                (
                    "notification",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="email",
                        to="grants.notification",
                        verbose_name="notice",
                    ),
                ),
            ],
            options={
                "verbose_name": "notice e-mail",
                "verbose_name_plural": "notice e-mails",
                "ordering": ["id"],
                "indexes": [
                    models.Index(
                        condition=models.Q(("failed_at__isnull", True), ("sent_at__isnull", True)),
                        fields=["next_attempt_at"],
                        name="notice_email_due_idx",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="Reminder",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("item_type", models.CharField(max_length=40)),
                ("item_id", models.BigIntegerField()),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("due_30", "due in 30 days"),
                            ("due_7", "due in 7 days"),
                            ("overdue", "overdue"),
                        ],
                        max_length=10,
                    ),
                ),
                ("sent_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "verbose_name": "reminder",
                "verbose_name_plural": "reminders",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("item_type", "item_id", "kind"), name="reminder_once_per_kind"
                    )
                ],
            },
        ),
    ]
