#!/bin/sh
# Run once by the postgis/postgis image when it creates the primary's data (docker-compose.yml):
# a replication-only role for the standby, and the pg_hba line that lets it stream the WAL.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$REPLICATION_PASSWORD" -U "$POSTGRES_USER" -d "$POSTGRES_DB" <<'SQL'
CREATE ROLE cim_replicator WITH REPLICATION LOGIN PASSWORD :'pw';
SQL
echo "host replication cim_replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
