# Install (if missing) and start Debian's PostgreSQL, create the test role and database,
# and export MASKLET_TEST_POSTGRES_URL for the store tests.
#
#   source .ci/postgres.sh          # CI (.ci/run) and local use; idempotent, ~1 s when already set up
#   bash .ci/postgres.sh            # same, but only prints the export line
#
# The role may create databases: each PostgreSQL store test makes (and drops) its own.
# Overridable: MASKLET_PG_USER, MASKLET_PG_PASSWORD, MASKLET_PG_DB.

_masklet_pg_setup() (
    set -euo pipefail
    user="${MASKLET_PG_USER:-masklet}"
    password="${MASKLET_PG_PASSWORD:-masklet}"
    db="${MASKLET_PG_DB:-masklet_test}"

    as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    as_postgres() {
        if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
    }

    if ! command -v pg_lsclusters >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        echo "postgres.sh: installing postgresql (apt-get)" >&2
        as_root apt-get update -qq >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    fi

    # The package normally creates a cluster; in some images (createcluster.conf) it does not.
    if [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
        version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
        as_root pg_createcluster "$version" main >&2
    fi
    read -r version cluster port status _ < <(pg_lsclusters -h | head -n 1)
    if [ "$status" != "online" ]; then
        # As root, pg_ctlcluster runs the server as the cluster owner (postgres).
        as_root pg_ctlcluster "$version" "$cluster" start >&2
    fi
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p "$port" && break
        sleep 0.5
    done
    pg_isready -q -h 127.0.0.1 -p "$port" || { echo "postgres.sh: server on port $port did not come up" >&2; exit 1; }

    psql_admin() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres "$@"; }
    if [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$user'")" != 1 ]; then
        psql_admin -c "CREATE ROLE \"$user\" LOGIN CREATEDB PASSWORD '$password'"
    else
        psql_admin -c "ALTER ROLE \"$user\" LOGIN CREATEDB PASSWORD '$password'"
    fi
    if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
        psql_admin -c "CREATE DATABASE \"$db\" OWNER \"$user\""
    fi
    echo "postgresql+psycopg://$user:$password@127.0.0.1:$port/$db"
)

if _masklet_pg_url="$(_masklet_pg_setup)"; then
    export MASKLET_TEST_POSTGRES_URL="$_masklet_pg_url"
    echo "export MASKLET_TEST_POSTGRES_URL=$_masklet_pg_url"
    unset _masklet_pg_url
else
    echo "postgres.sh: PostgreSQL setup failed" >&2
    unset _masklet_pg_url
    # `return` when sourced, `exit` when run as a script.
    return 1 2>/dev/null || exit 1
fi
unset -f _masklet_pg_setup
