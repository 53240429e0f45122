# syntax=docker/dockerfile:1
# Parley: self-hosted real-time AI chat server (Django + Channels, served by daphne).

# The dashboard's Chart.js, from the npm registry at the version package-lock.json pins.
FROM node:20-slim AS vendor
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Unprivileged user that runs the server.
RUN groupadd --system parley \
    && useradd --system --gid parley --home-dir /app --no-create-home parley \
    && chown parley:parley /app

# Dependencies first, so this layer is cached while only the code changes.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY --chown=parley:parley . .
COPY --from=vendor --chown=parley:parley /src/node_modules/chart.js/dist/chart.umd.js static/vendor/chart.umd.js

USER parley

# Collect static files (widget.js, admin) into the image. Development mode is
# used only for this step so that no SECRET_KEY is needed at build time.
RUN PARLEY_ENV=development python manage.py collectstatic --noinput

EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

# `serve` is daphne with the settings' frame-size limit (CHAT_MAX_FRAME_BYTES). Behind a reverse
# proxy, set TRUST_PROXY_HEADERS=1 and TRUSTED_PROXIES to the proxy's address or network
# (docker-compose.yml does); X-Forwarded-For from any other peer is ignored.
# On SIGTERM it shuts down gracefully: replies get SHUTDOWN_GRACE_S (20 s) to finish, then the
# websockets close with 1012 and the widgets move to another replica. Allow it SHUTDOWN_GRACE_S
# + 15 s before a SIGKILL (`docker stop -t 45`, compose's stop_grace_period; docs/security.md).
CMD ["python", "manage.py", "serve", "--host", "0.0.0.0", "--port", "8000"]
