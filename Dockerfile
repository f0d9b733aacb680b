# The ambient-ops image: the same code runs as worker or API (command decides).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md worker.py ./
COPY ambient ambient
COPY workflows workflows
COPY activities activities
COPY mcp_server mcp_server
COPY api api
RUN pip install .
USER nobody
EXPOSE 8000 9464
CMD ["ambient", "api", "--host", "0.0.0.0"]
