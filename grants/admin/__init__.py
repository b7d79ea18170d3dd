"""Budget administration in the Django admin (§7). Registering the model admins is importing their modules."""

from grants.admin import applications, awards, programmes, records

__all__ = ["applications", "awards", "programmes", "records"]
