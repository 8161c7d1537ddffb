# The calsync service (scheduler + web server), as a non-root user on port 8080:
#   docker build -t calsync .
#   docker run -p 8080:8080 -v calsync-data:/var/lib/calsync/data calsync
# compose.yaml runs it with PostgreSQL and several schedulers (the scale-out setup).
#
# BASE is any Debian-like image with Python 3.11+, venv and useradd. tests/test_container.py
# builds on a Debian bookworm root made with mmdebstrap, no image registry being reachable there.
ARG BASE=python:3.11-slim
FROM ${BASE}

# A CA bundle for the build's downloads, when its network needs one (a path mounted into the build).
ARG PIP_CERT
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/calsync

# The unprivileged user that runs the service owns the data dir (SQLite and the key files when
# CALSYNC_DATABASE_URL / CALSYNC_SECRET_KEY / CALSYNC_FEED_SECRET are not set).
RUN groupadd --gid 10001 calsync \
    && useradd --no-log-init --uid 10001 --gid calsync --home-dir /var/lib/calsync --create-home --shell /usr/sbin/nologin calsync \
    && install -d -o calsync -g calsync -m 700 /var/lib/calsync/data

# The versions of uv.lock, as `make install` gets them (uv sync --frozen), with uv pinned as the
# Makefile pins it. The dependencies first: that layer is kept while only the code changes.
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install -q ${PIP_CERT:+--cert "$PIP_CERT"} uv==0.13.9 \
    && env ${PIP_CERT:+SSL_CERT_FILE="$PIP_CERT"} /opt/uv/bin/uv sync --frozen --compile-bytecode --no-install-project --python python3
COPY README.md models.py run_bot.py run_console.py ./
COPY core ./core
COPY bot ./bot
COPY console ./console
COPY web ./web
RUN env ${PIP_CERT:+SSL_CERT_FILE="$PIP_CERT"} /opt/uv/bin/uv sync --frozen --compile-bytecode --no-editable --python python3 \
    && cd / && rm -rf /src /opt/uv

USER calsync:calsync
WORKDIR /var/lib/calsync
ENV PATH=/opt/calsync/bin:$PATH \
    CALSYNC_DATA_DIR=/var/lib/calsync/data \
    CALSYNC_HTTP_HOST=0.0.0.0 \
    CALSYNC_HTTP_PORT=8080
EXPOSE 8080

# /healthz answers 200 while the database answers (503 otherwise); Python's urllib, no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/opt/calsync/bin/python", "-c", "import os, urllib.request; h = os.environ.get('CALSYNC_HTTP_HOST', ''); h = '127.0.0.1' if h in ('', '0.0.0.0', '::') else h; h = f'[{h}]' if ':' in h else h; urllib.request.urlopen(f\"http://{h}:{os.environ.get('CALSYNC_HTTP_PORT', '8080')}/healthz\", timeout=4)"]

# SIGTERM: no new work, running syncs finish, the process exits within 30 seconds.
STOPSIGNAL SIGTERM
CMD ["calsync", "serve"]
