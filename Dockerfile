# The CIM service image used by docker-compose.yml (the database runs in postgis/postgis).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cim cim
COPY ingest ingest
COPY tiles tiles
COPY api api
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["cim", "serve"]
