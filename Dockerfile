# syntax=docker/dockerfile:1
#
# One image for both sensorsim processes:
#   - the producer, the default command:          python -m producer
#   - the operator, the Helm chart's command:     python -m sensorsim_operator
#
# Build:  docker build -t sensorsim:0.1.0 .     (or `make image`: podman, see the README)
# Security: runs as the numeric non-root user 10001, works with a read-only root filesystem
# (writes nothing outside /tmp; byte code is compiled at build time), no build tools in the
# final stage (uv and pip's caches stay in the build stage; the venv has no pip).
#
# The tests build this file unchanged with podman and run the image as the pods do (uid 10001,
# read-only root, no capabilities); see testbed/containers.py.

############################ build stage: a venv with sensorsim and its dependencies
FROM python:3.11.14-slim-trixie AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    VIRTUAL_ENV=/opt/venv

RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /src

# Dependencies first, at the versions pinned in requirements.lock (`make lock` writes it from
# pyproject.toml): this layer is rebuilt only when the lock changes, not on every code change
# or version bump.
COPY requirements.lock ./
RUN uv venv "$VIRTUAL_ENV" \
    && uv pip sync --python "$VIRTUAL_ENV/bin/python" requirements.lock

# The three packages: domain, producer and sensorsim_operator (from operator/), and the
# reference table the wheel carries (pyproject.toml, data-files).
COPY pyproject.toml README.md ./
COPY data/data_sensors.csv data/data_sensors.csv
COPY domain/ domain/
COPY producer/ producer/
COPY operator/sensorsim_operator/ operator/sensorsim_operator/
RUN uv pip install --python "$VIRTUAL_ENV/bin/python" --no-deps .

############################ final stage: the interpreter, the venv and the reference data
FROM python:3.11.14-slim-trixie

# A named account for uid/gid 10001 (some libraries look the user up); no home, no shell.
RUN groupadd --system --gid 10001 sensorsim \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin sensorsim

ENV VIRTUAL_ENV=/opt/venv
ENV PATH="${VIRTUAL_ENV}/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SENSOR_DATA_FILE=/app/data/data_sensors.csv

COPY --from=build /opt/venv /opt/venv
COPY data/data_sensors.csv /app/data/data_sensors.csv

WORKDIR /app
USER 10001:10001

# Labels last: a new revision or date changes only this metadata, every layer above is reused.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="sensorsim" \
      org.opencontainers.image.description="Simulated industrial machines publishing labelled sensor readings to Apache Kafka, and the Kubernetes operator that runs them" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-trixie"

# 8080: producer /healthz, /readyz, /metrics (HTTP_PORT) and operator /healthz;
# 9090: operator /metrics.
EXPOSE 8080 9090

CMD ["python", "-m", "producer"]
