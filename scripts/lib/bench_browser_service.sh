# `scripts/bench synthetic`, browser service part (alone: `scripts/bench
# synthetic --browser-service`): journeys per minute of one replica of a
# region's browser service at the stack's default limits (1 CPU, 768M memory,
# 256M /dev/shm, the default browser concurrency), and the task's peak memory
# per concurrent journey, against Playwright running the same journey on the
# same Debian Chromium in the same run, in a cgroup of its own with the same
# CPU and memory limits and as many journeys at a time.
#
# The region (`bench`) gets its own PostgreSQL and Redis on the Swarm bridge's
# gateway, its own images (`image build`, plain and --with-browser), stack
# name and placement label; BENCH_BROWSER_SERVICE_MONITORS (16) browser
# monitors every 10 s keep the replica's slots full (the queue's waiting jobs
# are sampled to show it) while BENCH_BROWSER_SERVICE_SECONDS (180) are
# measured: journeys recorded in that window (checked_at), and the peak of the
# task's memory cgroup (the kernel's peak of what is charged, page cache
# included, and the sampled peak of anonymous + shared memory). Playwright then
# runs journeys back to back for as long, each in a fresh browser as the agent
# runs them. The page is the one the driver bench uses, served on the gateway.
#
# Sourced after scripts/lib/services.sh, scripts/lib/docker.sh and
# scripts/lib/bench_browser.sh. Needs root (cgroups, Docker). Build: debug
# unless BENCH_RELEASE=1 (the figures say which). Everything it made (stack,
# node label, images, cgroups, servers, files) is removed on exit, also on
# failure. Writes target/bench/synthetic_browser_service.json.

_bsvc=()   # what to undo, as words: kind:value

bench_browser_service_cleanup() {
  local item i node code label
  # Undo in reverse order of making.
  for ((i = ${#_bsvc[@]} - 1; i >= 0; i--)); do
    item=${_bsvc[i]}
    case $item in
      pid:*) kill "${item#pid:}" 2>/dev/null || true; wait "${item#pid:}" 2>/dev/null || true ;;
      region:*) geoctl region destroy "${item#region:}" --volumes --yes >/dev/null 2>&1 \
        || log "WARNING: geoctl region destroy ${item#region:} failed; see docker stack ls" ;;
      label:*) IFS=, read -r node code label <<<"${item#label:}"
        geoctl node label "$node" --region "$code" --label "$label" --remove >/dev/null 2>&1 || true ;;
      image:*) docker_api DELETE "/images/${item#image:}?force=true" >/dev/null 2>&1 || true ;;
      cgroup:*) python3 scripts/lib/bench_browser/cgroup.py rm ${item#cgroup:} 2>/dev/null || true ;;
      services) stop_services ;;
      docker) stop_docker ;;
      dir:*) rm -rf "${item#dir:}" ;;
    esac
  done
  _bsvc=()
}

