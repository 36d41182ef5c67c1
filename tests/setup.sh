#!/usr/bin/env bash
# What the test suite needs on this machine, set up when missing. `make test` runs it before
# pytest (`eval "$(tests/setup.sh)"`); it is idempotent and prints nothing when all is there.
#
#   programs   redis-server, chromium, nginx, ffmpeg/ffprobe, node/npm: apt-get installs the
#              missing ones when run as root, otherwise it names them and fails.
#   PostgreSQL NVE_TEST_PG when set; else 127.0.0.1:5432 (as root, a Debian cluster on 5432 is
#              started when it is down); else a throwaway cluster of its own on a spare port
#              (NVE_TEST_PG=embedded asks for that one directly), kept running for the next run.
#   npm        tests/openapi's and perf/peers/node-http's pinned packages (npm ci when
#              package-lock.json is newer).
#
# The tests start their own redis-server (tests/conftest.py), so only the binary is needed.
# stdout is shell for the caller to eval (`export NVE_TEST_PG=...` for the throwaway cluster);
# every message goes to stderr. `tests/setup.sh stop` stops the throwaway cluster.
#
# Usage: tests/setup.sh [PYTHON | stop]    PYTHON: the venv's interpreter (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
exec 3>&1 1>&2 # fd 3: the shell the caller evals; everything else to stderr

say() { echo "tests/setup.sh: $*" >&2; }
ROOT=false
[ "$(id -u)" = 0 ] && ROOT=true
PY=.venv/bin/python
ACTION=setup
case "${1:-}" in
  stop) ACTION=stop ;;
  "") ;;
  *) PY=$1 ;;
esac

# The throwaway cluster: data, password and port under PGSTATE; as root it runs as an
# unprivileged user (PostgreSQL refuses root), so PGSTATE is only traversable by others.
PGSTATE=${NVE_TEST_PG_DIR:-${TMPDIR:-/tmp}/nve-test-pg-$(id -u)}
PGDATA_DIR=$PGSTATE/data
PGUSER_OS=
if $ROOT; then PGUSER_OS=$(id -u postgres >/dev/null 2>&1 && echo postgres || echo nobody); fi
# The server outlives this script: it must inherit neither the lock (fd 9) nor the caller's
# pipe (fd 3, read by `$(tests/setup.sh)` until every writer is gone).
as_pg() { if [ -n "$PGUSER_OS" ]; then runuser -u "$PGUSER_OS" -- "$@" 3>&- 9>&-; else "$@" 3>&- 9>&-; fi; }

# pg_ctl and friends: Debian's newest PostgreSQL, else the ones pgserver (a dependency) ships.
pg_bindir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
  done
  dir=$("$PY" -c 'import importlib.util, pathlib
spec = importlib.util.find_spec("pgserver")
print(pathlib.Path(spec.origin).parent / "pginstall" / "bin")' 2>/dev/null) || return 1
  [ -x "$dir/pg_ctl" ] && echo "$dir"
}

if [ "$ACTION" = stop ]; then
  if [ -f "$PGDATA_DIR/postmaster.pid" ] && bin=$(pg_bindir); then
    as_pg "$bin/pg_ctl" stop -D "$PGDATA_DIR" -m fast -s && say "stopped the throwaway PostgreSQL in $PGDATA_DIR"
  fi
  exit 0
fi

