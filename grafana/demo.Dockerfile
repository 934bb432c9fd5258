# The streamjoin demo, for grafana/docker-compose.yml. Build context: the repository root.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY joins ./joins
COPY state ./state
COPY recovery ./recovery
COPY dataflows ./dataflows
RUN pip install --no-cache-dir .
# Loop the demo so that the dashboards keep showing a live run.
CMD ["sh", "-c", "while true; do streamjoin demo --out /tmp/demo-out --processes 2 --metrics-port 9464 --metrics-host 0.0.0.0 || exit 1; sleep 5; done"]
