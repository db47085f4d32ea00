#!/usr/bin/env bash
# Make sure PostgreSQL, Redis and MariaDB answer on loopback (install and start them if they do
# not), and
# that Debian's Chromium (browser tests), PgBouncer (pooler tests), HAProxy (several service
# instances) and SPIN (the model check) are installed.
set -euo pipefail

need_apt=()
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# Headless Chromium for the dashboard's browser tests (driven by Playwright, which downloads
# no browser of its own: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1, executable /usr/bin/chromium).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# SPIN, for the protocol model check (tests/model/test_spin.py).
command -v spin >/dev/null 2>&1 || need_apt+=(spin)
# PgBouncer for the PostgreSQL-through-a-pooler tests; never run as a service here: the tests
# start their own instance on a free port (tests/support/pgbouncer.py).
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || need_apt+=(pgbouncer)
# HAProxy in front of several `workclaim serve` instances (tests/support/instances.py starts it).
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
# gcc for the LD_PRELOAD shims the fault scenarios compile (tests/faults/clockshim.c).
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
# MariaDB 10.11 for the mariadb:// backend, and what mysqlclient (its driver, a C extension)
# builds against: Debian's libmariadb-dev and pkg-config.
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server)
dpkg -s libmariadb-dev >/dev/null 2>&1 || need_apt+=(libmariadb-dev)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
# iproute2 for the partition scenario's namespace and veth pair (tests/faults/netns.py).
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    # The packages may start their system services (PgBouncer on 6432); the tests never use
    # them: they start their own on free ports.
    for service in pgbouncer haproxy; do
        if [[ " ${need_apt[*]} " == *" $service "* ]]; then
            invoke-rc.d "$service" stop >/dev/null 2>&1 || true
        fi
    done
fi

pg_ready() { pg_isready -h 127.0.0.1 -p 5432 -q; }
if ! pg_ready; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
fi
pg_ready || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" postgres | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" postgres

redis_ready() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if ! redis_ready; then
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 30); do redis_ready && break; sleep 1; done
fi
redis_ready || { echo "Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }
# MariaDB: root over TCP with an empty password (the tests' default URL), database `test`, and
# max_connections raised (the default 151 is too few for the suite: every test opens a pool).
mariadb_sql() { mariadb -uroot -h127.0.0.1 -P3306 --protocol=tcp -N -e "$1"; }
mariadb_ready() { mariadb_sql "SELECT 1" >/dev/null 2>&1; }
if ! mariadb_ready; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    if command -v service >/dev/null 2>&1 && service mariadb start >/dev/null 2>&1; then :; else
        (mysqld_safe --bind-address=127.0.0.1 --port=3306 >/dev/null 2>&1 &)
    fi
    for _ in $(seq 1 30); do mariadb_ready && break; sleep 1; done
    if ! mariadb_ready; then
        # A fresh Debian install lets root in only over the local socket: open it to TCP.
        mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); \
            CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; \
            GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;" 2>/dev/null || true
    fi
fi
mariadb_ready || { echo "MariaDB is not reachable on 127.0.0.1:3306" >&2; exit 1; }
mariadb_sql "CREATE DATABASE IF NOT EXISTS test"
mariadb_sql "SET GLOBAL max_connections = GREATEST(@@max_connections, 1000)"
echo "PostgreSQL, Redis and MariaDB are up"
