"""Declaring an institution's legal representative and shareholders in the portal: what voucher claims between
related institutions are refused on (grants.services.vouchers.related_parties)."""

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from grants.models import AuditEvent, InstitutionRelation
from grants.services import vouchers
from tests import factories

pytestmark = pytest.mark.django_db


def _login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_member_declares_and_removes_a_relation_and_it_makes_two_institutions_related() -> None:
    city = factories.city("SH")
    alice = factories.user("alice")
    buyer = factories.institution(city, alice)
    seller = factories.institution(city, factories.user("sam"))
    client = _login(alice)
    url = reverse("portal:institution_relation_add", args=[buyer.pk])
    response = client.post(
        url, {"kind": "shareholder", "name": seller.name_zh, "identifier": seller.credit_code}
    )
    assert response.status_code == 302
    relation = InstitutionRelation.objects.get(institution=buyer)
    assert vouchers.related_parties(buyer, seller)
    assert AuditEvent.objects.filter(action="institution.declare_relation").count() == 1
    page = client.get(reverse("portal:institution", args=[buyer.pk]))
    assert seller.credit_code in page.content.decode()
    client.post(reverse("portal:institution_relation_remove", args=[buyer.pk, relation.pk]))
    assert not InstitutionRelation.objects.exists()
    assert vouchers.related_parties(buyer, seller) == []


def test_bad_declaration_is_refused_with_the_field_named_and_nothing_saved() -> None:
    city = factories.city("SH")
    alice = factories.user("alice")
    buyer = factories.institution(city, alice)
    response = _login(alice).post(
        reverse("portal:institution_relation_add", args=[buyer.pk]), {"kind": "shareholder", "name": ""}
    )
    assert response.status_code == 400
    assert not InstitutionRelation.objects.exists()


def test_another_institutions_member_cannot_declare_for_it() -> None:
    city = factories.city("SH")
    buyer = factories.institution(city, factories.user("alice"))
    mallory = factories.user("mallory")
    factories.institution(city, mallory)
    response = _login(mallory).post(
        reverse("portal:institution_relation_add", args=[buyer.pk]), {"kind": "shareholder", "name": "X"}
    )
    assert response.status_code == 404
    assert not InstitutionRelation.objects.exists()


def test_second_legal_representative_is_refused() -> None:
    city = factories.city("SH")
    alice = factories.user("alice")
    buyer = factories.institution(city, alice)
    client = _login(alice)
    url = reverse("portal:institution_relation_add", args=[buyer.pk])
    client.post(url, {"kind": "legal_rep", "name": "张伟"})
    response = client.post(url, {"kind": "legal_rep", "name": "李娜"})
    assert response.status_code == 400
    assert InstitutionRelation.objects.count() == 1
