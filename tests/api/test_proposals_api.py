"""Two people for big decisions through the API (issue 14): propose, confirm and send back; who proposed and who
confirmed in the outputs; the refusals (self-confirmation, the releaser paying, one person above the threshold,
a decided proposal) change nothing; another city's proposal is a 404; a retried request has one effect."""

from decimal import Decimal

import pytest

from grants import services
from grants.models import Award, LedgerEntry, Proposal
from grants.roles import Role
from tests import factories as f
from tests.api.conftest import error_shape
from tests.grants.invariants import assert_invariants, state

D = Decimal


@pytest.fixture
def amir(shanghai):
    return f.user("amir", roles=(Role.PROGRAMME_OFFICER,), cities=(shanghai,))


@pytest.fixture
def fay(shanghai):
    return f.user("fay", roles=(Role.FINANCE_OFFICER,), cities=(shanghai,))


@pytest.fixture
def guarded(world):
    """The world's Shanghai calls with thresholds: awards above 400,000, payments above 100,000."""
    for pool in world.sh_pool.programme.pools.all():
        pool.approval_threshold = D("400000")
        pool.payment_threshold = D("100000")
        pool.save(update_fields=["approval_threshold", "payment_threshold"])
    return world


def post(client, path, body=None, **headers):
    return client.post(f"/api/v1/{path}", body or {}, format="json", headers=headers)


def test_an_approval_proposed_then_confirmed_by_a_second_officer(api, guarded, alice, amir):
    app = guarded.application  # 500,000 asked
    refused = post(api(alice), f"applications/{app.pk}/approve/")
    assert refused.status_code == 409 and refused.json()["code"] == "second_officer_required"
    assert refused.json()["details"] == {"amount": "500000.00", "threshold": "400000.00"}

    response = post(api(alice), f"applications/{app.pk}/propose/", {"note": "Strong case"})
    assert response.status_code == 201, response.json()
    proposal = response.json()
    assert (proposal["kind"], proposal["status"], proposal["amount"]) == ("approval", "pending", "500000.00")
    assert (proposal["proposed_by"], proposal["confirmed_by"], proposal["city"]) == (alice.pk, None, "SH")
    assert proposal["application"] == app.pk

    mine = post(api(alice), f"proposals/{proposal['id']}/confirm/")
    assert mine.status_code == 403 and mine.json()["code"] == "separation_of_duties"

    confirmed = post(api(amir), f"proposals/{proposal['id']}/confirm/", {"note": "Checked"})
    assert confirmed.status_code == 200, confirmed.json()
    body = confirmed.json()
    assert (body["status"], body["confirmed_by"], body["decided_by"]) == ("confirmed", amir.pk, amir.pk)
    award = api(alice).get(f"/api/v1/awards/{body['award']}/").json()
    assert (award["approved_by"], award["confirmed_by"], award["amount"]) == (alice.pk, amir.pk, "500000.00")
    listed = api(amir).get("/api/v1/proposals/?status=confirmed").json()["results"]
    assert [p["id"] for p in listed] == [proposal["id"]]
    assert_invariants()


def test_sent_back_then_confirming_is_refused_and_changes_nothing(api, guarded, alice, amir):
    app = guarded.application
    proposal = post(api(alice), f"applications/{app.pk}/propose/").json()
    bad = post(api(amir), f"proposals/{proposal['id']}/send-back/", {})
    assert bad.status_code == 400 and "note" in bad.json()["fields"]
    sent = post(api(amir), f"proposals/{proposal['id']}/send-back/", {"note": "Check the cost share"})
    assert sent.status_code == 200 and sent.json()["status"] == "sent_back"
    before = state()
    again = post(api(amir), f"proposals/{proposal['id']}/confirm/")
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
    assert error_shape(again.json())
    assert state() == before
    assert_invariants()


def test_another_citys_staff_get_404_and_applicants_never_see_proposals(
    api, guarded, alice, bob, carol, erin
):
    proposal = post(api(alice), f"applications/{guarded.application.pk}/propose/").json()
    for outsider in (bob, carol):
        assert post(api(outsider), f"proposals/{proposal['id']}/confirm/").status_code == 404
        assert api(outsider).get(f"/api/v1/proposals/{proposal['id']}/").status_code == 404
    auditor = post(api(erin), f"proposals/{proposal['id']}/confirm/")
    assert auditor.status_code == 403  # sees it, may not decide it
    assert api(erin).get(f"/api/v1/proposals/{proposal['id']}/").status_code == 200


def test_a_retried_proposal_reserves_once(api, guarded, alice):
    app = guarded.application
    first = post(api(alice), f"applications/{app.pk}/propose/", {}, **{"Idempotency-Key": "prop-1"})
    second = post(api(alice), f"applications/{app.pk}/propose/", {}, **{"Idempotency-Key": "prop-1"})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert Proposal.objects.count() == 1
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.RESERVE).count() == 1
    app.pool.refresh_from_db()
    assert app.pool.reserved == D("500000")


def test_a_retried_confirmation_commits_once(api, guarded, alice, amir):
    proposal = post(api(alice), f"applications/{guarded.application.pk}/propose/").json()
    first = post(api(amir), f"proposals/{proposal['id']}/confirm/", {}, **{"Idempotency-Key": "conf-1"})
    second = post(api(amir), f"proposals/{proposal['id']}/confirm/", {}, **{"Idempotency-Key": "conf-1"})
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert Award.objects.filter(application=guarded.application).count() == 1
    assert_invariants()


