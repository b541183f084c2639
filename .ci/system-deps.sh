#!/usr/bin/env bash
# Installs the OS packages CIM needs when they are missing: PostgreSQL + PostGIS (for the embedded
# database and the tests) and Python's venv module. Idempotent and quick when all is present.
set -euo pipefail

need=()
have_initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | head -n1 || true)
have_postgis=$(ls /usr/share/postgresql/*/extension/postgis.control 2>/dev/null | head -n1 || true)
if [[ -z "$have_initdb" ]]; then need+=(postgresql); fi
if [[ -z "$have_postgis" ]]; then
  if [[ -n "$have_initdb" ]]; then
    major=$(basename "$(dirname "$(dirname "$have_initdb")")")
    need+=("postgresql-${major}-postgis-3")
  else
    need+=(postgis)
  fi
fi
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then need+=(python3-venv); fi
if [[ ! -x /usr/bin/time ]]; then need+=(time); fi  # peak memory in bench/

if [[ ${#need[@]} -eq 0 ]]; then exit 0; fi
echo "installing OS packages: ${need[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || echo "apt-get update failed; trying the cached package lists"
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" postgresql-contrib >/dev/null
# Debian starts a system cluster on install; CIM runs its own, so leave that one alone.
