# Private PostgreSQL and Redis instances for tests and the quickstart.
# Sourced by scripts/test and scripts/quickstart; not run on its own.
#
# Each start_* function installs the Debian package when the server binary is
# missing, starts a private instance on a free loopback port under the given
# directory, and exports its URL. stop_services stops what was started.

_started_pg_dirs=()
_started_redis=()

log() { printf '==> %s\n' "$*" >&2; }

# A free TCP port on 127.0.0.1.
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$(( 20000 + RANDOM % 30000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

_apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "cannot install $*: apt-get not found; install them by hand" >&2
    return 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "cannot install $*: run as root, or install them by hand" >&2
    return 1
  fi
  if [ "$_apt_updated" = 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    _apt_updated=1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

pg_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
    apt_install postgresql >/dev/null
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  fi
  echo "$dir"
}

# Runs a command as the PostgreSQL owner: `postgres` when we are root
# (the server refuses to run as root), ourselves otherwise.
as_pg_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# start_postgres DIR [PORT] -> exports DATABASE_URL (superuser `geoctl`, trust auth on loopback)
start_postgres() {
  local dir=$1 port=${2:-} bin
  bin=$(pg_bindir)
  [ -n "$port" ] || port=$(free_port)
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg_owner "$bin/initdb" -D "$dir/data" -U geoctl --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; return 1; }
  fi
  as_pg_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
    || { cat "$dir/server.log" >&2; return 1; }
  _started_pg_dirs+=("$dir")
  export DATABASE_URL="postgres://geoctl@127.0.0.1:$port/postgres"
  log "PostgreSQL on 127.0.0.1:$port ($dir)"
}

# start_redis DIR [PORT] -> exports REDIS_URL
start_redis() {
  local dir=$1 port=${2:-}
  command -v redis-server >/dev/null || apt_install redis-server >/dev/null
  [ -n "$port" ] || port=$(free_port)
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no --databases 256 \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
  for _ in $(seq 1 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  _started_redis+=("$port")
  export REDIS_URL="redis://127.0.0.1:$port/0"
  log "Redis on 127.0.0.1:$port ($dir)"
}

stop_services() {
  local dir port bin
  for dir in "${_started_pg_dirs[@]}"; do
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    as_pg_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  done
  for port in "${_started_redis[@]}"; do
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  done
  _started_pg_dirs=()
  _started_redis=()
}

require_cargo() {
  if ! command -v cargo >/dev/null; then
    echo "cargo not found: install a Rust toolchain (1.85 or newer, e.g. with rustup) and run this again" >&2
    return 1
  fi
}
