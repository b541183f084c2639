#!/usr/bin/env bash
# Installs the OS packages CIM needs when they are missing: PostgreSQL + PostGIS (the embedded
# database and the tests), Python's venv module, Node.js and npm (the glTF validator the tests
# run), Chromium and CJK fonts (the viewer's browser tests), Pango (PDF grading reports),
# poppler-utils (the report test renders a page), GDAL's ogr2ogr (a test and bench/ read the
# Features API with it), GNU time (bench/), nginx (the reverse-proxy test, bench/serve.py) and
# wrk (bench/serve.py) and mosquitto (the twin's MQTT broker, embedded like PostgreSQL).
# Idempotent, and quick when everything is present. Debian/Ubuntu (apt); run as root or with sudo.
set -euo pipefail

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
updated=""

apt_install() {
  echo "installing OS packages: $*"
  if [[ -z "$updated" ]]; then
    $SUDO apt-get update -qq || echo "apt-get update failed; trying the cached package lists"
    updated=1
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

initdb_path() { ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1 || true; }

need=()
if [[ -z "$(initdb_path)" ]]; then need+=(postgresql postgresql-contrib); fi
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then need+=(python3-venv); fi
if [[ ! -x /usr/bin/time ]]; then need+=(time); fi
if ! command -v node >/dev/null; then need+=(nodejs); fi  # the glTF validator in the tests
if ! command -v npm >/dev/null; then need+=(npm); fi
if [[ ! -x /usr/bin/chromium ]]; then need+=(chromium); fi  # the viewer's browser tests
if [[ ! -d /usr/share/fonts/opentype/noto ]]; then need+=(fonts-noto-cjk); fi  # Chinese text
if ! ldconfig -p | grep -q libpangoft2-1.0; then need+=(libpango-1.0-0 libpangoft2-1.0-0); fi  # PDF reports
if ! command -v pdftoppm >/dev/null; then need+=(poppler-utils); fi  # report tests render a page
if [[ ! -f /usr/share/proj/egm96_15.gtx ]]; then need+=(proj-data); fi  # EGM96 geoid, BETA2007
if ! command -v ogr2ogr >/dev/null; then need+=(gdal-bin); fi  # GDAL reads the Features API
if [[ ! -x /usr/sbin/nginx ]]; then need+=(nginx-light); fi  # the reverse-proxy test, bench/serve.py
if ! command -v wrk >/dev/null; then need+=(wrk); fi  # bench/serve.py's load generator
if [[ ! -x /usr/sbin/mosquitto ]]; then need+=(mosquitto); fi  # the twin's MQTT broker
if [[ ${#need[@]} -gt 0 ]]; then apt_install "${need[@]}"; fi

# PostGIS for the server version that is installed (Debian names it postgresql-NN-postgis-3)
major=$(basename "$(dirname "$(dirname "$(initdb_path)")")")
if [[ ! -f "/usr/share/postgresql/${major}/extension/postgis.control" ]]; then
  apt_install "postgresql-${major}-postgis-3"
fi
# Debian starts a system cluster on install; CIM runs its own on another port and leaves it be.
