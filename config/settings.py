"""One settings module for every environment, read from environment variables.

Development defaults need nothing installed: SQLite in the project folder and a Celery broker kept in files.
Production sets DEBUG=0, SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL and REDIS_URL.
"""

import ipaddress
import os
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"Environment variable {name} is required.")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"Environment variable {name}={raw!r} is not a boolean (use 1/0, true/false).")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"Environment variable {name}={raw!r} is not an integer.") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env_str("SECRET_KEY", "insecure-development-key-do-not-use-in-production" if DEBUG else None)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "grants.admin_apps.GrantsAdminConfig",  # django.contrib.admin with the budget site (grants/admin_site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "cities",
    "grants",
    "grants.portal",
    # The second factor of staff (grants/second_factor.py): authenticator-app codes and recovery codes.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
]

MIDDLEWARE = [
    "config.health.ProbeMiddleware",  # before host validation and the HTTPS redirect (see there)
    "grants.metrics.web.MetricsMiddleware",  # /metrics like the probes; times everything below it
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "grants.i18n.PreferredLanguageMiddleware",  # an unprefixed page in the reader's language (grants/i18n.py)
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): the session passed the second factor
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "grants.audit.AuditContextMiddleware",
    "grants.second_factor.SecondFactorMiddleware",  # staff pages wait for the second factor when it is required
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers wait for the lock instead of failing at once; the embedded worker and the web process share the file.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

# Web requests wait at most WEB_DB_LOCK_TIMEOUT seconds for a lock and run a statement at most
# WEB_DB_STATEMENT_TIMEOUT seconds (0: no limit), then answer 503 with Retry-After. config/wsgi.py sets them on the
# web process's PostgreSQL connections only: migrations, management commands and the worker's exports keep no limit.
WEB_DB_LOCK_TIMEOUT = env_int("WEB_DB_LOCK_TIMEOUT", 5)
WEB_DB_STATEMENT_TIMEOUT = env_int("WEB_DB_STATEMENT_TIMEOUT", 30)
if WEB_DB_LOCK_TIMEOUT < 0 or WEB_DB_STATEMENT_TIMEOUT < 0:
    raise ImproperlyConfigured("WEB_DB_LOCK_TIMEOUT and WEB_DB_STATEMENT_TIMEOUT are seconds, 0 or more.")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
