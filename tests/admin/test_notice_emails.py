"""The notice e-mails' list for operators (issue #16): administrators see which were sent, which wait and why, which
were given up; officers, whose groups hold no permission on it, do not."""

from django.contrib.auth.models import User
from django.utils import timezone

from grants.models import NotificationEmail

URL = "/admin/grants/notificationemail/"


def test_an_administrator_sees_the_failed_ones_with_their_error(client, sh_application, carol):
    waiting, *_ = NotificationEmail.objects.filter(notification__user=carol).order_by("pk")
    NotificationEmail.objects.filter(pk=waiting.pk).update(
        failed_at=timezone.now(), attempts=10, last_error="SMTPServerDisconnected: relay went away"
    )
    client.force_login(User.objects.create_superuser("root", "root@example.cn", "correct horse battery"))
    page = client.get(URL + "?delivery=failed").content.decode()
    assert "SMTPServerDisconnected: relay went away" in page
    assert "application_submitted to carol" in page and "reviewer_assigned to rita" not in page
    assert "reviewer_assigned to rita" in client.get(URL + "?delivery=waiting").content.decode()
    assert client.get(f"{URL}{waiting.pk}/change/").status_code == 200
    assert client.post(f"{URL}{waiting.pk}/delete/").status_code == 403


def test_officers_do_not_see_peoples_notices(client, alice, sh_application):
    client.force_login(alice)
    assert client.get(URL).status_code == 403
