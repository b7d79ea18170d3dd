"""The 360Giving package, validated offline against the official schemas copied into grants/schemas/."""

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from stdnum.cn import uscc

from cities.data import AGENCY_CREDIT_CODES
from cities.models import City
from tests.api.conftest import client_for

SCHEMAS = Path(__file__).resolve().parents[2] / "grants" / "schemas"


@pytest.fixture(scope="module")
def validator():
    grant = json.loads((SCHEMAS / "360-giving-schema.json").read_text())
    package = json.loads((SCHEMAS / "360-giving-package-schema.json").read_text())
    grant_resource = DRAFT202012.create_resource(grant)
    ref = package["properties"]["grants"]["items"]["$ref"]
    # The package refers to the grant schema by URL: both that URL and the schema's own $id resolve locally.
    registry = Registry().with_resources([(ref, grant_resource), (grant["$id"], grant_resource)])
    # jsonschema skips a format it has no checker for, silently; the schemas use these two.
    assert {"date-time", "uri"} <= set(Draft202012Validator.FORMAT_CHECKER.checkers)
    return Draft202012Validator(
        package, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def test_package_is_valid_and_carries_ids_recipients_and_transactions(api, world, erin, validator, settings):
    settings.GRANTS_360G_PREFIX = "cn-test"
    response = api(erin).get("/api/v1/reports/360giving/")
    assert response.status_code == 200
    package = response.json()
    errors = sorted(validator.iter_errors(package), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    grant = next(g for g in package["grants"] if g["id"] == f"360G-cn-test-{world.award.reference}")
    assert grant["recipientOrganization"][0]["id"] == f"CN-USCI-{world.institution.credit_code}"
    assert grant["currency"] == "CNY" and grant["amountAwarded"] == 3000000
    assert grant["plannedDates"][0] == {"startDate": "2024-06-01", "endDate": "2027-05-31", "duration": 36}
    assert grant["fundingOrganization"][0]["name"] == world.sh_pool.programme.city.agency_en
    (paid,) = grant["disbursementTransaction"]
    assert paid["value"] == 1000000 and paid["transactionDate"] == world.paid.paid_on.isoformat()


def test_an_invalid_package_is_caught_by_the_validator(api, world, erin, validator):
    """The validation is real: a plain-date award date passes, a broken one does not."""
    package = api(erin).get("/api/v1/reports/360giving/").json()
    package["grants"][0]["awardDate"] = "28/11/2026"
    assert list(validator.iter_errors(package))


def test_package_is_scoped_and_filtered(api, world, bob, alice):
    hz = api(bob).get("/api/v1/reports/360giving/").json()
    assert [g["id"].rsplit("-", 4)[-4] for g in hz["grants"]] == ["HZ"]
    none = api(alice).get("/api/v1/reports/360giving/?status=terminated")
    assert none.status_code == 404 and none.json()["code"] == "no_awards"


def problems(validator, package) -> list[str]:
    errors = sorted(validator.iter_errors(package), key=lambda e: list(e.path))
    return [f"{list(e.path)}: {e.message}" for e in errors]


SH_AGENCY = AGENCY_CREDIT_CODES["SH"]


def test_the_funder_is_the_agency_by_its_credit_code(api, world, erin, validator):
    """Issue 11, item 10: CN-USCI-<code>, the identifier org-id.guide lists for China, on the grant and as the
    provider of every disbursement."""
    City.objects.filter(code="SH").update(agency_credit_code=SH_AGENCY)
    package = api(erin).get("/api/v1/reports/360giving/").json()
    assert problems(validator, package) == []
    grant = next(g for g in package["grants"] if g["id"].endswith(world.award.reference))
    assert grant["fundingOrganization"][0]["id"] == f"CN-USCI-{SH_AGENCY}"
    assert {t["provider"] for t in grant["disbursementTransaction"]} == {f"CN-USCI-{SH_AGENCY}"}


def test_an_agency_without_a_recorded_code_falls_back_to_the_publishers_own_id(
    api, world, erin, validator, settings
):
    settings.GRANTS_360G_PREFIX = "cn-test"
    City.objects.filter(code="SH").update(agency_credit_code=SH_AGENCY)
    package = api(erin).get("/api/v1/reports/360giving/").json()
    assert problems(validator, package) == []
    funders = {g["id"].split("-")[3]: g["fundingOrganization"][0]["id"] for g in package["grants"]}
    assert funders == {"SH": f"CN-USCI-{SH_AGENCY}", "HZ": "360G-cn-test-HZ"}


def test_the_agency_code_is_validated_like_an_institutions(admin, shanghai):
    client = Client()
    client.force_login(admin)
    url = f"/admin/cities/city/{shanghai.pk}/change/"
    form = {
        "code": "SH",
        "name_en": shanghai.name_en,
        "name_zh": shanghai.name_zh,
        "agency_en": shanghai.agency_en,
        "agency_zh": shanghai.agency_zh,
        "timezone": shanghai.timezone,
    }
    wrong_check = SH_AGENCY[:-1] + ("0" if SH_AGENCY[-1] != "0" else "1")
    response = client.post(url, {**form, "agency_credit_code": wrong_check})
    assert response.status_code == 200
    assert "is not a valid unified social credit code" in response.content.decode()
    assert City.objects.get(pk=shanghai.pk).agency_credit_code == ""
    assert client.post(url, {**form, "agency_credit_code": SH_AGENCY.lower()}).status_code == 302
    assert City.objects.get(pk=shanghai.pk).agency_credit_code == SH_AGENCY
    assert SH_AGENCY in client.get("/admin/cities/city/").content.decode()


def test_the_demos_package_validates_with_zero_problems(db, validator, capsys):
    """Every award of the demo, in every city and state, against the official 1.4.3 schemas with their formats."""
    call_command("load_demo")
    assert {c.code: c.agency_credit_code for c in City.objects.all()} == AGENCY_CREDIT_CODES
    assert all(uscc.is_valid(code) for code in AGENCY_CREDIT_CODES.values())
    package = client_for(User.objects.get(username="auditor")).get("/api/v1/reports/360giving/").json()
    assert len(package["grants"]) >= 4
    assert problems(validator, package) == []
    assert {g["fundingOrganization"][0]["id"] for g in package["grants"]} <= {
        f"CN-USCI-{code}" for code in AGENCY_CREDIT_CODES.values()
    }
    assert all(g["recipientOrganization"][0]["id"].startswith("CN-USCI-") for g in package["grants"])
