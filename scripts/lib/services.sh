# Private PostgreSQL and Redis instances for tests and the quickstart.
# Sourced first by every entry script (scripts/test, scripts/quickstart,
# scripts/bench); not run on its own.
#
# Each start_* function installs the Debian package when the server binary is
# missing, starts a private instance on a free loopback port under the given
# directory, and exports its URL. stop_services stops what was started.

_started_pg_dirs=()
_started_redis=()
declare -gA _redis_auth_files=()

log() { printf '==> %s\n' "$*" >&2; }

# Every entry script under scripts/ sources this file first, so this is where
# they all learn to say what failed: under `set -euo pipefail` a failing
# command otherwise ends the script without a word. The report names the
# script, the file and line, the line's text (the whole pipeline, where
# $BASH_COMMAND would only name its last part) and the functions it was called
# through. errtrace hands the trap to functions and subshells; a shell whose
# errexit is off (a $(…) substitution, a `set +e` stretch) is not ended by the
# failure, so it stays quiet there and the command that used the substitution
# reports when it fails in turn.
_report_failure() {
  local status=$1 line=$2 command=$3 file=${BASH_SOURCE[1]:-$0} text="" i
  case $- in *e*) ;; *) return 0 ;; esac
  if [ -r "$file" ]; then
    text=$(sed -n "${line}{s/^[[:space:]]*//;p;q}" "$file" 2>/dev/null) || text=""
  fi
  printf '%s: failed (exit %s) at %s:%s: %s\n' "${0##*/}" "$status" "$file" "$line" "${text:-$command}" >&2
  for ((i = 1; i < ${#FUNCNAME[@]} - 1; i++)); do
    printf '  in %s, called from %s:%s\n' "${FUNCNAME[i]}" "${BASH_SOURCE[i + 1]}" "${BASH_LINENO[i]}" >&2
  done
}
set -o errtrace
trap '_report_failure $? "$LINENO" "$BASH_COMMAND"' ERR

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

# start_postgres DIR [PORT [ADDR PASSWORD_FILE]] -> exports DATABASE_URL
# (superuser `geoctl`, trust auth on loopback). With ADDR it also listens on
# ADDR (e.g. the Swarm bridge's gateway, so tasks reach it), where `geoctl`
# must give the password in PASSWORD_FILE (scram-sha-256), and exports
# DATABASE_TASK_URL (postgres://geoctl:PASSWORD@ADDR:PORT/postgres). The
# password goes to psql on stdin, never on a command line. PG_SERVER_OPTIONS
# adds server options (`-c name=value …`) to this instance only.
start_postgres() {
  local dir=$1 port=${2:-} addr=${3:-} password_file=${4:-} bin listen=127.0.0.1
  bin=$(pg_bindir)
  [ -n "$port" ] || port=$(free_port)
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg_owner "$bin/initdb" -D "$dir/data" -U geoctl --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; return 1; }
  fi
  if [ -n "$addr" ]; then
    # PG_EXTRA_LISTEN: more addresses (comma-separated) where it also answers, with the password.
    listen="127.0.0.1,$addr${PG_EXTRA_LISTEN:+,$PG_EXTRA_LISTEN}"
    # initdb's loopback lines (trust) come first; every other address needs the password.
    grep -q '^host all all 0.0.0.0/0 scram-sha-256' "$dir/data/pg_hba.conf" \
      || echo 'host all all 0.0.0.0/0 scram-sha-256' | as_pg_owner tee -a "$dir/data/pg_hba.conf" >/dev/null
  fi
  as_pg_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=$listen -c fsync=off -c max_connections=200 -c password_encryption=scram-sha-256 ${PG_SERVER_OPTIONS:-}" \
    start >/dev/null \
    || { cat "$dir/server.log" >&2; return 1; }
  _started_pg_dirs+=("$dir")
  export DATABASE_URL="postgres://geoctl@127.0.0.1:$port/postgres"
  if [ -n "$addr" ]; then
    pg_set_password "$DATABASE_URL" "$password_file"
    export DATABASE_TASK_URL="postgres://geoctl:$(cat "$password_file")@$addr:$port/postgres"
    log "PostgreSQL on 127.0.0.1:$port and $addr:$port (password) ($dir)"
  else
    log "PostgreSQL on 127.0.0.1:$port ($dir)"
  fi
}

# pg_set_password URL PASSWORD_FILE: the password of the URL's user, read from the file.
pg_set_password() {
  local url=$1 file=$2 password
  password=$(cat "$file")
  case "$password" in *"'"*|*'\'*) echo "the password in $file must not hold quotes or backslashes" >&2; return 1;; esac
  printf "ALTER ROLE CURRENT_USER PASSWORD '%s';\n" "$password" | psql "$url" -q -v ON_ERROR_STOP=1 >/dev/null
}

# new_password FILE: a random password in FILE (0600), kept when FILE exists.
new_password() {
  local file=$1
  [ -s "$file" ] && return 0
  mkdir -p "$(dirname "$file")"
  (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$file")
}

# start_redis DIR [PORT [ADDR PASSWORD_FILE]] -> exports REDIS_URL. With ADDR
# it also listens on ADDR and requires the password in PASSWORD_FILE (on
# loopback too: Redis has one password), which goes into a config file of
# mode 0600, not on a command line; REDIS_URL then holds it, and
# REDIS_TASK_URL is redis://ADDR:PORT/0 (no password: set it apart).
start_redis() {
  local dir=$1 port=${2:-} addr=${3:-} password_file=${4:-}
  command -v redis-server >/dev/null || apt_install redis-server >/dev/null
  [ -n "$port" ] || port=$(free_port)
  mkdir -p "$dir"
  if [ -n "$addr" ]; then
    (umask 077; {
      echo "bind 127.0.0.1 $addr"
      echo "requirepass $(cat "$password_file")"
    } >"$dir/redis.conf")
    redis-server "$dir/redis.conf" --port "$port" --dir "$dir" --save '' --appendonly no --databases 256 \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
    _redis_auth_files[$port]=$password_file
  else
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no --databases 256 \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
  fi
  for _ in $(seq 1 50); do
    redis_cli "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  _started_redis+=("$port")
  if [ -n "$addr" ]; then
    export REDIS_URL="redis://:$(cat "$password_file")@127.0.0.1:$port/0"
    export REDIS_TASK_URL="redis://$addr:$port/0"
    log "Redis on 127.0.0.1:$port and $addr:$port (password) ($dir)"
  else
    export REDIS_URL="redis://127.0.0.1:$port/0"
    log "Redis on 127.0.0.1:$port ($dir)"
  fi
}

# redis_cli PORT ARGS...: redis-cli on a local instance, with its password
# (through REDISCLI_AUTH, not argv) when start_redis set one.
redis_cli() {
  local port=$1
  shift
  local file=${_redis_auth_files[$port]:-}
  if [ -n "$file" ] && [ -f "$file" ]; then
    REDISCLI_AUTH=$(cat "$file") redis-cli -p "$port" "$@"
  else
    redis-cli -p "$port" "$@"
  fi
}

stop_services() {
  local dir port bin
  for dir in "${_started_pg_dirs[@]}"; do
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    as_pg_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  done
  for port in "${_started_redis[@]}"; do
    redis_cli "$port" shutdown nosave >/dev/null 2>&1 || true
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
