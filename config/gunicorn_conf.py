"""gunicorn settings for the web process: `gunicorn config.wsgi --config python:config.gunicorn_conf`.

Read from the environment like everything else, so the compose file and the end-to-end run share one command.
"""

import os
import sys

bind = os.environ.get("WEB_BIND", "0.0.0.0:8000")
# WEB_CONCURRENCY is gunicorn's own convention; (2 x cores) + 1 is its documented starting point. Sync workers
# spend much of a request waiting on PostgreSQL, so fewer would leave the cores idle under load.
workers = int(os.environ.get("WEB_CONCURRENCY", str(2 * (os.cpu_count() or 1) + 1)))
threads = int(os.environ.get("WEB_THREADS", "1"))
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
graceful_timeout = 20
# Recycle workers now and then so a slow leak never becomes an outage; jitter keeps them from restarting together.
max_requests = 2000
max_requests_jitter = 200
# The heartbeat file lives in memory: container file systems can stall it and get healthy workers killed.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
accesslog = "-"

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": sys.stdout}},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
    },
    "root": {"level": "INFO", "handlers": ["stdout"]},
}


def on_starting(server: object) -> None:
    """Before the workers fork: the Prometheus counters' folder exists and holds no dead process's files
    (grants/metrics). The web processes' and a worker's counters are added up when /metrics is scraped."""
    from grants.metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir()
