# A private S3- and Route 53-compatible server (moto, from PyPI) for tests and benchmarks.
# Sourced after scripts/lib/services.sh; not run on its own.
#
# start_moto DIR: creates (or reuses) a virtualenv holding `moto[server]` under
# $GEOCTL_MOTO_VENV (default: <target dir>/moto-venv, kept between runs like
# the build), starts it on a free loopback port, and exports
# GEOCTL_TEST_AWS_ENDPOINT. stop_moto stops it.

_moto_pid=

moto_venv() {
  local venv=${GEOCTL_MOTO_VENV:-${CARGO_TARGET_DIR:-$PWD/target}/moto-venv}
  if [ ! -x "$venv/bin/moto_server" ]; then
    python3 -m venv "$venv" >/dev/null 2>&1 || { apt_install python3-venv python3-pip >/dev/null && python3 -m venv "$venv"; }
    log "installing moto[server] into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]>=5,<6' "$@" >&2
  fi
  echo "$venv"
}

start_moto() {
  local dir=$1 venv port
  venv=$(moto_venv)
  port=$(free_port)
  mkdir -p "$dir"
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
  _moto_pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.2
  done
  export GEOCTL_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
  log "moto (S3, Route 53) on 127.0.0.1:$port"
}

stop_moto() {
  if [ -n "$_moto_pid" ]; then
    kill "$_moto_pid" 2>/dev/null || true
    wait "$_moto_pid" 2>/dev/null || true
    _moto_pid=
  fi
}
