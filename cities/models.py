from django.conf import settings
from django.db import models
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from grants.validators import validate_credit_code


class City(models.Model):
    code = models.CharField(_("code"), max_length=4, unique=True, help_text=_("Short code, e.g. SH, HZ."))
    name_en = models.CharField(_("name (English)"), max_length=100)
    name_zh = models.CharField(_("name (Chinese)"), max_length=100)
    agency_en = models.CharField(_("administering agency (English)"), max_length=200)
    agency_zh = models.CharField(_("administering agency (Chinese)"), max_length=200)
    # Published as the funder's identifier in the 360Giving package: CN-USCI-<code>, the scheme org-id.guide lists
    # for China. Blank until recorded; db_default keeps raw inserts (the benchmark's COPY) working without it.
    agency_credit_code = models.CharField(
        _("administering agency's unified social credit code"),
        max_length=18,
        blank=True,
        default="",
        db_default="",
        validators=[validate_credit_code],
        help_text=_("18 characters. The 360Giving package names the funder CN-USCI-<code>."),
    )
    timezone = models.CharField(_("time zone"), max_length=64, default="Asia/Shanghai")

    class Meta:
        ordering = ["code"]
        verbose_name = _("city")
        verbose_name_plural = _("cities")

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def name(self) -> str:
        return self.name_zh if (get_language() or "").startswith("zh") else self.name_en


class StaffScope(models.Model):
    """Which cities a member of city staff (officer, reviewer, auditor) may see and act in.

    Roles themselves are Django groups; this only says where. `all_cities` is for auditors of the whole service.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_scope", verbose_name=_("user")
    )
    cities = models.ManyToManyField(City, blank=True, related_name="staff", verbose_name=_("cities"))
    all_cities = models.BooleanField(_("all cities"), default=False)

    class Meta:
        verbose_name = _("staff scope")
        verbose_name_plural = _("staff scopes")

    def __str__(self) -> str:
        return f"scope of {self.user}"
