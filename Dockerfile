# One image for the Dagster user code, webserver and daemon (and, with a GPU runtime, the trainer).
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/c64-pipeline
COPY pyproject.toml ./
COPY c64_pipeline ./c64_pipeline
COPY data/sample_manuals ./data/sample_manuals
COPY workspace.yaml ./
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1 \
 && pip install --no-cache-dir -e .
ENV DAGSTER_HOME=/opt/dagster/home HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
COPY deploy/dagster.yaml /opt/dagster/home/dagster.yaml
