"""The Celery application: workers and beat read their configuration from the CELERY_* settings.

Run a worker with beat: `celery -A config worker --beat`. Without REDIS_URL the broker is kombu's filesystem
transport in CELERY_DATA_DIR, so `make run` needs no server (docs/jobs.md).
"""

import logging
import os
from pathlib import Path

from celery import Celery

logger = logging.getLogger(__name__)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("grants")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.on_after_configure.connect
def _make_broker_folders(sender: Celery, **kwargs: object) -> None:
    """The filesystem transport expects its folders to exist; the web process and the worker both queue."""
    options = sender.conf.broker_transport_options or {}
    if not str(sender.conf.broker_url).startswith("filesystem"):
        return
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


app.autodiscover_tasks()


# --- Redis transport with a safe close --------------------------------------------------------------------------
# kombu 5.7 crashes the worker's consumer ("Unrecoverable error: AttributeError: 'NoneType' object has no attribute
# 'hostname'") when the Redis connection is lost while the worker holds an unacknowledged message: closing the
# channel tries to give the message back through a connection that is already gone, and the worker then hangs
# instead of reconnecting. Giving it back is not needed: the message is still in Redis's unacked set, and another
# worker (or this one, reconnected) restores it after the visibility timeout. Used through CELERY_BROKER_TRANSPORT.
from kombu.transport import redis as _redis  # noqa: E402


class _QoS(_redis.QoS):
    def restore_unacked(self, client: object = None) -> None:
        try:
            super().restore_unacked(client)
        except AttributeError:
            logger.warning(
                "broker connection gone: unacknowledged messages return after the visibility timeout"
            )
            if self._delivered is not None:
                self._delivered.clear()


class _Channel(_redis.Channel):
    QoS = _QoS


class RedisTransport(_redis.Transport):
    Channel = _Channel
