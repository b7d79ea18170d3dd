"""Budget alerts are raised by the tracking job; officers acknowledge them."""

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from grants import audit
from grants.models import BudgetAlert
from grants.roles import Role, require


def acknowledge_alert(*, alert: BudgetAlert, actor: User) -> BudgetAlert:
    """A programme or finance officer of the pool's city acknowledges the alert. Acknowledging twice keeps the
    first acknowledgement."""
    with transaction.atomic():
        alert = (
            BudgetAlert.objects.select_for_update(of=("self",))
            .select_related("pool__programme")
            .get(pk=alert.pk)
        )
        city_id = alert.pool.programme.city_id
        require(actor, (Role.PROGRAMME_OFFICER, Role.FINANCE_OFFICER), city_id)
        if alert.acknowledged_at is None:
            alert.acknowledged_by = actor
            alert.acknowledged_at = timezone.now()
            alert.save(update_fields=["acknowledged_by", "acknowledged_at"])
            audit.record(
                actor=actor,
                action="alert.acknowledge",
                obj=alert,
                city_id=city_id,
                after={"kind": alert.kind, "subject": alert.subject},
            )
    return alert
