"""A notice e-mail through Django's SMTP backend to a real SMTP server on this machine (aiosmtpd), as `make e2e`
does with the production processes: text and HTML parts, a Chinese subject encoded as it should be, the link."""

import socket
from email import message_from_bytes, policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from grants import services
from grants.models import NotificationEmail
from grants.services import notifications
from tests import factories as f


@pytest.fixture
def smtp_server(settings):
    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(
                (envelope.rcpt_tos, message_from_bytes(envelope.original_content, policy=policy.default))
            )
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", port, False
    settings.SITE_URL = "https://grants.example.cn"
    yield received
    controller.stop()


def test_a_notice_reaches_an_smtp_server_in_the_recipients_language(
    smtp_server, sh_pool, carols_startup, carol, django_capture_on_commit_callbacks
):
    notifications.set_language(user=carol, language="zh-hans")
    application = f.application(sh_pool, carols_startup, carol)
    with django_capture_on_commit_callbacks(execute=False):  # sent here, not by a worker
        services.submit_application(application=application, actor=carol)
    email = NotificationEmail.objects.get()
    assert notifications.send_email(email.pk) == "sent"
    application.refresh_from_db()
    ((recipients, message),) = smtp_server
    assert recipients == ["carol@example.cn"]
    assert message["Subject"] == f"已收到申请 {application.reference}"
    assert message["X-Grants-Notice"] == f"application_submitted:{email.notification_id}"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert f"https://grants.example.cn/zh-hans/applications/{application.pk}/" in text
    assert "申请金额 100 万元" in text and '<html lang="zh-Hans">' in html


def test_an_smtp_server_that_is_down_leaves_the_email_to_retry(settings, sh_pool, carols_startup, carol):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port, 2
    application = f.application(sh_pool, carols_startup, carol)
    services.submit_application(application=application, actor=carol)
    email = NotificationEmail.objects.get()
    with pytest.raises(OSError):
        notifications.send_email(email.pk)
    email.refresh_from_db()
    assert email.sent_at is None and email.failed_at is None and email.attempts == 1
    assert "ConnectionRefusedError" in email.last_error and email.claimed_until is None
    assert email.next_attempt_at > email.created_at
