#!/usr/bin/env bash
# A throwaway local PostgreSQL server (Debian's postgresql package) for a shared Optuna study:
#   bash scripts/postgres.sh start DIR [PORT]   # prints the study URL to give `edgevit search --storage`
#   bash scripts/postgres.sh stop DIR
# The cluster lives in DIR (owned by the postgres user: initdb refuses root), listens on 127.0.0.1 only,
# trusts local connections (a test fixture, not a production server), and is removed by `stop`.
# Installs postgresql with apt-get when missing (root). Nothing else on the machine is touched: DIR must be
# new or empty, or a cluster this script made (its marker file .edgevit-postgres); `stop` removes only that.
set -euo pipefail
cmd=${1:?usage: postgres.sh start|stop DIR [PORT]}
dir=${2:?usage: postgres.sh start|stop DIR [PORT]}
port=${3:-55432}
fail() { echo "postgres.sh: $*" >&2; exit 2; }
case "$port" in ''|*[!0-9]*) fail "PORT must be a number between 1024 and 65535, got '$port'" ;; esac
{ [ "$port" -ge 1024 ] && [ "$port" -le 65535 ]; } || fail "PORT must be between 1024 and 65535, got $port"
case "$dir" in *"'"*|*'"'*|*'$'*|*'`'*|*'\'*) fail "DIR must not contain quotes, \$, \` or \\ (got $dir); choose a plain path" ;; esac
[ ! -e "$dir" ] || [ -d "$dir" ] || fail "$dir is a file, not a folder; give a new or empty folder"

bin_of() { dpkg -L "$(dpkg -l 'postgresql-[0-9]*' 2>/dev/null | awk '/^ii/{print $2}' | sort -V | tail -1)" 2>/dev/null \
  | grep -E "bin/$1\$" | head -1; }
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }

case "$cmd" in
  start)
    if [ -z "$(bin_of initdb)" ]; then
      [ "$(id -u)" = 0 ] || fail "PostgreSQL is not installed; run 'sudo apt-get install postgresql'"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    initdb=$(bin_of initdb); pg_ctl=$(bin_of pg_ctl)
    if [ -e "$dir" ] && [ ! -f "$dir/.edgevit-postgres" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
      fail "$dir holds other files; give a new or empty folder (or one this script made)"
    fi
    if [ -f "$dir/data/postmaster.pid" ] && as_pg "'$pg_ctl' -D '$dir/data' status" >/dev/null 2>&1; then
      running=$(sed -n 4p "$dir/data/postmaster.pid")
      echo "postgres.sh: a server started by this script already runs in $dir (port $running)" >&2
      echo "postgresql+psycopg://postgres@127.0.0.1:$running/postgres"
      exit 0
    fi
    if [ ! -f "$dir/.edgevit-postgres" ]; then
      made=0; [ -e "$dir" ] || made=1
      mkdir -p "$dir"
      # what `stop` gives back: whether this script made the folder, and its owner before
      printf 'made=%s\nowner=%s\n' "$made" "$(stat -c %u:%g "$dir")" > "$dir/.edgevit-postgres"
    fi
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then
      chown postgres "$dir"
      su postgres -s /bin/bash -c "test -w '$dir'" || {
        echo "postgres.sh: the postgres user cannot reach $dir (a parent folder is private); choose a folder under /tmp" >&2
        exit 2; }
    fi
    [ -f "$dir/data/PG_VERSION" ] || as_pg "'$initdb' -D '$dir/data' -A trust -U postgres >'$dir/initdb.log' 2>&1"
    as_pg "'$pg_ctl' -D '$dir/data' -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1\" -l '$dir/log' -w start" >/dev/null \
      || { echo "postgres.sh: the server did not start on port $port (in use?); see $dir/log, or give another PORT" >&2; exit 2; }
    echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    if [ ! -f "$dir/.edgevit-postgres" ]; then
      echo "postgres.sh: $dir is not a cluster this script started (no .edgevit-postgres); nothing removed" >&2; exit 2
    fi
    pg_ctl=$(bin_of pg_ctl)
    [ -d "$dir/data" ] && as_pg "'$pg_ctl' -D '$dir/data' -m fast -w stop" >/dev/null 2>&1 || true
    made=$(sed -n 's/^made=//p' "$dir/.edgevit-postgres"); owner=$(sed -n 's/^owner=//p' "$dir/.edgevit-postgres")
    rm -rf "$dir/data" "$dir/log" "$dir/initdb.log" "$dir/.edgevit-postgres" "$dir"/.s.PGSQL.*
    if [ "$made" = 1 ]; then
      rmdir "$dir" 2>/dev/null || true   # kept if anything else was put there
    elif [ -n "$owner" ] && [ "$(id -u)" = 0 ]; then
      chown "$owner" "$dir"              # the user's own folder, as it was
    fi
    ;;
  *) echo "usage: postgres.sh start|stop DIR [PORT]" >&2; exit 2 ;;
esac