# Dates in forms are ISO 8601 (2024-05-31) in both languages (config/formats/).
FORMAT_MODULE_PATH = "config.formats"
USE_I18N = True
USE_TZ = True
# Money formats itself (grants.money.format_money: separators in yuan, 万元/亿元 in Chinese); every other number
# Django prints is a year, an id, a sequence or a count, which read wrongly grouped (a fiscal year 2025, not 2,025).
USE_THOUSAND_SEPARATOR = False

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
STORAGES = {
    # Attachments live outside the web root and are served only through views that check scope.
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# The TrueType font with Chinese glyphs embedded in award agreement PDFs (grants/services/agreement_pdf.py).
AGREEMENT_FONT = env_str("AGREEMENT_FONT", "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
# XLSX and ODS files are zip archives. One whose directory declares more than MAX_UPLOAD_INFLATED_BYTES in all,
# a part over MAX_UPLOAD_INFLATE_RATIO times its compressed size, or more than MAX_UPLOAD_ARCHIVE_PARTS parts is
# refused as a possible zip bomb, without inflating anything (grants/services/attachments.py).
MAX_UPLOAD_INFLATED_BYTES = env_int("MAX_UPLOAD_INFLATED_BYTES", 100 * 1024 * 1024)
MAX_UPLOAD_INFLATE_RATIO = env_int("MAX_UPLOAD_INFLATE_RATIO", 100)
MAX_UPLOAD_ARCHIVE_PARTS = env_int("MAX_UPLOAD_ARCHIVE_PARTS", 10_000)

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "grants@localhost")

# How many proxies in front of gunicorn append to X-Forwarded-For (grants/client_ip.py): 0, the client is
# REMOTE_ADDR; n, the n-th address from the right. The login policy, the audit log and the API's throttles (DRF's
# NUM_PROXIES) all take the client's address from it. Set it to exactly the number of proxies: one too many lets a
# client name any address it likes, one too few makes every client look like the proxy.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 or more.")

# --- REST API (grants/api, docs/api.md)
REST_FRAMEWORK = {
    # Bearer tokens first: their scheme is what a 401 names in WWW-Authenticate.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "grants.api.authentication.TokenAuthentication",
        "grants.api.authentication.VerifiedSessionAuthentication",  # staff: after the second factor
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "grants.api.schema.GrantsAutoSchema",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    # DRF's anon and user scopes, a counter per fixed window, going on without the cache (grants/api/throttling.py).
    "DEFAULT_THROTTLE_CLASSES": [
        "grants.api.throttling.AnonRateThrottle",
        "grants.api.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_THROTTLE_ANON", "60/minute"),
        "user": env_str("API_THROTTLE_USER", "6000/minute"),
    },
    "EXCEPTION_HANDLER": "grants.api.errors.exception_handler",
    # The anonymous rate limit counts per client behind the trusted proxies, like the login policy.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    # ?format= selects a report's format (json, csv, xlsx) in the report views, not a DRF renderer.
    "URL_FORMAT_OVERRIDE": None,
    "COERCE_DECIMAL_TO_STRING": True,
}
# 360Giving: grant ids are 360G-<prefix>-<award reference>; the prefix is the publisher's registered one.
GRANTS_360G_PREFIX = env_str("GRANTS_360G_PREFIX", "cn-grants")
GRANTS_360G_PUBLISHER = env_str("GRANTS_360G_PUBLISHER", "City AI subsidy programmes")
GRANTS_360G_LICENSE = env_str("GRANTS_360G_LICENSE", "https://creativecommons.org/licenses/by/4.0/")
SPECTACULAR_SETTINGS = {
    "TITLE": "Subsidy grant management API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name per choice set in the schema: each model's states under its own name, the institution types once.
    "ENUM_NAME_OVERRIDES": {
        "InstitutionTypeEnum": "grants.models.InstitutionType",
        "ProgrammeStatusEnum": "grants.models.Programme.Status",
        "ApplicationStatusEnum": "grants.models.Application.Status",
        "AwardStatusEnum": "grants.models.Award.Status",
        "TrancheStatusEnum": "grants.models.Tranche.Status",
        "MilestoneReportStatusEnum": "grants.models.MilestoneReport.Status",
        "AgreementStatusEnum": "grants.models.AwardAgreement.Status",
        "ReportingDutyStatusEnum": "grants.models.ReportingDuty.Status",
        "RecoveryStatusEnum": "grants.models.Recovery.Status",
        "ProposalStatusEnum": "grants.models.Proposal.Status",
        "WebhookDeliveryStatusEnum": "grants.models.WebhookDelivery.Status",
        "ExportJobStatusEnum": "grants.models.ExportJob.Status",
        # Vouchers (issue 13): a pool's category (all of them) beside the three a voucher pool may have.
        "PoolCategoryEnum": "grants.models.FundingPool.Category",
        "VoucherCategoryEnum": "grants.api.voucher_serializers.VOUCHER_CATEGORY_CHOICES",
        "OfferingClassEnum": "grants.models.OfferingClass",
        "VoucherPayeeEnum": "grants.models.VoucherScheme.Payee",
        "VoucherStatusEnum": "grants.models.Voucher.Status",
        "VoucherClaimStatusEnum": "grants.models.VoucherClaim.Status",
    },
}

# --- Celery (docs/jobs.md): delivery is at least once, so every task is safe to run twice.
from celery.schedules import crontab  # noqa: E402