def test_an_upward_amendment_proposed_and_confirmed(api, guarded, alice, amir):
    award = guarded.award  # 3,000,000, above the threshold already
    alone = post(api(alice), f"awards/{award.pk}/amend/", {"amount": "3100000", "reason": "more"})
    assert alone.status_code == 409 and alone.json()["code"] == "second_officer_required"
    guarded.sh_pool.max_rate = None
    guarded.sh_pool.save(update_fields=["max_rate"])
    proposal = post(
        api(alice), f"awards/{award.pk}/propose-amendment/", {"amount": "3100000", "reason": "more"}
    )
    assert proposal.status_code == 201, proposal.json()
    assert (proposal.json()["kind"], proposal.json()["award"]) == ("amendment", award.pk)
    done = post(api(amir), f"proposals/{proposal.json()['id']}/confirm/")
    assert done.status_code == 200, done.json()
    award.refresh_from_db()
    assert award.amount == D("3100000")
    assert_invariants()


def test_a_payment_released_by_one_proposed_by_another_confirmed_by_a_third(
    api, guarded, dave, fay, alice, carol, rita
):
    """A 300,000 tranche released by dave: dave may neither pay it nor propose or confirm its payment; fay
    proposes, a third finance officer confirms."""
    gus = f.user("gus", roles=(Role.FINANCE_OFFICER,), cities=(guarded.sh_pool.programme.city,))
    inst = f.institution(guarded.sh_pool.programme.city, carol)
    award = f.award(guarded.sh_pool, inst, carol, alice, rita, requested="300000", milestone_gated=False)
    tranche = award.tranches.get()
    services.release_tranche(tranche=tranche, actor=dave)
    out = api(dave).get("/api/v1/tranches/?page_size=1000").json()["results"]
    assert {t["id"]: t["released_by"] for t in out}[tranche.pk] == dave.pk

    before = state()
    for who, path, code in (
        (dave, "pay", "separation_of_duties"),
        (fay, "pay", "second_officer_required"),
        (dave, "propose-payment", "separation_of_duties"),
    ):
        response = post(api(who), f"tranches/{tranche.pk}/{path}/", {"payment_reference": "BIG-1"})
        assert response.json()["code"] == code, (who, path, response.json())
    assert state() == before

    proposal = post(
        api(fay), f"tranches/{tranche.pk}/propose-payment/", {"payment_reference": "BIG-1"}
    ).json()
    assert (proposal["kind"], proposal["tranche"], proposal["proposed_by"]) == ("payment", tranche.pk, fay.pk)
    assert post(api(dave), f"proposals/{proposal['id']}/confirm/").json()["code"] == "separation_of_duties"
    assert post(api(fay), f"proposals/{proposal['id']}/confirm/").json()["code"] == "separation_of_duties"
    assert post(api(alice), f"proposals/{proposal['id']}/confirm/").status_code == 403  # not finance
    assert post(api(gus), f"proposals/{proposal['id']}/confirm/").status_code == 200
    paid = {t["id"]: t for t in api(gus).get("/api/v1/tranches/?page_size=1000").json()["results"]}[
        tranche.pk
    ]
    assert (paid["status"], paid["released_by"], paid["paid_by"], paid["confirmed_by"]) == (
        "paid",
        dave.pk,
        fay.pk,
        gus.pk,
    )
    assert_invariants()


def test_without_thresholds_the_releaser_is_refused_and_another_finance_officer_pays(
    api, world, dave, frank, alice, carol, rita
):
    """The world's Shanghai pool has no threshold: one finance officer pays alone, but not the one who released
    the tranche (403 separation_of_duties, nothing changed); a second finance officer pays it."""
    assert (world.sh_pool.approval_threshold, world.sh_pool.payment_threshold) == (None, None)
    inst = f.institution(world.sh_pool.programme.city, carol)
    award = f.award(world.sh_pool, inst, carol, alice, rita, requested="300000", milestone_gated=False)
    tranche = award.tranches.get()
    released = post(api(dave), f"tranches/{tranche.pk}/release/")
    assert released.status_code == 200, released.json()
    assert (released.json()["status"], released.json()["released_by"]) == ("payable", dave.pk)

    before = state()
    mine = post(api(dave), f"tranches/{tranche.pk}/pay/", {"payment_reference": "SOD-1"})
    assert mine.status_code == 403 and error_shape(mine.json())
    assert (mine.json()["code"], mine.json()["details"]) == (
        "separation_of_duties",
        {"reason": "released_it"},
    )
    assert state() == before

    paid = post(api(frank), f"tranches/{tranche.pk}/pay/", {"payment_reference": "SOD-1"})
    assert paid.status_code == 200, paid.json()
    assert (paid.json()["status"], paid.json()["released_by"], paid.json()["paid_by"]) == (
        "paid",
        dave.pk,
        frank.pk,
    )
    assert paid.json()["confirmed_by"] is None
    assert_invariants()


def test_the_proposal_list_costs_the_same_for_more_rows(api, guarded, alice, django_assert_max_num_queries):
    post(api(alice), f"applications/{guarded.application.pk}/propose/")
    with django_assert_max_num_queries(12):
        response = api(alice).get("/api/v1/proposals/?status=pending")
    assert response.status_code == 200 and response.json()["count"] == 1
