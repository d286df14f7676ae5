# syntax=docker/dockerfile:1
# The Galaxy WebSocket API: one image for web (uvicorn workers), Celery worker and Celery beat
# (compose.yaml picks the command). Written for operators; the development machines reach no
# Docker registry, so the tests do not build it (README: Production run says what was checked).

# socket.io-client's browser bundle for the live page, from web/package-lock.json (bin/setup's npm ci).
FROM node:20-bookworm-slim AS client
WORKDIR /app/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=dev

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NODE_ENV=production \
    WEBSOCKET_HOST=0.0.0.0 \
    WEBSOCKET_PORT=3001
WORKDIR /app
RUN useradd --system --create-home --home-dir /home/galaxy galaxy
# The venv where bin/ expects it, with bin/setup's stamp, so bin/setup finds nothing to do.
COPY requirements.txt ./
RUN python -m venv .venv \
    && .venv/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements.txt \
    && sha256sum requirements.txt | cut -d' ' -f1 > .venv/.requirements.sha
COPY . .
COPY --from=client /app/web/node_modules web/node_modules
# node_modules newer than the lock file: bin/setup's "is npm ci needed" test says no.
RUN touch web/node_modules && mkdir -p logs && chown galaxy logs
USER galaxy
EXPOSE 3001
# /health: 200 when healthy or degraded (Redis blip, stale beat), 503 without a database.
HEALTHCHECK --interval=15s --timeout=6s --start-period=40s --retries=3 CMD ["bin/healthcheck"]
# Runs migrations, then uvicorn with WEB_CONCURRENCY workers; SIGTERM is a graceful shutdown.
CMD ["bin/serve-production"]
