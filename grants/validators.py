from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from stdnum.cn import uscc
from stdnum.exceptions import ValidationError as StdnumError


def validate_credit_code(value: str) -> None:
    """A Unified Social Credit Code (GB 32100-2015) with a correct check character."""
    try:
        uscc.validate(value)
    except StdnumError:
        raise ValidationError(
            _(
                "%(value)s is not a valid unified social credit code (18 characters with a correct check character)."
            ),
            code="invalid_credit_code",
            params={"value": value},
        ) from None
