"""The 360Giving package, validated offline against the official schemas copied into grants/schemas/."""

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SCHEMAS = Path(__file__).resolve().parents[2] / "grants" / "schemas"


@pytest.fixture(scope="module")
def validator():
    grant = json.loads((SCHEMAS / "360-giving-schema.json").read_text())
    package = json.loads((SCHEMAS / "360-giving-package-schema.json").read_text())
    grant_resource = DRAFT202012.create_resource(grant)
    ref = package["properties"]["grants"]["items"]["$ref"]
    # The package refers to the grant schema by URL: both that URL and the schema's own $id resolve locally.
    registry = Registry().with_resources([(ref, grant_resource), (grant["$id"], grant_resource)])
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
