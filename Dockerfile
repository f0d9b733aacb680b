# The ambient-ops image: the same code runs as worker or API (command decides).
# Every package comes from uv.lock, hash-checked; the extras (dev, llm) are not installed.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy \
    UV_NO_CACHE=1 PATH=/app/.venv/bin:$PATH
# The version the Makefile pins.
RUN pip install --disable-pip-version-check uv==0.13.9
# Dependencies first, in a layer of their own: a code change does not reinstall them.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-install-project
COPY README.md worker.py ./
COPY ambient ambient
COPY workflows workflows
COPY activities activities
COPY mcp_server mcp_server
COPY api api
RUN uv sync --frozen --no-editable
USER nobody
EXPOSE 8000 9464
CMD ["ambient", "api", "--host", "0.0.0.0"]
