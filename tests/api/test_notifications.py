"""GET /api/v1/notifications/ and marking notices read (issue #16): the caller's own notices only, in the
language the client asks for."""

from grants.models import Notification
from grants.services.notifications import Event
from tests.api.conftest import error_shape

URL = "/api/v1/notifications/"


def test_the_applicant_lists_their_notices_newest_first(api, world, carol):
    body = api(carol).get(URL).json()
    events = [row["event"] for row in body["results"]]
    # The story of the world's award, newest first: paid, released, approved, reviewed, submitted ...
    assert events[0] == Event.APPLICATION_SUBMITTED  # the second application, submitted last
    assert Event.TRANCHE_PAID in events and Event.TRANCHE_RELEASED in events
    assert Event.APPLICATION_APPROVED in events
    paid = next(row for row in body["results"] if row["event"] == Event.TRANCHE_PAID)
    assert paid["subject"] == f"Tranche 1 of award {world.award.reference} paid: CNY 1,000,000.00"
    assert paid["link"].endswith(f"/applications/{world.award.application_id}/")
    assert paid["unread"] is True and paid["read_at"] is None
    assert "payment reference SH-PAY-1" in paid["text"]


def test_the_client_chooses_the_language(api, world, carol):
    body = api(carol).get(URL, HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    paid = next(row for row in body["results"] if row["event"] == Event.TRANCHE_PAID)
    assert paid["subject"] == f"资助 {world.award.reference} 第 1 期已支付：100 万元"  # noqa: RUF001
    assert "/zh-hans/applications/" in paid["link"]


def test_staff_see_their_own_notices_and_nobody_elses(api, world, carol, dave, rita, admin):
    carols = Notification.objects.filter(user=carol).values_list("pk", flat=True)
    for user in (dave, rita, admin):
        ids = {row["id"] for row in api(user).get(URL + "?page_size=1000").json()["results"]}
        assert not ids & set(carols), user
    dave_events = {row["event"] for row in api(dave).get(URL).json()["results"]}
    assert dave_events == {Event.TRANCHE_PAYABLE}
    assert {row["event"] for row in api(rita).get(URL).json()["results"]} == {Event.REVIEWER_ASSIGNED}


def test_another_persons_notice_is_a_404_even_for_an_administrator(api, world, carol, dave, admin):
    notice = Notification.objects.filter(user=carol).latest("pk")
    for user in (dave, admin):
        for response in (
            api(user).get(f"{URL}{notice.pk}/"),
            api(user).post(f"{URL}{notice.pk}/read/", {}, format="json"),
        ):
            assert response.status_code == 404 and error_shape(response.json())
    notice.refresh_from_db()
    assert notice.read_at is None


def test_mark_one_read_then_again_changes_nothing(api, world, carol):
    notice = Notification.objects.filter(user=carol).latest("pk")
    first = api(carol).post(f"{URL}{notice.pk}/read/", {}, format="json")
    assert first.status_code == 200 and first.json()["unread"] is False
    second = api(carol).post(f"{URL}{notice.pk}/read/", {}, format="json")
    assert second.status_code == 200 and second.json()["read_at"] == first.json()["read_at"]
    unread = api(carol).get(URL + "?unread=true&page_size=1000").json()["results"]
    assert notice.pk not in {row["id"] for row in unread} and unread


def test_mark_all_read(api, world, carol):
    unread = Notification.objects.filter(user=carol, read_at__isnull=True).count()
    assert api(carol).post(f"{URL}read-all/", {}, format="json").json() == {"marked": unread}
    assert api(carol).get(URL + "?unread=true").json()["results"] == []
    assert api(carol).post(f"{URL}read-all/", {}, format="json").json() == {"marked": 0}


def test_anonymous_is_401(api, world):
    assert api(None).get(URL).status_code == 401
    assert api(None).post(f"{URL}read-all/", {}, format="json").status_code == 401


def test_the_list_takes_a_fixed_number_of_queries(api, world, carol, django_assert_max_num_queries):
    client = api(carol)
    client.get(URL)  # warm the client (authentication, caches)
    with django_assert_max_num_queries(6):
        body = client.get(URL + "?page_size=100").json()
    assert len(body["results"]) == Notification.objects.filter(user=carol).count() >= 5
