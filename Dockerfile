# The CIM service image used by docker-compose.yml (the database runs in postgis/postgis).
FROM node:20-slim AS web
WORKDIR /web
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cim cim
COPY ingest ingest
COPY tiles tiles
COPY api api
RUN pip install --no-cache-dir .
# CesiumJS for the 3D viewer, served by the service itself
COPY --from=web /web/node_modules/cesium/Build/Cesium /app/cesium
ENV CIM_API_CESIUM_DIR=/app/cesium
EXPOSE 8000
CMD ["cim", "serve"]
