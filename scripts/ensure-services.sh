#!/usr/bin/env bash
# Make sure the servers the integration tests need are up on this machine:
# PostgreSQL on 127.0.0.1:5432 (trust auth, database "test") and Redis on
# 127.0.0.1:6379. Starts them when they are installed but stopped, installs
# them from Debian's packages when they are missing. Tests that were given
# TEST_DATABASE_URL / TEST_REDIS_URL elsewhere skip this.
set -euo pipefail

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq >/dev/null
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() {  # wait_for DESCRIPTION COMMAND...
  local what=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "ensure-services: $what did not come up" >&2
  return 1
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if [ -z "${TEST_DATABASE_URL:-}" ]; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "ensure-services: installing PostgreSQL" >&2
    apt_install postgresql
  fi
  if ! pg_up; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "ensure-services: starting PostgreSQL $version" >&2
    conf=/etc/postgresql/$version/main
    # Trust local TCP connections, as the test fixtures expect.
    if ! grep -q "accord-test" "$conf/pg_hba.conf"; then
      sed -i '1i host all all 127.0.0.1/32 trust # accord-test\nhost all all ::1/128 trust # accord-test\nlocal all all trust # accord-test' "$conf/pg_hba.conf"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for PostgreSQL pg_up
  fi
  if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='test'" | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -qc "create database test"
  fi
fi

if [ -z "${TEST_REDIS_URL:-}" ]; then
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "ensure-services: installing Redis" >&2
    apt_install redis-server
  fi
  if ! redis_up; then
    echo "ensure-services: starting Redis" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    wait_for Redis redis_up
  fi
fi
