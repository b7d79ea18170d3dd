"""The Celery application: workers and beat read their configuration from the CELERY_* settings.

Run a worker with beat: `celery -A config worker --beat`. Without REDIS_URL the broker is kombu's filesystem
transport in CELERY_DATA_DIR, so `make run` needs no server (docs/jobs.md).
"""

import os
from pathlib import Path

from celery import Celery

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