# --- programs ----------------------------------------------------------------------------
missing=() packages=()
need() { # need PROGRAM PACKAGE [PATH]: PATH is where the tests look for it when not on PATH
  command -v "$1" >/dev/null 2>&1 || { [ -n "${3:-}" ] && [ -x "$3" ]; } && return 0
  missing+=("$1")
  [[ " ${packages[*]} " == *" $2 "* ]] || packages+=("$2")
}
need redis-server redis-server
need chromium chromium /usr/bin/chromium # tests/ui launches /usr/bin/chromium
need nginx nginx /usr/sbin/nginx         # tests/cluster
need ffmpeg ffmpeg                       # makes the media tests' real-world samples
need ffprobe ffmpeg                      # the independent decoder that checks outputs
need node npm                            # tests/ws (the JS client), openapi-typescript
need npm npm
if [ ${#missing[@]} -gt 0 ]; then
  if $ROOT && command -v apt-get >/dev/null; then
    say "installing ${packages[*]} (for ${missing[*]})"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
  else
    say "the tests need programs that are not installed: ${missing[*]}"
    say "install them (Debian: sudo apt-get install -y ${packages[*]}), or run make test as root, which does"
    exit 1
  fi
fi

# --- PostgreSQL --------------------------------------------------------------------------
pg_usable() { # pg_usable DSN: connects and may create databases
  "$PY" - "$1" >/dev/null 2>&1 <<'EOF'
import asyncio, sys
import asyncpg

async def main() -> None:
    connection = await asyncpg.connect(sys.argv[1], timeout=3)
    try:
        assert await connection.fetchval("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
    finally:
        await connection.close()

asyncio.run(main())
EOF
}

free_port() {
  "$PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A throwaway cluster of ours (initdb on first use): trust on its socket only, a random
# password over TCP (no other local user gets a superuser), fsync off (it holds test data).
embedded_dsn() {
  local bin port password version
  bin=$(pg_bindir) || { say "no PostgreSQL binaries (neither Debian's postgresql nor pgserver in $PY)"; return 1; }
  version=$("$bin/postgres" --version | sed -E 's/.* ([0-9]+)[.0-9]*.*/\1/')
  mkdir -p "$PGSTATE"
  chmod "$($ROOT && echo 711 || echo 700)" "$PGSTATE"
  exec 9>"$PGSTATE/lock"
  flock 9 # one make test at a time sets it up
  if [ -f "$PGDATA_DIR/PG_VERSION" ] && [ "$(cat "$PGDATA_DIR/PG_VERSION")" != "$version" ]; then
    as_pg "$bin/pg_ctl" stop -D "$PGDATA_DIR" -m fast -s 2>/dev/null || true
    rm -rf "$PGDATA_DIR" # made by another PostgreSQL version; it only ever holds test databases
  fi
  if [ ! -f "$PGDATA_DIR/PG_VERSION" ] || [ ! -s "$PGSTATE/password" ]; then
    rm -rf "$PGDATA_DIR"
    password=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
    (umask 077; printf '%s\n' "$password" >"$PGSTATE/password")
    mkdir -m 700 "$PGDATA_DIR"
    local pwfile=$PGSTATE/pwfile
    (umask 077; printf '%s\n' "$password" >"$pwfile")
    if [ -n "$PGUSER_OS" ]; then chown "$PGUSER_OS" "$PGDATA_DIR" "$pwfile"; fi
    as_pg "$bin/initdb" -D "$PGDATA_DIR" -U postgres --pwfile="$pwfile" --auth-local=trust \
      --auth-host=scram-sha-256 --encoding=UTF8 --no-locale --no-sync >"$PGSTATE/initdb.log" 2>&1 \
      || { say "initdb failed, see $PGSTATE/initdb.log"; return 1; }
    rm -f "$pwfile"
  fi
  password=$(cat "$PGSTATE/password")
  if ! as_pg "$bin/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1; then
    port=$(cat "$PGSTATE/port" 2>/dev/null || true)
    if [ -z "$port" ] || (exec 8<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then port=$(free_port); fi
    as_pg "$bin/pg_ctl" start -D "$PGDATA_DIR" -w -t 60 -s -l "$PGDATA_DIR/server.log" \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $PGDATA_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >&2 \
      || { say "PostgreSQL did not start, see $PGDATA_DIR/server.log"; return 1; }
    echo "$port" >"$PGSTATE/port"
    say "started a throwaway PostgreSQL $version on 127.0.0.1:$port (data in $PGDATA_DIR; stop: tests/setup.sh stop)"
  fi
  port=$(cat "$PGSTATE/port")
  echo "postgresql://postgres:$password@127.0.0.1:$port/postgres"
}

DEFAULT_PG=postgresql://postgres@127.0.0.1:5432/postgres
if [ -n "${NVE_TEST_PG:-}" ] && [ "$NVE_TEST_PG" != embedded ]; then
  pg_usable "$NVE_TEST_PG" || { say "cannot connect to NVE_TEST_PG ($NVE_TEST_PG) as a role that may create databases"; exit 1; }
else
  if [ -z "${NVE_TEST_PG:-}" ] && ! pg_usable "$DEFAULT_PG" && $ROOT && command -v pg_lsclusters >/dev/null; then
    # The machine's own cluster on 5432, when it is installed but down.
    read -r version name status < <(pg_lsclusters -h | awk '$3 == 5432 {print $1, $2, $4; exit}') || true
    if [ -n "${version:-}" ] && [ "$status" != online ]; then
      pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start
      for _ in $(seq 50); do pg_usable "$DEFAULT_PG" && break; sleep 0.2; done
    fi
  fi
  if [ -n "${NVE_TEST_PG:-}" ] || ! pg_usable "$DEFAULT_PG"; then
    dsn=$(embedded_dsn) || exit 1
    pg_usable "$dsn" || { say "the throwaway PostgreSQL in $PGDATA_DIR does not answer; tests/setup.sh stop and retry"; exit 1; }
    echo "export NVE_TEST_PG='$dsn'" >&3 # hex password: nothing to quote
  fi
fi

# --- npm ---------------------------------------------------------------------------------
for dir in tests/openapi perf/peers/node-http perf/peers/node-ws; do # the perf smoke tests' Node peers too
  if [ ! "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
  fi
done
