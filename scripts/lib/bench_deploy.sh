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
