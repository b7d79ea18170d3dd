"""Counters fed by Django's own signals, connected when a web process or a Celery worker imports this module.

Every channel (API, admin, portal, jobs) records its transitions through grants.audit.record, and every log-in
(portal, admin, the API's HTTP Basic) goes through django.contrib.auth.authenticate: listening there counts them
all without the services knowing about metrics.
"""

from typing import Any

from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from grants import login_policy, metrics
from grants.models import AuditEvent


@receiver(post_save, sender=AuditEvent, dispatch_uid="grants.metrics.transitions")
def count_transition(sender: type[AuditEvent], instance: AuditEvent, created: bool, **kwargs: Any) -> None:
    if created:
        action = instance.action
        # After COMMIT: an approval refused or rolled back later in its transaction is not an approval.
        transaction.on_commit(
            lambda: metrics.TRANSITIONS.labels(action=action).inc(), using=kwargs.get("using")
        )


@receiver(user_login_failed, dispatch_uid="grants.metrics.login_failed")
def count_failed_login(sender: Any, request: Any = None, **kwargs: Any) -> None:
    # Django sends the same signal when the login policy held the attempt back before checking the password.
    held_back = request is not None and login_policy.refusal_of(request) is not None
    metrics.count_refusal("login", code="held_back" if held_back else "invalid_credentials")