bench_synthetic_browser_service() {
  require_cargo
  [ "$(id -u)" -eq 0 ] || { echo "the browser service bench needs root (Docker, cgroups)" >&2; return 2; }
  local seconds=${BENCH_BROWSER_SERVICE_SECONDS:-180} monitors=${BENCH_BROWSER_SERVICE_MONITORS:-16}
  local target=${CARGO_TARGET_DIR:-$PWD/target} here=scripts/lib/bench_browser build=debug
  local id code=bench work gateway node_dir node pw_mem pw_cpu
  id=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
  local stack=geoctl-bench-browser-$id label=geoctl-bench-browser-$id
  local image=geoctl-bench-browser:$id browser_image=geoctl-bench-browser:$id-browser
  trap bench_browser_service_cleanup EXIT
  trap 'exit 130' INT TERM

  node_dir=$(bench_playwright_dir)
  local build_args=()
  [ "${BENCH_RELEASE:-0}" = 1 ] && { build_args=(--release); build=release; }
  log "building geoctl ($build)"
  cargo build --locked --quiet --bin geoctl "${build_args[@]}"
  export PATH="$target/$build:$PATH"

  work=$(mktemp -d /tmp/geoctl-bench-browser-service.XXXXXX)
  chmod 755 "$work"
  _bsvc+=("dir:$work")
  ensure_docker "$work/docker"
  _bsvc+=(docker)
  gateway=$(docker_gateway)
  [ -n "$gateway" ] || { echo "the engine has no docker_gwbridge network: a local engine in a swarm is needed" >&2; return 1; }

  # PostgreSQL and Redis of the region, on loopback and the gateway (passwords in files).
  mkdir -p "$work/secrets"
  chmod 700 "$work/secrets"
  new_password "$work/secrets/postgres"
  new_password "$work/secrets/redis"
  _bsvc+=(services)
  start_postgres "$work/pg" "" "$gateway" "$work/secrets/postgres"
  local pg_url=$DATABASE_URL
  (umask 077; echo "$DATABASE_TASK_URL" >"$work/secrets/database_url")
  start_redis "$work/redis" "" "$gateway" "$work/secrets/redis"
  local redis_port=${_started_redis[-1]}
  unset DATABASE_URL DATABASE_TASK_URL REDIS_URL REDIS_TASK_URL
  export DATABASE_URL_FILE=$work/secrets/database_url GEOCTL_CONFIG=$work/geoctl.yaml
  # The stack's browser limits are left at their defaults: those are what is measured.
  cat >"$GEOCTL_CONFIG" <<YAML
regions:
  $code:
    redis_url: redis://$gateway:$redis_port/0
    redis_password_file: $work/secrets/redis
    stack:
      name: $stack
      placement_label: $label
      image: $image
      replicas: 1
      cpus_reservation: "0.01"
      memory_reservation: 8M
      browser_replicas: 1
      browser_image: $browser_image
YAML
  geoctl db migrate >/dev/null
  log "geoctl image build: $image and $browser_image (--with-browser)"
  _bsvc+=("image:$image" "image:$browser_image")
  geoctl image build --tag "$image" --label geoctl-bench=browser-service >/dev/null
  geoctl image build --with-browser --tag "$browser_image" --label geoctl-bench=browser-service >/dev/null
  geoctl region add "$code" --name "Browser service bench" >/dev/null
  node=$(geoctl node ls -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
  _bsvc+=("label:$node,$code,$label" "region:$code")
  log "geoctl region init $code (stack $stack)"
  geoctl region init "$code" --timeout 5m >/dev/null
  local live=0
  for _ in $(seq 1 120); do
    live=$(geoctl queue status --region "$code" -o json | python3 -c '
import json, sys
print(next((e.get("live_agents", 0) for e in json.load(sys.stdin) if e.get("queue") == sys.argv[1]), 0))' "browser-$code")
    [ "$live" = 1 ] && break
    sleep 1
  done
  [ "$live" = 1 ] || { echo "no live browser agent on browser-$code after 120 s (docker service logs ${stack}_browser)" >&2; return 1; }
  local limits
  limits=$(docker service inspect "${stack}_browser" | python3 -c '
import json, sys
spec = json.load(sys.stdin)[0]["Spec"]["TaskTemplate"]
lim = spec.get("Resources", {}).get("Limits", {})
shm = next((m["TmpfsOptions"]["SizeBytes"] for m in spec["ContainerSpec"].get("Mounts", []) if m["Target"] == "/dev/shm"), None)
print(json.dumps({"cpus": lim.get("NanoCPUs", 0) / 1e9 or None, "memory_mib": lim.get("MemoryBytes", 0) // 1048576 or None,
                  "shm_mib": shm // 1048576 if shm else None}))')
  log "browser service limits: $limits"

  # The page, where the task reaches this host; the same journey as Playwright's.
  local port url
  cp "$here/journey.html" "$work/journey.html"
  port=$(free_port)
  python3 -m http.server "$port" --bind "$gateway" --directory "$work" >/dev/null 2>&1 &
  _bsvc+=("pid:$!")
  url=http://$gateway:$port/journey.html
  for _ in $(seq 50); do curl -fsS -o /dev/null "$url" 2>/dev/null && break; sleep 0.1; done
  cat >"$work/journey.yaml" <<YAML
steps:
  - name: journey
    browser:
      - goto: "$url"
      - click: "#load"
      - wait_for: "#result"
YAML
  local i
  for i in $(seq 1 "$monitors"); do
    geoctl monitor create --name "bench-journey-$i" --type synthetic --script "$work/journey.yaml" \
      --every 10s --timeout 10s --regions "$code" --force >/dev/null 2>"$work/monitor.err" \
      || { cat "$work/monitor.err" >&2; return 1; }
  done
  log "$monitors browser monitors every 10 s on $code; waiting for the first journey"
  local first=0
  for _ in $(seq 1 180); do
    first=$(psql "$pg_url" -tAc "SELECT count(*) FROM monitor_results")
    [ "$first" -gt 0 ] && break
    sleep 1
  done
  [ "$first" -gt 0 ] || { echo "no journey recorded within 180 s (docker service logs ${stack}_browser)" >&2; return 1; }

  # The task's memory cgroup, sampled from now on (its kernel peak covers the task's life).
  local container memdir
  container=$(docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_browser" --filter status=running | head -n 1)
  memdir=$(python3 "$here/cgroup.py" memdir "$(docker inspect --format '{{.State.Pid}}' "$container")")
  python3 "$here/cgroup.py" sample "$memdir" "$work/task-memory.json" &
  local task_sampler=$!
  _bsvc+=("pid:$task_sampler")
  sleep 15   # past the first journeys' start-up
  local t0 t1
  t0=$(psql "$pg_url" -tAc "SELECT clock_timestamp()")
  log "measuring ${seconds}s; the browser queue's waiting and active jobs sampled every 2 s"
  : >"$work/queue.txt"
  local end=$((SECONDS + seconds))
  while [ "$SECONDS" -lt "$end" ]; do
    echo "$(redis_cli "$redis_port" LLEN "bull:browser-$code:wait") $(redis_cli "$redis_port" LLEN "bull:browser-$code:active")" >>"$work/queue.txt"
    sleep 2
  done
  t1=$(psql "$pg_url" -tAc "SELECT clock_timestamp()")
  kill "$task_sampler"
  wait "$task_sampler" || true
  sleep 20   # journeys that started in the window are recorded
  psql "$pg_url" -tAc "SELECT json_build_object(
      'journeys', count(*) FILTER (WHERE r.is_up), 'failures', count(*) FILTER (WHERE NOT r.is_up),
      'journey_ms_p50', percentile_cont(0.5) WITHIN GROUP (ORDER BY r.response_time_ms) FILTER (WHERE r.is_up),
      'seconds', extract(epoch FROM '$t1'::timestamptz - '$t0'::timestamptz))
    FROM monitor_results r JOIN monitors m ON m.id = r.monitor_id
    WHERE m.name LIKE 'bench-journey-%' AND r.checked_at >= '$t0' AND r.checked_at < '$t1'" >"$work/task.json"

  # The agent's journeys at a time, as it says at start (the queue's active count is no
  # measure of it: a job taken while the last one's result is written shows as one more).
  local concurrency
  concurrency=$(docker service logs "${stack}_browser" 2>&1 | sed -n 's/.*agent started.* concurrency=\([0-9]*\).*/\1/p' | head -n 1)
  [ -n "$concurrency" ] || { echo "the browser agent's log names no concurrency (docker service logs ${stack}_browser)" >&2; return 1; }
  # Tear the region down before Playwright runs, so it has the CPU to itself as the task had.
  geoctl region destroy "$code" --volumes --yes >/dev/null
  _bsvc=("${_bsvc[@]/#region:$code/}")

  local cg cpu_limit mem_limit
  cpu_limit=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["cpus"])' "$limits")
  mem_limit=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["memory_mib"] * 1048576)' "$limits")
  cg=$(python3 "$here/cgroup.py" make "geoctl-bench-playwright-$id" "$cpu_limit" "$mem_limit")
  _bsvc+=("cgroup:$cg")
  read -r pw_mem pw_cpu <<<"$cg"
  log "Playwright: $concurrency journeys at a time for ${seconds}s in a cgroup of $cpu_limit CPU and $((mem_limit / 1048576))M"
  python3 "$here/cgroup.py" sample "$pw_mem" "$work/playwright-memory.json" &
  local pw_sampler=$!
  _bsvc+=("pid:$pw_sampler")
  PLAYWRIGHT_CORE=$node_dir/node_modules/playwright-core CHROMIUM=$(command -v chromium) \
    python3 "$here/cgroup.py" run "$pw_mem" "$pw_cpu" -- node "$here/playwright_journey.js" "$url" "$concurrency" "$seconds" \
    >"$work/playwright.json"
  kill "$pw_sampler"
  wait "$pw_sampler" || true

  mkdir -p "$target/bench"
  python3 - "$work" "$target/bench/synthetic_browser_service.json" "$build" "$limits" "$concurrency" "$monitors" \
    "$(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$node_dir/node_modules/playwright-core/package.json")" \
    "$(chromium --version 2>/dev/null)" <<'PY'
import json, sys
work, out, build, limits, concurrency, monitors, pw_version, chromium = sys.argv[1:9]
limits, concurrency = json.loads(limits), int(concurrency)
queue = [tuple(map(int, l.split())) for l in open(f"{work}/queue.txt") if l.strip()]
task = json.load(open(f"{work}/task.json"))
task_mem = json.load(open(f"{work}/task-memory.json"))
pw = json.loads(open(f"{work}/playwright.json").read().strip().splitlines()[-1])
pw_mem = json.load(open(f"{work}/playwright-memory.json"))

def side(runs, mem):
    per_min = runs["journeys"] * 60 / runs["seconds"] if runs["seconds"] else None
    return {**runs, "journeys_per_min": per_min, "memory": mem,
            "peak_charged_mib_per_journey": mem["peak_charged_mib"] / concurrency,
            "peak_anon_shmem_mib_per_journey": mem["peak_anon_shmem_mib"] / concurrency}

result = {
    "build": build, "limits": limits, "concurrency": concurrency, "monitors_every_10s": monitors,
    "playwright_core": pw_version, "chromium": chromium,
    "queue_waiting_min": min(w for w, _ in queue), "queue_waiting_max": max(w for w, _ in queue),
    "geoctl_task": side(task, task_mem), "playwright": side(pw, pw_mem),
}
json.dump(result, open(out, "w"), indent=1)
print(f"browser service, 1 replica at {limits['cpus']} CPU, {limits['memory_mib']}M, /dev/shm {limits['shm_mib']}M; "
      f"{concurrency} journeys at a time; geoctl {build} build; {chromium}; Playwright {pw_version} in a cgroup of the same limits")
print(f"browser queue waiting while measured: {result['queue_waiting_min']}..{result['queue_waiting_max']} jobs (saturated if the minimum is > 0)")
print(f"{'':<12}{'journeys/min':>14}{'failed':>8}{'p50 ms':>8}{'peak charged MiB':>18}{'per journey':>13}{'peak anon+shm MiB':>19}{'per journey':>13}")
for name, s in (("geoctl task", result["geoctl_task"]), ("playwright", result["playwright"])):
    m = s["memory"]
    p50 = "-" if s["journey_ms_p50"] is None else f"{s['journey_ms_p50']:.0f}"
    print(f"{name:<12}{s['journeys_per_min']:>14.1f}{s['failures']:>8}{p50:>8}{m['peak_charged_mib']:>18.0f}"
          f"{s['peak_charged_mib_per_journey']:>13.0f}{m['peak_anon_shmem_mib']:>19.0f}{s['peak_anon_shmem_mib_per_journey']:>13.0f}")
PY
  bench_browser_service_cleanup
  trap - EXIT INT TERM
}
