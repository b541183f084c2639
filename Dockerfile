# The CIM service image used by docker-compose.yml (the database runs in postgis/postgis).
FROM node:20-slim AS web
WORKDIR /web
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim
WORKDIR /app
# Pango and CJK fonts: the PDF grading reports (WeasyPrint) are written in Chinese
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY cim cim
COPY ingest ingest
COPY tiles tiles
COPY grading grading
COPY twin twin
COPY analysis analysis
COPY demo demo
COPY api api
COPY cli cli
RUN pip install --no-cache-dir .
# CesiumJS for the 3D viewer, served by the service itself
COPY --from=web /web/node_modules/cesium/Build/Cesium /app/cesium
ENV CIM_API_CESIUM_DIR=/app/cesium
# ECharts for the sensors' charts
COPY --from=web /web/node_modules/echarts/dist /app/echarts
ENV CIM_API_ECHARTS_DIR=/app/echarts
EXPOSE 8000
CMD ["cim", "serve"]