REDIS_URL = os.environ.get("REDIS_URL", "")
# Without Redis the broker is a set of folders (kombu's filesystem transport): `make run` needs no server.
CELERY_DATA_DIR = Path(env_str("CELERY_DATA_DIR", str(BASE_DIR / ".celery")))
CELERY_BROKER_URL = REDIS_URL or "filesystem://localhost//"
# kombu's Redis transport with a close that survives a lost connection (config/celery.py says why).
CELERY_BROKER_TRANSPORT = "config.celery:RedisTransport" if REDIS_URL.startswith("redis") else None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = TIME_ZONE
# A message is acknowledged when its task has finished, and given back when the process running it dies, so a
# killed worker loses nothing; one message at a time per process, so a long task holds back no other message.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 25)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30)
# Exports acknowledge on receipt and may run long; their state lives in ExportJob (see grants/tasks.py).
JOBS_EXPORT_TIME_LIMIT = env_int("JOBS_EXPORT_TIME_LIMIT", 1800)
# An export whose worker died is retried by the sweep, at most this many runs in all, then marked failed.
JOBS_EXPORT_MAX_ATTEMPTS = env_int("JOBS_EXPORT_MAX_ATTEMPTS", 3)
# How long a run may go unseen before the sweep may retry it: on PostgreSQL only the moment between the claim and
# the run's row lock (a live run holds the lock), elsewhere a lease the run renews as it writes rows.
JOBS_EXPORT_LEASE_SECONDS = env_int("JOBS_EXPORT_LEASE_SECONDS", 60)
# Finished files are deleted by the sweep this long after they were written.
JOBS_EXPORT_RETENTION_HOURS = env_int("JOBS_EXPORT_RETENTION_HOURS", 24)
# Exports a user may have pending or running at once; more are refused until one finishes.
JOBS_EXPORT_MAX_UNFINISHED = env_int("JOBS_EXPORT_MAX_UNFINISHED", 5)
# Redis gives an unacknowledged message to another worker once it is older than the visibility timeout: longer
# than any acks-late task (their hard limit above), short enough that the work of a worker killed outright comes
# back within a minute. Every worker scans for such messages every `unacked_restore_interval` seconds.
JOBS_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 40)
if JOBS_VISIBILITY_TIMEOUT <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("CELERY_VISIBILITY_TIMEOUT must be longer than CELERY_TASK_TIME_LIMIT.")
if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, int | str | bool] = {
        "visibility_timeout": JOBS_VISIBILITY_TIMEOUT,
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 1,
        # A broker that vanished must not hang a web request that queues a job after its commit.
        "socket_connect_timeout": 2,
        "socket_timeout": 10,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_DATA_DIR / "queue"),
        "data_folder_out": str(CELERY_DATA_DIR / "queue"),
        "control_folder": str(CELERY_DATA_DIR / "control"),
        "store_processed": False,
    }
# Queueing after a commit tries briefly, then gives up: the scheduled sweeps catch up from the database.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# The daily tranche release runs at this local time (HH:MM).
JOBS_TRANCHE_RELEASE_AT = env_str("JOBS_TRANCHE_RELEASE_AT", "00:30")
try:
    _release_hour, _release_minute = (int(part) for part in JOBS_TRANCHE_RELEASE_AT.split(":"))
except ValueError:
    raise ImproperlyConfigured(f"JOBS_TRANCHE_RELEASE_AT={JOBS_TRANCHE_RELEASE_AT!r} is not HH:MM.") from None
CELERY_BEAT_SCHEDULE = {
    # Money-moved notices left in the outbox (the broker was down at their commit): sent within this many seconds.
    "drain-outbox": {"task": "grants.drain_outbox", "schedule": env_int("JOBS_DRAIN_OUTBOX_SECONDS", 10)},
    # Pools whose money moved (tracking_due_at set) and open pools not tracked for JOBS_TRACKING_INTERVAL.
    "track-pools": {"task": "grants.sweep_tracking", "schedule": env_int("JOBS_SWEEP_TRACKING_SECONDS", 60)},
    # Webhook deliveries whose next attempt is due: back-off delays live in the database, not in the broker.
    "deliver-webhooks": {
        "task": "grants.sweep_webhooks",
        "schedule": env_int("JOBS_SWEEP_WEBHOOKS_SECONDS", 30),
    },
    "close-windows": {"task": "grants.close_windows", "schedule": env_int("JOBS_CLOSE_WINDOWS_SECONDS", 60)},
    # Exports whose message was lost or whose worker died (retried), and finished files past their retention.
    "restart-exports": {
        "task": "grants.sweep_exports",
        "schedule": env_int("JOBS_SWEEP_EXPORTS_SECONDS", 30),
    },
    "release-tranches": {
        "task": "grants.release_tranches",
        "schedule": crontab(hour=_release_hour, minute=_release_minute),
    },
}
JOBS_TRACKING_INTERVAL = env_int("JOBS_TRACKING_INTERVAL", 15 * 60)
# A burst of money movements in one pool queues one tracking job, this many seconds after the first.
JOBS_TRACKING_COALESCE_SECONDS = env_int("JOBS_TRACKING_COALESCE_SECONDS", 2)
# The outbox drain queued after commits waits this long, so a burst of postings is sent in one drain.
JOBS_OUTBOX_COALESCE_SECONDS = env_int("JOBS_OUTBOX_COALESCE_SECONDS", 1)
JOBS_WEBHOOK_TIMEOUT = env_int("JOBS_WEBHOOK_TIMEOUT", 10)
JOBS_WEBHOOK_MAX_ATTEMPTS = env_int("JOBS_WEBHOOK_MAX_ATTEMPTS", 10)
# Webhooks go only to public addresses (grants/services/webhooks.py), and over https when HTTPS_ONLY; these
# networks (CIDRs, comma-separated, e.g. 10.20.0.0/16,fd00:20::/64) are allowed too, for on-premise receivers.
WEBHOOK_ALLOWED_NETWORKS = env_list("WEBHOOK_ALLOWED_NETWORKS")
for _network in WEBHOOK_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"WEBHOOK_ALLOWED_NETWORKS: {_exc}") from None


