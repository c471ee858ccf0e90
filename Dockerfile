# syntax=docker/dockerfile:1
# Baton worker image: `docker build -t baton:0.1.0 .` then
#   docker run --rm -e BATON_REDIS_URL=redis://redis:6379 -p 9464:9464 baton:0.1.0
# runs `baton worker --app examples.jobs:app`; pass your own `worker --app module:app`
# (with your code on the image, e.g. FROM baton:0.1.0 + COPY) to run your jobs.
# The image has no embedded server: BATON_REDIS_URL (or REDIS_URL) is required.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    HOME=/tmp

RUN groupadd --system --gid 10001 baton \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin baton

# Only what the package needs (README.md is optional: the wildcard may match nothing).
WORKDIR /src
COPY pyproject.toml README.m[d] ./
COPY runtime ./runtime
COPY actors ./actors
RUN pip install . \
 && cd / && rm -rf /src

# The demo app; load_app imports module:attribute relative to the working directory.
WORKDIR /app
COPY examples ./examples

# numeric, so Kubernetes can verify runAsNonRoot
USER 10001:10001
EXPOSE 9464
ENTRYPOINT ["baton"]
CMD ["worker", "--app", "examples.jobs:app"]
