"""Budget administration in the Django admin (§7). Registering the model admins is importing their modules."""

from grants.admin import (
    applications,
    awards,
    notices,
    programmes,
    proposals,
    records,
    reporting,
    reviews,
    voucher_claims,
    vouchers,
)

__all__ = [
    "applications",
    "awards",
    "notices",
    "programmes",
    "proposals",
    "records",
    "reporting",
    "reviews",
    "voucher_claims",
    "vouchers",
]
