# syntax=docker/dockerfile:1
# The payhooks image: one image, two roles (see deploy/compose.yaml and deploy/k8s/):
#   payhooks serve --host 0.0.0.0 --port 8080                      the receiver (default command)
#   payhooks consume --metrics-host 0.0.0.0 --metrics-port 9101    a worker
#   payhooks topics apply --file /app/deploy/topics.yaml           the topics job
# Configuration: PAYHOOKS_CONFIG (default /etc/payhooks/payhooks.toml, mounted, not baked in);
# secrets arrive as files named by `*_file` keys. The image holds no configuration and no secret.
#
# Probes, not HEALTHCHECK (the roles differ; compose and Kubernetes define them per role):
#   receiver: GET /healthz (alive), GET /readyz (Kafka producer usable) on the serving port
#   worker:   payhooks_consumer_ready 1 on :9101/metrics (Kafka and a trusted Redis reachable)

# --- build: the wheel and its dependencies, pinned by constraints.txt, into a virtualenv --------
FROM python:3.11.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/payhooks
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY schemas ./schemas
COPY ingest ./ingest
COPY consumers ./consumers
COPY payhooks ./payhooks
# the same pinned versions as `make test`; every dependency has a manylinux wheel (no compiler)
RUN /opt/payhooks/bin/pip install -c constraints.txt .

# --- runtime: the virtualenv and the topics file, run as an unprivileged user --------------------
FROM python:3.11.11-slim-bookworm AS runtime

RUN groupadd --system --gid 10001 payhooks \
 && useradd --system --uid 10001 --gid payhooks --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin payhooks

COPY --from=build /opt/payhooks /opt/payhooks
COPY deploy/topics.yaml /app/deploy/topics.yaml

ENV PATH=/opt/payhooks/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PAYHOOKS_CONFIG=/etc/payhooks/payhooks.toml

WORKDIR /app
# numeric, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd
USER 10001:10001
EXPOSE 8080 9101

ENTRYPOINT ["payhooks"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
