# shellcheck shell=bash
# Source this file (". .ci/postgres.sh"): it makes sure a PostgreSQL server runs on 127.0.0.1 and
# exports CATALOG_TEST_POSTGRES_URL for the store tests. Idempotent: a second run reuses the server.
# Installs PostgreSQL with apt-get when it is missing (needs root, as in CI). The role may create
# databases (each test gets its own) and end sessions a killed client left (pg_signal_backend).
#   CATALOG_PG_PORT  port to listen on (default 55432)
#   CATALOG_PG_DIR   data directory (default /tmp/circuit-catalog-pg)

_catalog_pg_setup() {
    local port="${CATALOG_PG_PORT:-55432}"
    local dir="${CATALOG_PG_DIR:-/tmp/circuit-catalog-pg}"
    local user=catalog password=catalog db=catalog_test
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -z "$bin" || ! -x "$bin/postgres" ]]; then
        if [[ $(id -u) -ne 0 ]]; then
            echo "postgres.sh: PostgreSQL is not installed and this is not root; install it (apt-get install postgresql) and re-run" >&2
            return 1
        fi
        echo "postgres.sh: installing PostgreSQL with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq postgresql >/dev/null
        bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    fi
    # The server refuses to run as root: run it as the postgres account when we are root.
    local as=()
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
        as=(runuser -u postgres --)
    fi
    if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
        if [[ ! -f "$dir/PG_VERSION" ]]; then
            mkdir -p "$dir"
            [[ ${#as[@]} -gt 0 ]] && chown postgres: "$dir"
            chmod 700 "$dir"
            "${as[@]}" "$bin/initdb" -D "$dir" -A trust -U postgres -E UTF8 >"$dir.initdb.log" 2>&1 || {
                echo "postgres.sh: initdb failed, see $dir.initdb.log" >&2; return 1; }
        fi
        "${as[@]}" "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null || {
            echo "postgres.sh: the server did not start, see $dir/server.log" >&2; return 1; }
    fi
    local psql=("$bin/psql" -v ON_ERROR_STOP=1 -q -h 127.0.0.1 -p "$port" -U postgres -d postgres)
    "${psql[@]}" -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$user') THEN
            CREATE ROLE $user LOGIN CREATEDB PASSWORD '$password';
        END IF; END \$\$;
        GRANT pg_signal_backend TO $user;" || return 1
    if [[ -z $("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
        "${psql[@]}" -c "CREATE DATABASE $db OWNER $user" || return 1
    fi
    export CATALOG_TEST_POSTGRES_URL="postgresql+psycopg://$user:$password@127.0.0.1:$port/$db"
    echo "postgres.sh: PostgreSQL on 127.0.0.1:$port, CATALOG_TEST_POSTGRES_URL exported (database $db)"
}

_catalog_pg_setup
unset -f _catalog_pg_setup
