# Switchboard's image: web server, Celery worker and one-shot commands (migrate, createuser).
# The compose file (docker-compose.yml, docs/compose.md) runs it beside Postgres, Redis and a
# llama.cpp model server. Builds with BuildKit and with the classic builder alike.

# --- Stage 1: front-end assets (htmx, its SSE extension, Swagger UI) from the npm registry.
FROM node:20-slim AS static
WORKDIR /src/static
COPY static/package.json static/package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
    && npm cache clean --force

# --- Stage 2: the Python application.
FROM python:3.11-slim AS app

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# bubblewrap: the sandbox of checks (the checker service runs agents' code under it).
RUN apt-get update \
    && apt-get install --yes --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 switchboard \
    && useradd --system --uid 10001 --gid switchboard --create-home \
        --home-dir /home/switchboard --shell /usr/sbin/nologin switchboard

# The app finds templates/, static/ and migrations/ next to its `app` package
# (app/paths.py), so the project is installed editable from /app and keeps that layout.
WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
# They are read from pyproject.toml (without the `embedded` extra: compose runs real Redis,
# Postgres and a model server), together with the build backend, so that the editable install
# below needs no network.
COPY pyproject.toml ./
RUN python -c "import tomllib; m = tomllib.load(open('pyproject.toml', 'rb')); \
print('\n'.join(m['build-system']['requires'] + m['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY app/ app/
COPY workers/ workers/
COPY migrations/ migrations/
COPY templates/ templates/
COPY static/ static/
COPY --from=static /src/static/node_modules/ static/node_modules/
RUN pip install --no-deps --no-build-isolation -e . \
    && rm -rf build ./*.egg-info \
    && switchboard --help > /dev/null

# /data: the data folder (first-run setup token; the secret key when none is configured).
# /models: where the compose file's model-init service puts the GGUF file.
# Both are created here owned by the app user, so that a named volume mounted there
# starts out writable by it.
RUN mkdir -p /data /models && chown switchboard:switchboard /data /models

ENV SWITCHBOARD_DATA_DIR=/data \
    SWITCHBOARD_HOST=0.0.0.0 \
    SWITCHBOARD_PORT=8000

USER 10001:10001
EXPOSE 8000

# No HEALTHCHECK here: the same image runs the worker, which serves no HTTP.
# docker-compose.yml gives the web service its own.
CMD ["switchboard", "web"]