# --- Applicant portal (grants/portal)
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "portal:home"
# Password guessing (grants/login_policy.py, docs/operations.md): one policy for the portal and admin log-ins,
# HTTP Basic on the API and password reset requests. Past its free attempts each counter makes every further attempt
# wait 1, 2, 4 ... seconds, up to LOGIN_MAX_DELAY_SECONDS; no lock-out. Free attempts per account from one address,
# per address over all accounts, and per account over all addresses (these two spare the addresses the account
# logged in from lately, so nobody can shut the real user out). Counted in the cache (CACHE_URL), forgotten
# LOGIN_FAILURE_MEMORY_SECONDS after the latest attempt.
AUTHENTICATION_BACKENDS = ["grants.login_policy.ThrottledModelBackend"]
LOGIN_FAILURES_BEFORE_DELAY = env_int("LOGIN_FAILURES_BEFORE_DELAY", 5)
LOGIN_ADDRESS_FAILURES_BEFORE_DELAY = env_int("LOGIN_ADDRESS_FAILURES_BEFORE_DELAY", 30)
LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY = env_int("LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY", 20)
LOGIN_MAX_DELAY_SECONDS = env_int("LOGIN_MAX_DELAY_SECONDS", 15 * 60)
LOGIN_FAILURE_MEMORY_SECONDS = env_int("LOGIN_FAILURE_MEMORY_SECONDS", 24 * 3600)
for _name in (
    "LOGIN_FAILURES_BEFORE_DELAY",
    "LOGIN_ADDRESS_FAILURES_BEFORE_DELAY",
    "LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY",
    "LOGIN_MAX_DELAY_SECONDS",
    "LOGIN_FAILURE_MEMORY_SECONDS",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1.")
# Staff (officers, finance officers, reviewers, auditors, administrators) sign in with a code from an authenticator
# app after their password (grants/second_factor.py, docs/operations.md). Required unless DEBUG: production always,
# `make run` (DEBUG=1) only with SECOND_FACTOR_REQUIRED=1. Wrong codes count under the login policy above, so the
# devices' own throttling is off (one policy, not two). OTP_TOTP_ISSUER names the service in the app.
SECOND_FACTOR_REQUIRED = env_bool("SECOND_FACTOR_REQUIRED", default=not DEBUG)
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "Subsidy grants")
OTP_TOTP_THROTTLE_FACTOR = 0
OTP_STATIC_THROTTLE_FACTOR = 0
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# --- Personal data (grants/services/retention.py, docs/operations.md): days after which each kind is anonymised.
# Rejected or withdrawn applications' free text (title, summary, decision note, review comments) and files,
# counted from the decision or withdrawal.
RETENTION_CLOSED_APPLICATION_DAYS = env_int("RETENTION_CLOSED_APPLICATION_DAYS", 3 * 365)
# Files of applications that ended without an award (rejected, withdrawn, or a draft left untouched).
RETENTION_UNSUCCESSFUL_ATTACHMENT_DAYS = env_int("RETENTION_UNSUCCESSFUL_ATTACHMENT_DAYS", 365)
# Applicant accounts not logged in for this long whose institutions have no live award or open application.
RETENTION_INACTIVE_ACCOUNT_DAYS = env_int("RETENTION_INACTIVE_ACCOUNT_DAYS", 3 * 365)
for _name in (
    "RETENTION_CLOSED_APPLICATION_DAYS",
    "RETENTION_UNSUCCESSFUL_ATTACHMENT_DAYS",
    "RETENTION_INACTIVE_ACCOUNT_DAYS",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1 (days).")
# The daily retention run, local time (HH:MM), and its time limit in seconds: a first run over years of backlog
# may take long; an interrupted run loses nothing, the next one carries on.
RETENTION_RUN_AT = env_str("RETENTION_RUN_AT", "03:30")
try:
    _retention_hour, _retention_minute = (int(part) for part in RETENTION_RUN_AT.split(":"))
except ValueError:
    raise ImproperlyConfigured(f"RETENTION_RUN_AT={RETENTION_RUN_AT!r} is not HH:MM.") from None
RETENTION_TIME_LIMIT = env_int("RETENTION_TIME_LIMIT", 1800)
CELERY_BEAT_SCHEDULE["apply-retention"] = {
    "task": "grants.apply_retention",
    "schedule": crontab(hour=_retention_hour, minute=_retention_minute),
}

# --- Maker-checker (issue 14, grants/services/proposals.py): a proposal awaiting a second officer holds its money
# reserved for this many days (a pool may set its own), then the sweep releases it.
PROPOSAL_EXPIRY_DAYS = env_int("PROPOSAL_EXPIRY_DAYS", 7)
if PROPOSAL_EXPIRY_DAYS < 1:
    raise ImproperlyConfigured("PROPOSAL_EXPIRY_DAYS is at least 1.")
CELERY_BEAT_SCHEDULE["expire-proposals"] = {
    "task": "grants.expire_proposals",
    "schedule": env_int("JOBS_EXPIRE_PROPOSALS_SECONDS", 15 * 60),
}

# --- Production: HTTPS, security headers, content security policy, cache, logs (docs/operations.md)
# HTTPS_ONLY=1 says the service is reached over HTTPS only (TLS ends at a proxy in front of gunicorn); it turns on
# the redirect, secure cookies and HSTS together, each still overridable. It is off by default because the test
# suite and `make run` speak plain HTTP; production sets it, and `check --deploy` fails without it.
HTTPS_ONLY = env_bool("HTTPS_ONLY", default=False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS_ONLY)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", HTTPS_ONLY)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", HTTPS_ONLY)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS_ONLY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS_ONLY)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS_ONLY)
# The header the TLS proxy sets to the original scheme (e.g. X-Forwarded-Proto). Name it only if the proxy always
# overwrites it: a header a client can set itself would let it pass for HTTPS.
_proxy_header = env_str("SECURE_PROXY_SSL_HEADER", "")
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https") if _proxy_header else None
)
X_FRAME_OPTIONS = "DENY"

