# Docker Engine in a single-node swarm, for tests and the quickstart.
# Sourced after scripts/lib/services.sh (for log and apt_install).
#
# ensure_docker installs Debian's docker.io when dockerd is missing, starts
# dockerd when none answers, and initialises a swarm (through the Engine API,
# not the docker CLI) when the engine is in none. stop_docker undoes only
# what ensure_docker did: it leaves the swarm it made and stops the dockerd it
# started. An engine given through DOCKER_HOST is used as it is.

_started_dockerd=""
_started_swarm=0
_docker_sock=/var/run/docker.sock

# The Engine API over the local socket: METHOD PATH [JSON BODY].
docker_api() {
  local method=$1 path=$2 body=${3:-}
  if [ -n "$body" ]; then
    curl -fsS --unix-socket "$_docker_sock" -X "$method" -H 'Content-Type: application/json' -d "$body" "http://localhost$path"
  else
    curl -fsS --unix-socket "$_docker_sock" -X "$method" "http://localhost$path"
  fi
}

ensure_docker() {
  local logdir=$1
  if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST#unix://}" = "$DOCKER_HOST" ]; then
    log "using the Docker Engine at $DOCKER_HOST"
    return 0
  fi
  _docker_sock=${DOCKER_HOST:-unix:///var/run/docker.sock}
  _docker_sock=${_docker_sock#unix://}
  command -v curl >/dev/null || apt_install curl ca-certificates >/dev/null
  if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    apt_install docker.io >/dev/null
  fi
  if ! docker_api GET /_ping >/dev/null 2>&1; then
    log "starting dockerd"
    mkdir -p "$logdir"
    dockerd --host "unix://$_docker_sock" >"$logdir/dockerd.log" 2>&1 &
    _started_dockerd=$!
    for _ in $(seq 1 120); do
      docker_api GET /_ping >/dev/null 2>&1 && break
      if ! kill -0 "$_started_dockerd" 2>/dev/null; then
        echo "dockerd exited; its log:" >&2
        tail -n 30 "$logdir/dockerd.log" >&2
        return 1
      fi
      sleep 0.5
    done
    docker_api GET /_ping >/dev/null || { echo "dockerd did not answer within 60 s" >&2; return 1; }
  fi
  local state
  state=$(docker_api GET /info | sed -n 's/.*"LocalNodeState":"\([a-z]*\)".*/\1/p')
  if [ "$state" != "active" ]; then
    log "initialising a single-node swarm"
    local addr
    addr=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
    docker_api POST /swarm/init "{\"ListenAddr\":\"0.0.0.0:2377\",\"AdvertiseAddr\":\"${addr:-127.0.0.1}\"}" >/dev/null
    _started_swarm=1
  fi
  export DOCKER_HOST="unix://$_docker_sock"
}

stop_docker() {
  if [ "$_started_swarm" = 1 ]; then
    docker_api POST '/swarm/leave?force=true' >/dev/null 2>&1 || true
    _started_swarm=0
  fi
  if [ -n "$_started_dockerd" ]; then
    kill "$_started_dockerd" 2>/dev/null || true
    wait "$_started_dockerd" 2>/dev/null || true
    _started_dockerd=""
  fi
}

# The gateway address of the Swarm bridge (docker_gwbridge): an address of
# this host that every task reaches through its default route, so services
# listening there (with passwords) serve the tasks. Empty when the engine is
# not local or not in a swarm.
#
# The engine makes the bridge a moment after it joins a swarm (for the ingress
# network's sandbox), not during /swarm/init: right after ensure_docker
# initialised one, the bridge is not there yet. So it waits for it, up to
# DOCKER_GWBRIDGE_WAIT seconds (60), and fails saying so when it never comes.
docker_gateway() {
  local wait=${DOCKER_GWBRIDGE_WAIT:-60} state network gateway deadline
  if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST#unix://}" = "$DOCKER_HOST" ]; then
    return 0
  fi
  state=$(docker_api GET /info | sed -n 's/.*"LocalNodeState":"\([a-z]*\)".*/\1/p')
  [ "$state" = "active" ] || return 0
  deadline=$((SECONDS + wait))
  while :; do
    if network=$(docker_api GET /networks/docker_gwbridge 2>/dev/null); then
      gateway=$(sed -n 's/.*"Gateway":"\([0-9.]*\)".*/\1/p' <<<"$network")
      if [ -n "$gateway" ]; then
        echo "$gateway"
        return 0
      fi
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "the engine is in a swarm but its docker_gwbridge network did not appear within ${wait} s" \
        "(it makes it soon after joining); see \`docker network ls\` and the engine's log," \
        "or raise DOCKER_GWBRIDGE_WAIT if the engine is just slow" >&2
      return 1
    fi
    sleep 0.5
  done
}
