# One image for the Dagster user code, webserver and daemon (and, with a GPU runtime, the trainer).
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng \
 && rm -rf /var/lib/apt/lists/*
# The containers run as this unprivileged user; build with APP_UID=$(id -u) so it owns what it writes to the mounts.
ARG APP_UID=1000
RUN groupadd --gid "${APP_UID}" app \
 && useradd --uid "${APP_UID}" --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app
WORKDIR /opt/c64-pipeline
COPY pyproject.toml ./
COPY c64_pipeline ./c64_pipeline
COPY workspace.yaml ./
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1 \
 && pip install --no-cache-dir -e .
ENV DAGSTER_HOME=/opt/dagster/home HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HOME=/home/app
COPY deploy/dagster.yaml /opt/dagster/home/dagster.yaml
# The code stays root's (read-only for the app user); Dagster's home (logs, compute logs) and the mount points are
# the app user's.
RUN mkdir -p /data /models \
 && chown -R app:app /opt/dagster/home /data /models
USER app
