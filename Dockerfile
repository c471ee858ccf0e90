# syntax=docker/dockerfile:1
# Baton image: `docker build -t baton:0.1.0 .` then
#   docker run --rm -e BATON_REDIS_URL=redis://redis:6379 -p 9464:9464 baton:0.1.0
# runs `baton worker --app examples.jobs:app`; pass your own `worker --app module:app`
# (with your code on the image, e.g. FROM baton:0.1.0 + COPY) to run your jobs, or `api`.
# The image has no embedded server: BATON_REDIS_URL (or REDIS_URL) is required.
#
# Two stages: the build stage installs the locked dependencies (requirements.lock: every package
# pinned with its hashes, so two builds get the same packages) and Baton into a virtualenv; the
# runtime stage gets that virtualenv only, without pip's caches, the sources or the build backend.
#
# The base is pinned by tag: the build machine of this repository has no registry access to
# resolve its digest. Pin it by digest where you build (docker buildx imagetools inspect
# python:3.11-slim-bookworm), e.g. ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>.
# 3.11 is the Python the test suite and requirements.lock are made with.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/baton
WORKDIR /src
# dependencies first: this layer is rebuilt only when the lock changes
COPY requirements.lock ./
RUN /opt/baton/bin/pip install --require-hashes --no-deps -r requirements.lock
# then Baton itself, built with the locked setuptools (no unpinned build environment)
COPY pyproject.toml README.md ./
COPY runtime ./runtime
COPY actors ./actors
RUN /opt/baton/bin/pip install --no-deps --no-build-isolation . \
 && /opt/baton/bin/pip uninstall --yes setuptools

FROM ${PYTHON_IMAGE}

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="baton" \
      org.opencontainers.image.description="Durable background jobs for Python on Redis: asyncio actors, Lua leases, Prometheus metrics." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/baton/bin:$PATH \
    HOME=/tmp

RUN groupadd --system --gid 10001 baton \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin baton

COPY --from=build /opt/baton /opt/baton

# The demo app; load_app imports module:attribute relative to the working directory.
WORKDIR /app
COPY examples ./examples

# numeric, so Kubernetes can verify runAsNonRoot
USER 10001:10001
EXPOSE 9464
# /livez on the metrics port (a worker's liveness: event loop and restart budget; for `baton api`
# it proves the metrics thread answers). Kubernetes ignores HEALTHCHECK and uses the manifests' probes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('BATON_METRICS_PORT', '9464'), timeout=4)"]
ENTRYPOINT ["baton"]
CMD ["worker", "--app", "examples.jobs:app"]
