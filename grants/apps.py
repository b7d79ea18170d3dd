from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GrantsConfig(AppConfig):
    name = "grants"
    verbose_name = _("Grants")

    def ready(self) -> None:
        # The task module tells the services how to queue their jobs after a commit
        # (grants/services/after_commit.py), so it is loaded in every process, not only in the worker.
        from grants import tasks  # noqa: F401
        from grants.rights_audit import connect
        from grants.second_factor import required_in_production  # noqa: F401  (its deploy check registers)

        # Rights changed through the ORM (the admin's user and scope pages, a shell) are audit events.
        connect()
