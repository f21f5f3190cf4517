#!/usr/bin/env bash
# Makes sure PostgreSQL answers on 127.0.0.1:5432; starts the local cluster if it does not.
set -euo pipefail
host=127.0.0.1 port=5432
if pg_isready -q -h "$host" -p "$port"; then
  exit 0
fi
echo "ensure-postgres: PostgreSQL is not answering on $host:$port; starting it" >&2
if command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql ]]; then
  for version in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
fi
for _ in $(seq 1 30); do
  pg_isready -q -h "$host" -p "$port" && exit 0
  sleep 1
done
echo "ensure-postgres: PostgreSQL still not answering on $host:$port after 30 s" >&2
exit 1
