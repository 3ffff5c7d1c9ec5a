# scripts/bench deploy: three regional stacks deployed by geoctl and by the
# docker CLI (`docker stack deploy` of the same rendered files), fresh and
# unchanged, in the same run: seconds to converged and services updated.
# Sourced by scripts/bench after services.sh and docker.sh.

# Seconds since the epoch, with fractions.
_now() { date +%s.%N; }
_since() { echo "$(_now) - $1" | bc -l | xargs printf '%.2f'; }

# Polls `docker stack services` until every service runs all its replicas.
_cli_wait() {
  local stack=$1
  for _ in $(seq 1 1200); do
    local lines
    lines=$(docker stack services "$stack" --format '{{.Replicas}}' 2>/dev/null || true)
    if [ -n "$lines" ] && ! echo "$lines" | awk -F/ '$1 != $2 {bad=1} END {exit !bad}'; then
      # Replicas match; an update in progress still has to finish.
      local updating
      updating=$(docker service ls -q --filter "label=com.docker.stack.namespace=$stack" |
        xargs -r docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' | grep -c updating || true)
      [ "$updating" = 0 ] && return 0
    fi
    sleep 0.1
  done
  echo "stack $stack did not converge" >&2
  return 1
}

# Sum of the stack's service versions: an update bumps it.
_versions() {
  docker service ls -q --filter "label=com.docker.stack.namespace=$1" |
    xargs -r docker service inspect --format '{{.ID}} {{.Version.Index}}' | sort
}

_updated() { diff <(echo "$1") <(echo "$2") | grep -c '^>' || true; }

bench_deploy() {
  command -v bc >/dev/null || apt_install bc >/dev/null
  _bench_work=$(mktemp -d /tmp/geoctl-bench-deploy.XXXXXX); chmod 755 "$_bench_work"
  local work=$_bench_work
  _bench_cleanup() {
    cd "$_bench_work" 2>/dev/null || true
    for code in us-east eu-west ap-south; do
      docker stack rm "bench-cli-$code" >/dev/null 2>&1 || true
      geoctl stack rm --region "$code" --volumes --yes >/dev/null 2>&1 || true
    done
    # docker stack rm leaves volumes; remove the CLI stacks' once their containers are gone.
    for _ in $(seq 1 120); do
      [ -z "$(docker ps -aq --filter label=com.docker.stack.namespace 2>/dev/null | head -n 1)" ] && break
      sleep 0.5
    done
    docker volume ls -q --filter name=bench-cli- | xargs -r docker volume rm >/dev/null 2>&1 || true
    [ -n "${node:-}" ] && for code in us-east eu-west ap-south; do
      geoctl node label "$node" --region "$code" --label "geoctl-bench-$code" --remove >/dev/null 2>&1 || true
    done
    docker image rm -f "${_bench_tag:-none}" >/dev/null 2>&1 || true
    stop_docker; stop_services; rm -rf "$_bench_work"
  }
  trap _bench_cleanup EXIT
  start_postgres "$work/pg"
  ensure_docker "$work/docker"
  log "building geoctl"
  cargo build --quiet
  export PATH="${CARGO_TARGET_DIR:-$PWD/target}/debug:$PATH"
  cd "$work"
  local tag="geoctl-bench:$(date +%s)"
  _bench_tag=$tag
  {
    echo "database_url: $DATABASE_URL"
    echo "regions:"
    for code in us-east eu-west ap-south; do
      cat <<YAML
  $code:
    redis_url: redis://127.0.0.1:6379/0
    stack:
      name: bench-geoctl-$code
      image: $tag
      replicas: 2
      placement_label: geoctl-bench-$code
      cpus_reservation: "0.01"
      memory_reservation: 8M
YAML
    done
  } >geoctl.yaml
  geoctl db migrate >/dev/null
  log "geoctl image build --tag $tag"
  geoctl image build --tag "$tag" >/dev/null
  node=$(geoctl node ls -o json | sed -n 's/.*"id": "\([^"]*\)".*/\1/p' | head -n 1)
  local templates=""
  # The deploy is measured, not the agent: the same stack with a task that stays up with no Redis
  # or PostgreSQL it can reach (a real agent here would crash-loop on loopback addresses).
  if true; then
    mkdir -p templates
    sed -e 's|^    command: .*|    command: ["geoctl", "probe", "--type", "ping", "127.0.0.1", "--count", "100", "--timeout", "2m"]|' \
        -e 's|"agent", "health"\]|"--version"]|' -e 's|stop_grace_period: 30s|stop_grace_period: 1s|' \
        -e 's|start_period: 20s|start_period: 1s|' -e 's|interval: 15s|interval: 1s|' \
        "$OLDPWD/templates/stack.yml.tera" >templates/stack.yml.tera
    templates="--templates $work/templates"
  fi
  for code in us-east eu-west ap-south; do
    geoctl node label "$node" --region "$code" --label "geoctl-bench-$code" >/dev/null 2>&1
  done

  local out=() t
  for code in us-east eu-west ap-south; do
    t=$(_now); geoctl stack deploy --region "$code" $templates -o json >"$code.fresh.json"
    local fresh; fresh=$(_since "$t")
    local before; before=$(_versions "bench-geoctl-$code")
    t=$(_now); geoctl stack deploy --region "$code" $templates -o json >"$code.noop.json"
    local noop; noop=$(_since "$t")
    local after; after=$(_versions "bench-geoctl-$code")
    out+=("geoctl      $code  fresh ${fresh}s  no-op ${noop}s  services updated by no-op: $(_updated "$before" "$after")")
    # The same rendered file, through the docker CLI, under another stack name.
    geoctl stack render --region "$code" $templates | sed "s/bench-geoctl-$code/bench-cli-$code/g" >"$code.yml"
    # The secrets are external; give the CLI's stack its own copies of geoctl's.
    for name in $(sed -n 's/^    name: \(bench-cli-[^ ]*\)$/\1/p' "$code.yml"); do
      echo bench | docker secret create "$name" - >/dev/null 2>&1 || true
    done
    t=$(_now); docker stack deploy --resolve-image never -c "$code.yml" "bench-cli-$code" >/dev/null; _cli_wait "bench-cli-$code"
    local cfresh; cfresh=$(_since "$t")
    before=$(_versions "bench-cli-$code")
    t=$(_now); docker stack deploy --resolve-image never -c "$code.yml" "bench-cli-$code" >/dev/null; sleep 1; _cli_wait "bench-cli-$code"
    local cnoop; cnoop=$(_since "$t")
    after=$(_versions "bench-cli-$code")
    out+=("docker CLI  $code  fresh ${cfresh}s  no-op ${cnoop}s  services updated by no-op: $(_updated "$before" "$after")")
  done
  printf '%s\n' "${out[@]}"
  cd "$OLDPWD"
}

# scripts/bench deploy --swarms 3: each region a Swarm of its own on the TLS test bed
# (scripts/lib/testbed.sh), with real agents (PostgreSQL and a Redis per region on the bed's
# host address). `geoctl region init --all` fresh and then unchanged, against `docker stack
# deploy --detach=false` of the same rendered files on each engine in turn, through the docker
# CLI with DOCKER_HOST and its TLS flags: seconds to converged and services updated by the no-op.
bench_deploy_swarms() {
  command -v bc >/dev/null || apt_install bc >/dev/null
  command -v docker >/dev/null || apt_install docker.io >/dev/null
  _bench_work=$(mktemp -d /tmp/geoctl-bench-swarms.XXXXXX); chmod 755 "$_bench_work"
  local work=$_bench_work
  local regions=(us-east eu-west ap-south)
  _bench_cleanup() {
    testbed_down "$_bench_work/testbed"
    stop_services; rm -rf "$_bench_work"
  }
  trap _bench_cleanup EXIT
  testbed_up "$work/testbed" 3
  local engines
  mapfile -t engines <"$work/testbed/hosts"
  local addr=$TESTBED_HOST_ADDR
  new_password "$work/secrets/postgres"
  start_postgres "$work/pg" "" "$addr" "$work/secrets/postgres"
  psql "$DATABASE_URL" -qc "CREATE DATABASE geoctl_bench"
  (umask 077; echo "postgres://geoctl:$(cat "$work/secrets/postgres")@$addr:${DATABASE_URL##*:}" |
    sed 's|/postgres$|/geoctl_bench|' >"$work/secrets/database_url")
  log "building geoctl"
  cargo build --quiet
  export PATH="${CARGO_TARGET_DIR:-$PWD/target}/debug:$PATH"
  local tag="geoctl-bench:$(date +%s)" i=0
  {
    echo "stack:"
    echo "  image: $tag"
    echo "  replicas: 1"
    echo "  cpus_reservation: \"0.01\""
    echo "  memory_reservation: 8M"
    echo "regions:"
    for code in "${regions[@]}"; do
      new_password "$work/secrets/redis-$code"
      start_redis "$work/redis-$code" "" "$addr" "$work/secrets/redis-$code"
      cat <<YAML
  $code:
    redis_url: $REDIS_TASK_URL
    redis_password_file: $work/secrets/redis-$code
    docker_host: ${engines[$i]}
    docker_cert_path: $TESTBED_CERTS
YAML
      i=$((i + 1))
    done
  } >"$work/geoctl.yaml"
  export GEOCTL_CONFIG=$work/geoctl.yaml DATABASE_URL_FILE=$work/secrets/database_url
  unset DATABASE_URL
  geoctl db migrate >/dev/null
  log "geoctl image build --tag $tag --all"
  geoctl image build --tag "$tag" --all >/dev/null 2>&1

  local t fresh noop out=()
  t=$(_now); geoctl region init --all --timeout 5m >"$work/init.fresh.log" 2>&1; fresh=$(_since "$t")
  t=$(_now); geoctl region init --all --timeout 5m >"$work/init.noop.log" 2>&1; noop=$(_since "$t")
  local updated; updated=$({ grep -o "[0-9]* of [0-9]* service(s) changed" "$work/init.noop.log" || true; } | awk '{s += $1} END {print s + 0}')
  out+=("geoctl region init --all   3 engines  fresh ${fresh}s (agents healthy and heartbeating)  no-op ${noop}s  services updated by no-op: $updated")

  # The docker CLI: the same rendered files, under other stack names, one engine after another.
  local cfresh=0 cnoop=0 cupdated=0
  i=0
  for code in "${regions[@]}"; do
    export DOCKER_HOST=${engines[$i]} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$TESTBED_CERTS
    # The same file under another stack name: its secrets are geoctl's (external), its network
    # the stack's own; only the spool volumes, named after the stack, get the CLI stack's name.
    geoctl stack render --region "$code" | sed "s/\"geoctl-${code}_spool-/\"cli-${code}_spool-/" >"$work/$code.yml"
    t=$(_now)
    docker stack deploy --detach=false --resolve-image never -c "$work/$code.yml" "cli-$code" >/dev/null 2>&1 ||
      docker stack deploy --resolve-image never -c "$work/$code.yml" "cli-$code" >/dev/null
    _cli_wait "cli-$code"
    cfresh=$(echo "$cfresh + $(_since "$t")" | bc -l)
    local before after
    before=$(_versions "cli-$code")
    t=$(_now)
    docker stack deploy --detach=false --resolve-image never -c "$work/$code.yml" "cli-$code" >/dev/null 2>&1 ||
      docker stack deploy --resolve-image never -c "$work/$code.yml" "cli-$code" >/dev/null
    _cli_wait "cli-$code"
    cnoop=$(echo "$cnoop + $(_since "$t")" | bc -l)
    after=$(_versions "cli-$code")
    cupdated=$((cupdated + $(_updated "$before" "$after")))
    unset DOCKER_HOST DOCKER_TLS_VERIFY DOCKER_CERT_PATH
    i=$((i + 1))
  done
  out+=("$(printf 'docker stack deploy x 3  3 engines  fresh %.2fs (tasks running)  no-op %.2fs  services updated by no-op: %s' "$cfresh" "$cnoop" "$cupdated")")
  printf '%s\n' "${out[@]}"
  mkdir -p "$OLDPWD/target/bench" 2>/dev/null || true
}