# Pages load scripts only from this site (or with the per-request nonce, `{{ request.csp_nonce }}`); inline styles
# stay allowed because the admin and the API docs set them, and styles cannot run code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Login throttling and anything else cached must be shared by every web process: CACHE_URL=redis://... in production.
CACHE_URL = env_str("CACHE_URL", "")
if CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            # A cache that vanished costs a request one short wait, not a hang; its users then go on without it.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }

# Outgoing mail (alerts to officers) through the city's relay when EMAIL_BACKEND is the SMTP backend.
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured(
        "EMAIL_USE_TLS (STARTTLS) and EMAIL_USE_SSL (implicit TLS) exclude each other."
    )
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
# The folder of django.core.mail.backends.filebased.EmailBackend (`make run` writes each message there).
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(BASE_DIR / "mail"))

# --- Notices to people (grants/services/notifications.py, docs/jobs.md): sent by the worker after the commit.
# The address links in e-mails point at (scheme and host, no trailing slash).
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")
# Sends of one e-mail in all (the task's short retries, then the sweep's doubling waits from
# NOTIFY_EMAIL_RETRY_SECONDS up to an hour) before it is given up and logged as an error.
NOTIFY_EMAIL_MAX_ATTEMPTS = env_int("NOTIFY_EMAIL_MAX_ATTEMPTS", 10)
NOTIFY_EMAIL_RETRY_SECONDS = env_int("NOTIFY_EMAIL_RETRY_SECONDS", 60)
# How long a run sending an e-mail holds it: longer than a send may take (EMAIL_TIMEOUT per step).
NOTIFY_EMAIL_LEASE_SECONDS = env_int("NOTIFY_EMAIL_LEASE_SECONDS", 120)
for _name in ("NOTIFY_EMAIL_MAX_ATTEMPTS", "NOTIFY_EMAIL_RETRY_SECONDS", "NOTIFY_EMAIL_LEASE_SECONDS"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1.")
# The daily reminders of reports due in 30 and 7 days and overdue, local time (HH:MM).
NOTIFY_REMINDERS_AT = env_str("NOTIFY_REMINDERS_AT", "08:00")
try:
    _reminders_hour, _reminders_minute = (int(part) for part in NOTIFY_REMINDERS_AT.split(":"))
except ValueError:
    raise ImproperlyConfigured(f"NOTIFY_REMINDERS_AT={NOTIFY_REMINDERS_AT!r} is not HH:MM.") from None
CELERY_BEAT_SCHEDULE["send-reminders"] = {
    "task": "grants.send_reminders",
    "schedule": crontab(hour=_reminders_hour, minute=_reminders_minute),
}
# Vouchers whose validity ended: their unspent balance returns to the pool (grants/services/vouchers.py), once. The
# run is cheap when nothing is due (an index on status and valid_until), so it runs hourly rather than at midnight.
CELERY_BEAT_SCHEDULE["expire-vouchers"] = {
    "task": "grants.expire_vouchers",
    "schedule": env_int("JOBS_EXPIRE_VOUCHERS_SECONDS", 3600),
}
# Notice e-mails whose queued task was lost, or whose next attempt after a failure is due.
CELERY_BEAT_SCHEDULE["sweep-notice-emails"] = {
    "task": "grants.sweep_notice_emails",
    "schedule": env_int("JOBS_SWEEP_NOTICE_EMAILS_SECONDS", 60),
}

# A PostgreSQL read replica for the report endpoints (config/db_router.py); unset, reports read the primary.
REPORTS_DATABASE_URL = env_str("REPORTS_DATABASE_URL", "")
if REPORTS_DATABASE_URL:
    DATABASES["replica"] = {
        **dj_database_url.parse(
            REPORTS_DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
        ),
        # Tests read the replica through the primary's connection instead of creating a database for it.
        "TEST": {"MIRROR": "default"},
    }
    DATABASE_ROUTERS = ["config.db_router.ReportsReplicaRouter"]
    MIDDLEWARE.insert(
        MIDDLEWARE.index("config.health.ProbeMiddleware") + 1, "config.db_router.ReportsReplicaMiddleware"
    )

# Queues per job kind: CELERY_TASK_ROUTES=grants.export=exports,grants.deliver_webhook=webhooks sends those jobs to
# their own queues, each served by workers started with `--queues <name>` (docs/operations.md). Unset, one queue.
CELERY_TASK_ROUTES: dict[str, dict[str, str]] = {}
for _route in env_list("CELERY_TASK_ROUTES"):
    _task, _sep, _queue = _route.partition("=")
    if not _task.strip() or not _queue.strip():
        raise ImproperlyConfigured(f"CELERY_TASK_ROUTES entry {_route!r} is not <task name>=<queue>.")
    CELERY_TASK_ROUTES[_task.strip()] = {"queue": _queue.strip()}

# Processes per worker container; unset, one per core. Scale out with more worker containers (docs/operations.md).
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 0) or None
# Beat keeps when each schedule last ran beside the file broker's folders (a volume in the compose file).
CELERY_BEAT_SCHEDULE_FILENAME = str(CELERY_DATA_DIR / "beat-schedule")
# Workers and beat log through LOGGING below instead of Celery's own root handler, so every process writes JSON.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Prometheus metrics (grants/metrics, docs/operations.md). /metrics answers only with this bearer token; unset, it
# is a 404. Every process counts into PROMETHEUS_MULTIPROC_DIR (read by prometheus-client itself) when it is set.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
if METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ImproperlyConfigured("METRICS_TOKEN must be 32 characters or more (unset: /metrics is off).")
# host:port where a Celery worker's main process serves its own job counters (containers apart from the web's).
METRICS_WORKER_BIND = env_str("METRICS_WORKER_BIND", "")
if METRICS_WORKER_BIND and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    raise ImproperlyConfigured("METRICS_WORKER_BIND needs PROMETHEUS_MULTIPROC_DIR (the job counts' files).")
# Workers count their jobs' outcomes (Celery's signals) through this module.
CELERY_IMPORTS = ["grants.metrics.worker"]

# One JSON object per line on stdout (config/logging.py); LOG_FORMAT=text for reading in a terminal.
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json")
if LOG_FORMAT not in {"json", "text"}:
    raise ImproperlyConfigured(f"Environment variable LOG_FORMAT={LOG_FORMAT!r} must be json or text.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "config.logging.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": LOG_FORMAT}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
