# The engine and its HTTP API: simulated terminal and SQLite by default; set EE_TERMINAL,
# DATABASE_URL (PostgreSQL) and EE_API_TOKENS for production. Port 8000.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin engine

WORKDIR /opt/engine
COPY pyproject.toml README.md ./
COPY core ./core
COPY terminals ./terminals
COPY storage ./storage
COPY actors ./actors
COPY api ./api
COPY bench ./bench
COPY drills ./drills
RUN python -m pip install .

# The SQLite file (the default store) lives in the working directory: a volume the engine
# user owns.
RUN mkdir /data && chown engine:engine /data
VOLUME ["/data"]
WORKDIR /data
USER engine

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"]

CMD ["sh", "-c", "execution-engine db upgrade && exec execution-engine serve --host 0.0.0.0 --port 8000"]
