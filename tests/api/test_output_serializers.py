"""One representation per result: every view that answers a POST declares its output serializer once, and that one
declaration is both the response body and the OpenAPI response. The body is the resource as GET shows it, read
again in one query."""

import json
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.renderers import JSONRenderer

from grants.api import serializers as s
from grants.api import setup_views, views
from grants.api.export_views import ExportViewSet
from grants.api.urls import ACTIONS

ACTION_PATHS: list[tuple[str, Any]] = [
    (f"/api/v1/{resource}/{{id}}/{action}/", view)
    for resource, actions in ACTIONS.items()
    for action, view in actions.items()
]
CREATE_PATHS: list[tuple[str, Any]] = [
    ("/api/v1/institutions/", views.InstitutionViewSet),
    ("/api/v1/applications/", views.ApplicationViewSet),
    ("/api/v1/milestone-reports/", views.MilestoneReportViewSet),
    ("/api/v1/recoveries/", views.RecoveryViewSet),
    ("/api/v1/tokens/", views.TokenViewSet),
    ("/api/v1/exports/", ExportViewSet),
    ("/api/v1/programmes/", setup_views.ProgrammeSetupViewSet),
    ("/api/v1/pools/", setup_views.PoolSetupViewSet),
]


@pytest.fixture(scope="module")
def openapi():
    return SchemaGenerator().get_schema(request=None, public=True)


def component(serializer) -> str:
    return "#/components/schemas/" + serializer.__name__.removesuffix("Serializer")


@pytest.mark.parametrize(
    ("path", "view"), ACTION_PATHS + CREATE_PATHS, ids=lambda v: getattr(v, "__name__", v)
)
def test_the_schema_answers_each_post_with_the_declared_serializer(openapi, path, view):
    responses = openapi["paths"][path]["post"]["responses"]
    success = [code for code in responses if code.startswith("2")]
    assert success == [str(view.success_status)]
    assert responses[success[0]]["content"]["application/json"]["schema"]["$ref"] == component(
        view.output_serializer
    )


def test_the_schema_answers_a_draft_edit_with_the_declared_serializer(openapi):
    patch = openapi["paths"]["/api/v1/applications/{id}/"]["patch"]
    assert patch["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] == component(
        views.ApplicationViewSet.output_serializer
    )


class BriefApplication(s.ApplicationSerializer):
    class Meta(s.ApplicationSerializer.Meta):
        fields = ["id", "status"]


class BriefRecovery(s.RecoverySerializer):
    class Meta(s.RecoverySerializer.Meta):
        fields = ["id", "amount"]


def test_an_actions_body_is_made_by_its_declared_serializer(api, world, alice, monkeypatch):
    """Declare another serializer and the body follows it: nothing else picks the representation."""
    monkeypatch.setattr(views.ApplicationReturnApi, "output_serializer", BriefApplication)
    response = api(alice).post(
        f"/api/v1/applications/{world.application.pk}/return/",
        {"note": "Add the budget table."},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json() == {"id": world.application.pk, "status": "returned"}


def test_a_creations_body_is_made_by_its_declared_serializer(api, world, dave, monkeypatch):
    monkeypatch.setattr(views.RecoveryViewSet, "output_serializer", BriefRecovery)
    body = {"award": world.award.pk, "amount": "2500.00", "due_date": "2030-01-01", "reason": "Hours unused."}
    response = api(dave).post("/api/v1/recoveries/", body, format="json")
    assert response.status_code == 201, response.json()
    assert set(response.json()) == {"id", "amount"} and response.json()["amount"] == "2500.00"


def test_a_new_tokens_body_is_its_declared_serializer_with_the_key(api, carol):
    response = api(carol).post("/api/v1/tokens/", {"name": "erp"}, format="json")
    assert response.status_code == 201
    assert list(response.json()) == [*s.TokenSerializer.Meta.fields, "key"]
    assert response.json()["key"].startswith("gm_" + response.json()["prefix"])


@pytest.mark.parametrize(
    ("serializer", "resource", "attribute"),
    [
        (s.ApplicationSerializer, "applications", "application"),
        (s.AwardSerializer, "awards", "award"),
        (s.TrancheSerializer, "tranches", "paid"),
        (s.InstitutionSerializer, "institutions", "institution"),
        (s.MilestoneReportSerializer, "milestone-reports", "report"),
        (s.RecoverySerializer, "recoveries", "recovery"),
        (s.AlertSerializer, "alerts", "alert"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_a_result_is_read_again_in_one_query_and_shown_as_get_shows_it(
    api, world, alice, serializer, resource, attribute, django_assert_num_queries
):
    obj = getattr(world, attribute)
    # An application's duplicate-funding flags are one more query (a prefetch), however many it has.
    with django_assert_num_queries(2 if serializer is s.ApplicationSerializer else 1):
        body = serializer.of(obj)
    shown = api(alice).get(f"/api/v1/{resource}/{obj.pk}/")
    assert shown.status_code == 200
    assert json.loads(JSONRenderer().render(body)) == shown.json()
