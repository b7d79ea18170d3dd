# The application image: web, worker, beat and the one-shot migration all run it with the commands in Procfile.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=config.settings \
    MEDIA_ROOT=/var/lib/grants/media \
    CELERY_DATA_DIR=/var/lib/grants/celery

# msgfmt compiles the Chinese translations below; the award agreement PDFs embed WenQuanYi Micro Hei (AGREEMENT_FONT).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gettext fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system app && useradd --system --gid app --home-dir /app --no-create-home app

WORKDIR /app

# Dependencies exactly as locked (versions and hashes; `make lock` writes the file from pyproject.toml), in a layer of
# their own so a code change does not reinstall them.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

COPY . .

# The key only satisfies the settings module during the build; the containers get the real one from the environment.
RUN export SECRET_KEY=build-only-not-a-secret \
    && python manage.py compilemessages --locale zh_Hans -v 0 \
    && python manage.py collectstatic --no-input -v 0

# Named volumes start as copies of these folders, so they belong to the application user from the first run.
RUN mkdir -p /var/lib/grants/media /var/lib/grants/celery && chown -R app:app /var/lib/grants

USER app
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--config", "python:config.gunicorn_conf"]
