# The opsconsole image: one image for web (daphne), worker and beat (Celery) and migrate.
# See docker-compose.yml for how each process runs it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

# Reproducible install: every package pinned and hash-checked. The lock also holds the
# dev extras (pytest, playwright, ...), which the image carries unused. Wheels only:
# the slim image has no compiler, and the lock resolves to wheels for linux/x86_64. With no
# compiler metrics.record() runs its Python twin (apps/metrics/recording.py), not _recordc.c.
COPY requirements.lock .
RUN pip install --require-hashes --only-binary :all: -r requirements.lock

COPY . .

# Settings refuse to import without these; collectstatic connects to neither server.
RUN DJANGO_DEBUG=false \
    DJANGO_SECRET_KEY=collectstatic-at-build-time-only \
    DATABASE_URL=postgresql://build@127.0.0.1:1/build \
    REDIS_URL=redis://127.0.0.1:1/0 \
    OPSCONSOLE_LOG_FORMAT=console \
    python manage.py collectstatic --noinput

# Non-root. Static files stay root-owned (read-only); var/ is writable for beat's
# schedule file.
RUN useradd --create-home --uid 10001 opsconsole \
    && chown opsconsole:opsconsole /app/var
USER opsconsole

EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "opsconsole.asgi:application"]
