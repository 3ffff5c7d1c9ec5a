# `scripts/bench queue`: sourced by scripts/bench after scripts/lib/services.sh.
#
# Three parts, each against its peers in the same run, on one private Redis
# and one private PostgreSQL (loopback only):
#  1. queue overhead: jobs/s one worker completes at concurrency 1 and 32 on
#     BENCH_JOBS jobs released at once: `geoctl agent` (its own per-job work —
#     monitor lookup, recording, metrics — with checks that succeed at once),
#     a bare bullmq-official worker with an empty processor (the ceiling),
#     BullMQ's Node worker (npm bullmq) and its Python worker (PyPI bullmq);
#  2. end to end: real HTTP checks/s one agent runs and records against a
#     local HTTP server, with the agent's CPU time and peak RSS;
#  3. scale (BENCH_SCALE=0 skips it): BENCH_SCALE_MONITORS monitors × 3
#     regions at a 1-minute interval for BENCH_SCALE_MINUTES minutes, one
#     agent per region: runs recorded once / twice / missed, p50/p99 start
#     lateness, agents' CPU and RSS, PostgreSQL's CPU.
#
# BENCH_JOBS (5000), BENCH_SCALE_MONITORS (10000), BENCH_SCALE_MINUTES (5) and
# BENCH_PROFILE (release) change the sizes and the build; BENCH_QUEUE_PARTS
# (overhead,e2e,scale) picks the parts. BENCH_AGENT_BASELINE=PATH adds an
# overhead row and an end-to-end run for another geoctl binary (e.g. one built
# from an earlier commit), measured in the same run.
#
# `scripts/bench queue --cost` runs none of those parts but the cost of one no-op
# job at concurrency 32 (bench_queue_cost below): BENCH_COST_JOBS (2000) per
# callgrind run, BENCH_COST_CPU_JOBS (10000) per native run.

BENCH_JOBS=${BENCH_JOBS:-5000}
# `dev` gives quick but slower (unoptimised geoctl) figures; they are labelled so.
BENCH_PROFILE=${BENCH_PROFILE:-release}
BENCH_SCALE=${BENCH_SCALE:-1}
BENCH_SCALE_MONITORS=${BENCH_SCALE_MONITORS:-10000}
BENCH_SCALE_MINUTES=${BENCH_SCALE_MINUTES:-5}
# Which parts run, comma-separated.
BENCH_QUEUE_PARTS=${BENCH_QUEUE_PARTS:-overhead,e2e,scale}

BENCH_COST_JOBS=${BENCH_COST_JOBS:-2000}
BENCH_COST_CPU_JOBS=${BENCH_COST_CPU_JOBS:-10000}

source scripts/lib/runs.sh

_bq_pids=()
_bq_work=""
declare -gA _bq_logs=()

# Stops what the run started. A run that failed keeps its processes' logs in
# target/bench/queue-logs-<time>/ (the work directory goes), and every process
# that had died before the end is reported with its exit status or signal:
# an agent gone mid-run must leave its cause behind.
bq_cleanup() {
  local status=$? pid code kept
  for pid in "${_bq_pids[@]}"; do
    process_running "$pid" && continue
    code=0
    wait "$pid" 2>/dev/null || code=$?
    printf '%s (pid %s) had exited before the end of the run: %s\n' "$(bq_what "$pid")" "$pid" "$(bq_exit_text "$code")" >&2
    # A process that failed makes the run a failed one, whose logs are kept.
    [ "$code" -eq 0 ] || [ "$status" -ne 0 ] || status=1
  done
  for pid in "${_bq_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${_bq_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  _bq_pids=()
  stop_services
  if [ -n "$_bq_work" ]; then
    if [ "$status" -ne 0 ]; then
      kept="target/bench/queue-logs-$(date -u +%Y%m%dT%H%M%SZ)"
      mkdir -p "$kept"
      cp "$_bq_work"/*.log "$kept"/ 2>/dev/null || true
      echo "the run failed; the logs of its processes are kept in $kept" >&2
    fi
    rm -rf "$_bq_work"
  fi
}

# Background process whose PID and log are kept for cleanup; sets BQ_PID.
bq_start() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  BQ_PID=$!
  _bq_pids+=("$BQ_PID")
  _bq_logs[$BQ_PID]=$log
}

# What PID is, for people: its log's name (agent-scale-us-east, …) or "process".
bq_what() {
  local log=${_bq_logs[$1]:-}
  if [ -n "$log" ]; then basename "$log" .log; else echo process; fi
}

bq_exit_text() {
  if [ "$1" -gt 128 ]; then echo "killed by SIG$(kill -l $(($1 - 128)) 2>/dev/null || echo $(($1 - 128)))"; else echo "exit status $1"; fi
}

# runs.sh's helpers (which read /proc/PID) call this when their process is gone: name it and show its log's end.
on_process_gone() {
  local log=${_bq_logs[$1]:-}
  echo "$(bq_what "$1") (pid $1) is no longer running${log:+; the end of its log $log:}" >&2
  [ -z "$log" ] || tail -n 20 "$log" | sed 's/^/   | /' >&2
}

bq_stop() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  # Reaped: the cleanup must not wait for it again (bash complains of a PID it no longer knows).
  local pid kept=()
  for pid in "${_bq_pids[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  _bq_pids=("${kept[@]}")
}

bq_install() {
  command -v redis-server >/dev/null || apt_install redis-server
  pg_bindir >/dev/null
  command -v node >/dev/null || apt_install nodejs
  command -v npm >/dev/null || apt_install npm
  log "installing npm bullmq into $_bq_work"
  npm install --silent --prefix "$_bq_work/node" bullmq@6 ioredis@5 >/dev/null
  source scripts/lib/python_bullmq.sh
  setup_python_bullmq "${CARGO_TARGET_DIR:-target}/python-bullmq"
  BQ_PYTHON=${GEOCTL_TEST_PYTHON:?PyPI bullmq could not be installed}
  mkdir -p "$_bq_work/py"
  cat >"$_bq_work/node/worker.js" <<'EOF'
const { Worker } = require('bullmq');
const [url, queue, concurrency] = process.argv.slice(2);
const u = new URL(url);
const worker = new Worker(queue, async () => null,
  { connection: { host: u.hostname, port: Number(u.port), db: Number(u.pathname.slice(1) || 0) },
    concurrency: Number(concurrency) });
process.on('SIGTERM', async () => { await worker.close(); process.exit(0); });
EOF
  cat >"$_bq_work/py/worker.py" <<'EOF'
import asyncio, signal, sys
from bullmq import Worker

async def process(job, token):
    return None

async def main():
    url, queue, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
    worker = Worker(queue, process, {"connection": url, "concurrency": concurrency})
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await worker.close()

asyncio.run(main())
EOF
}

bq_build() {
  log "building geoctl, benches/queue and benches/probe ($BENCH_PROFILE profile)"
  local artifacts=$_bq_work/build.json
  cargo build --profile "$BENCH_PROFILE" --locked --bin geoctl --bench queue --bench probe \
    --message-format=json-render-diagnostics >"$artifacts"
  GEOCTL_BIN=$(artifact "$artifacts" geoctl bin)
  QUEUE_BENCH=$(artifact "$artifacts" queue bench)
  PROBE_BENCH=$(artifact "$artifacts" probe bench)
  [ -x "$GEOCTL_BIN" ] && [ -x "$QUEUE_BENCH" ] && [ -x "$PROBE_BENCH" ] \
    || { echo "build produced no executables" >&2; return 1; }
}

geoctl() {
  "$GEOCTL_BIN" "$@"
}

# agent_cmd CONCURRENCY REGION PORT [extra…]: the agent's command line.
agent_cmd() {
  local concurrency=$1 region=$2 port=$3
  shift 3
  echo "$GEOCTL_BIN" agent --region "$region" --concurrency "$concurrency" --listen "127.0.0.1:$port" \
    --spool-dir "$_bq_work/spool-$region-$port" "$@"
}

wait_ready() {
  local port=$1 tries=${2:-200}
  for _ in $(seq 1 "$tries"); do
    "$GEOCTL_BIN" agent health --url "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "agent on port $port never became ready" >&2
  return 1
}

# overhead_run WORKER CONCURRENCY -> prints "jobs/s worker-µs redis-µs postgres-µs": the rate, and
# the CPU each process spent per job from the release to the last completion.
overhead_run() {
  local worker=$1 concurrency=$2 queue=monitor-eu-west port
  "$QUEUE_BENCH" fill --redis "$REDIS_URL" --queue "$queue" --jobs "$BENCH_JOBS" --monitors "$BENCH_MONITOR" 2>/dev/null
  case $worker in
    agent|baseline)
      # `fill` starts job ids at 1 again, so the run keys of an earlier run would make every write
      # of this one a duplicate that writes nothing: each agent run starts from empty tables.
      psql_q "TRUNCATE monitor_results, regional_performance_metrics, regional_monitor_summaries"
      port=$(free_port)
      local bin=$GEOCTL_BIN
      [ "$worker" = agent ] || GEOCTL_BIN=$BENCH_AGENT_BASELINE
      # shellcheck disable=SC2046
      bq_start "$_bq_work/$worker-$concurrency.log" $(agent_cmd "$concurrency" eu-west "$port" --instant-probe)
      wait_ready "$port"
      GEOCTL_BIN=$bin
      ;;
    bare) bq_start "$_bq_work/bare.log" "$QUEUE_BENCH" bare --redis "$REDIS_URL" --queue "$queue" --concurrency "$concurrency" ;;
    node) bq_start "$_bq_work/node.log" node "$_bq_work/node/worker.js" "$REDIS_URL" "$queue" "$concurrency" ;;
    python) bq_start "$_bq_work/python.log" "$BQ_PYTHON" "$_bq_work/py/worker.py" "$REDIS_URL" "$queue" "$concurrency" ;;
  esac
  local pid=$BQ_PID rate w0 r0 p0
  sleep 1
  w0=$(cpu_tree_of "$pid") r0=$(cpu_of "$BQ_REDIS_PID") p0=$(cpu_tree_of "$BQ_PG_PID")
  rate=$("$QUEUE_BENCH" release --redis "$REDIS_URL" --queue "$queue" --jobs "$BENCH_JOBS" \
    | sed -n 's/.*"jobs_per_s":\([0-9.]*\).*/\1/p')
  awk -v rate="$rate" -v n="$BENCH_JOBS" -v w="$w0 $(cpu_tree_of "$pid")" -v r="$r0 $(cpu_of "$BQ_REDIS_PID")" \
    -v p="$p0 $(cpu_tree_of "$BQ_PG_PID")" 'function us(d,  a) { split(d, a, " "); return (a[2] - a[1]) * 1e6 / n }
    BEGIN { if (rate == "") exit; printf "%.0f %.0f %.0f %.0f", rate, us(w), us(r), us(p) }'
  bq_stop "$pid"
}

bench_queue_overhead() {
  log "part 1: queue overhead, $BENCH_JOBS no-op jobs per run"
  printf '\n1. Queue overhead: jobs/s completed, %s jobs released at once, same Redis\n' "$BENCH_JOBS"
  printf '   %-44s %8s %8s   %s\n' worker "conc. 1" "conc. 32" "CPU µs/job, worker+Redis+PostgreSQL: at 1 | at 32"
  local worker label one many split1 split32 bare32="" agent32=""
  local workers=(bare agent)
  [ -z "${BENCH_AGENT_BASELINE:-}" ] || workers+=(baseline)
  workers+=(node python)
  for worker in "${workers[@]}"; do
    case $worker in
      bare) label="bullmq-official, empty processor (ceiling)" ;;
      agent) label="geoctl agent (lookup, record, metrics)" ;;
      baseline) label="geoctl agent, BENCH_AGENT_BASELINE binary" ;;
      node) label="BullMQ Node (npm bullmq 6), empty processor" ;;
      python) label="BullMQ Python (PyPI bullmq), empty processor" ;;
    esac
    read -r one split1 <<<"$(overhead_run "$worker" 1)"
    read -r many split32 <<<"$(overhead_run "$worker" 32)"
    printf '   %-44s %8s %8s   %s | %s\n' "$label" "$one" "$many" "$(cpu_split "$split1")" "$(cpu_split "$split32")"
    printf '{"part":"overhead","worker":"%s","c1":%s,"c32":%s,"cpu_us_per_job_c1":%s,"cpu_us_per_job_c32":%s}\n' \
      "$worker" "${one:-null}" "${many:-null}" "$(cpu_json "$split1")" "$(cpu_json "$split32")" >>"$BQ_JSON"
    [ "$worker" != bare ] || bare32=$many
    [ "$worker" != agent ] || agent32=$split32
  done
  # What the 32-in-flight target leaves per job: every process here shares these cores, so at the
  # target rate (80 % of the bare worker's) a job may cost at most cores / rate of CPU in all.
  if [ -n "$bare32" ] && [ -n "$agent32" ]; then
    awk -v bare="$bare32" -v cores="$(nproc)" -v s="$agent32" 'BEGIN { split(s, a, " "); target = bare * 0.8
      printf "   at 32, 80 %% of the ceiling is %.0f jobs/s: %d cores then leave %.0f µs of CPU per job, all processes\n", target, cores, cores * 1e6 / target
      printf "   together; the agent'"'"'s jobs took %.0f (agent %.0f, Redis %.0f, PostgreSQL %.0f)\n", a[1] + a[2] + a[3], a[1], a[2], a[3] }'
  fi
}

# cpu_split "W R P" -> "W+R+P=T"; cpu_json "W R P" -> {"worker":W,"redis":R,"postgres":P}
cpu_split() {
  [ -n "$1" ] || { echo -; return; }
  awk -v s="$1" 'BEGIN { split(s, a, " "); printf "%d+%d+%d=%d", a[1], a[2], a[3], a[1] + a[2] + a[3] }'
}
cpu_json() {
  [ -n "$1" ] || { echo null; return; }
  awk -v s="$1" 'BEGIN { split(s, a, " "); printf "{\"worker\":%d,\"redis\":%d,\"postgres\":%d}", a[1], a[2], a[3] }'
}

bench_queue_e2e() {
  log "part 2: end to end, real HTTP checks"
  local http_port monitors=() i worker
  http_port=$(free_port)
  bq_start "$_bq_work/http.log" "$PROBE_BENCH" serve-http --listen "127.0.0.1:$http_port" --lifetime-secs 900
  for i in $(seq 1 20); do
    monitors+=("$(geoctl monitor create --name "e2e-$i" --type http --target "http://127.0.0.1:$http_port/e2e/$i" \
      --every 1d --regions eu-west -o json 2>>"$_bq_work/create.log" | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' | head -n 1)")
  done
  local list
  list=$(IFS=,; echo "${monitors[*]}")
  printf '\n2. End to end: HTTP checks run and recorded by one agent (concurrency 32), local server\n'
  local workers=(agent)
  [ -z "${BENCH_AGENT_BASELINE:-}" ] || workers+=(baseline)
  for worker in "${workers[@]}"; do
    e2e_run "$worker" "$list" "${monitors[@]}"
  done
}

# e2e_run WORKER LIST MONITOR…: one end-to-end run of the agent (or the BENCH_AGENT_BASELINE one).
e2e_run() {
  local worker=$1 list=$2 port pid cpu0 cpu1 rate
  shift 2
  # `fill` starts job ids at 1 again: an earlier run's run keys would make this run's writes duplicates.
  psql_q "TRUNCATE monitor_results, regional_performance_metrics, regional_monitor_summaries"
  "$QUEUE_BENCH" fill --redis "$REDIS_URL" --queue monitor-eu-west --jobs "$BENCH_JOBS" --monitors "$list" 2>/dev/null
  port=$(free_port)
  local bin=$GEOCTL_BIN
  [ "$worker" = agent ] || GEOCTL_BIN=$BENCH_AGENT_BASELINE
  # shellcheck disable=SC2046
  bq_start "$_bq_work/$worker-e2e.log" $(agent_cmd 32 eu-west "$port")
  pid=$BQ_PID
  wait_ready "$port"
  GEOCTL_BIN=$bin
  cpu0=$(cpu_of "$pid")
  rate=$("$QUEUE_BENCH" release --redis "$REDIS_URL" --queue monitor-eu-west --jobs "$BENCH_JOBS" \
    | sed -n 's/.*"jobs_per_s":\([0-9.]*\).*/\1/p' | awk '{ printf "%.0f", $1 }')
  cpu1=$(cpu_of "$pid")
  local rss recorded
  rss=$(rss_of "$pid")
  bq_stop "$pid"
  recorded=$(psql_q "SELECT count(*) FROM monitor_results WHERE monitor_id IN ($(printf "'%s'," "$@" | sed 's/,$//'))")
  printf '   %-9s %s checks/s; agent CPU %s s for %s checks; peak RSS %s MiB; %s results recorded\n' "$worker" \
    "$rate" "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')" "$BENCH_JOBS" "$rss" "$recorded"
  printf '{"part":"e2e","worker":"%s","checks_per_s":%s,"cpu_s":%s,"rss_mib":%s,"recorded":%s}\n' "$worker" "${rate:-null}" \
    "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')" "${rss:-null}" "${recorded:-null}" >>"$BQ_JSON"
}

bench_queue_scale() {
  local n=$BENCH_SCALE_MONITORS minutes=$BENCH_SCALE_MINUTES region port pids=() pg_pid i
  log "part 3: scale, $n monitors x 3 regions every minute for $minutes minutes"
  monitors_yaml "$n" scale "http://127.0.0.1:$BQ_HTTP_PORT/s" 1m >"$_bq_work/scale.yaml"
  geoctl monitor apply -f "$_bq_work/scale.yaml" >/dev/null 2>"$_bq_work/scale-apply.log"
  pg_pid=$(head -n 1 "$BQ_PGDATA/postmaster.pid")
  local pg_cpu0 start_ms end_ms
  pg_cpu0=$(cpu_tree_of "$pg_pid")
  declare -A cpu0
  for region in us-east eu-west ap-south; do
    port=$(free_port)
    # shellcheck disable=SC2046
    bq_start "$_bq_work/agent-scale-$region.log" $(agent_cmd 64 "$region" "$port")
    pids+=("$BQ_PID")
    cpu0[$BQ_PID]=$(cpu_of "$BQ_PID")
  done
  start_ms=$(( $(date +%s%3N) + 60000 ))
  sleep $(( minutes * 60 + 60 ))
  end_ms=$(( $(date +%s%3N) - 60000 ))
  # An agent that died mid-run makes every figure below wrong: name each one, then fail the run
  # (bq_cleanup reports how each exited and keeps the logs).
  local dead=0
  for pid in "${pids[@]}"; do require_running "$pid" || dead=1; done
  if [ "$dead" = 1 ]; then
    echo "the scale run lost an agent before its end; no figures for it" >&2
    return 1
  fi
  printf '\n3. Scale: %s monitors x 3 regions at 1 min, %s min, one agent per region (concurrency 64)\n' "$n" "$minutes"
  local cpu rss
  for pid in "${pids[@]}"; do
    cpu=$(awk -v a="${cpu0[$pid]}" -v b="$(cpu_of "$pid")" 'BEGIN { printf "%.1f", b - a }')
    rss=$(rss_of "$pid")
    printf '   agent pid %s: CPU %s s, peak RSS %s MiB\n' "$pid" "$cpu" "$rss"
    bq_stop "$pid"
  done
  printf '   PostgreSQL (postmaster and its backends) CPU %s s\n' \
    "$(awk -v a="$pg_cpu0" -v b="$(cpu_tree_of "$pg_pid")" 'BEGIN { printf "%.1f", b - a }')"
  # Runs scheduled in the window [start, end] and what was recorded for them. Each (monitor,
  # region) runs every 60 s in a phase of its own (the spread), so a series is complete when its
  # runs are exactly 60 s apart: (last - first) / 60 s + 1 runs.
  psql_q "
    WITH runs AS (
$(runs_cte "$start_ms" "$end_ms")),
    series AS (
      SELECT monitor, region, count(*) AS runs, (max(due) - min(due)) / 60000 + 1 AS due_runs
      FROM runs GROUP BY monitor, region)
    SELECT format('   runs recorded: %s, recorded twice: %s, missed inside a series: %s; series: %s of %s (monitors x regions)',
                  (SELECT count(*) FROM runs), (SELECT count(*) FROM runs WHERE n > 1),
                  (SELECT sum(due_runs - runs) FROM series), (SELECT count(*) FROM series), $n * 3)
           || format(E'\n   start lateness p50 %s ms, p99 %s ms, max %s ms',
                  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY started - due)),
                  round(percentile_cont(0.99) WITHIN GROUP (ORDER BY started - due)),
                  round(max(started - due)))
    FROM runs"
}

# cost_worker WORKER CONCURRENCY [WRAPPER…]: starts the worker under test (agent, baseline or
# bare; under WRAPPER, e.g. valgrind) on an empty queue and waits until it is ready; sets BQ_PID.
cost_worker() {
  local worker=$1 concurrency=$2 port
  shift 2
  case $worker in
    agent|baseline)
      port=$(free_port)
      local bin=$GEOCTL_BIN
      [ "$worker" = agent ] || GEOCTL_BIN=$BENCH_AGENT_BASELINE
      # shellcheck disable=SC2046
      bq_start "$_bq_work/cost-$worker.log" "$@" $(agent_cmd "$concurrency" eu-west "$port" --instant-probe)
      # Under valgrind the agent starts some fifty times slower.
      wait_ready "$port" 1200
      GEOCTL_BIN=$bin
      ;;
    bare) bq_start "$_bq_work/cost-bare.log" "$@" "$QUEUE_BENCH" bare --redis "$REDIS_URL" --queue monitor-eu-west \
      --concurrency "$concurrency" ;;
  esac
  # The worker's connections and its first (empty) waits; the bare worker has no readiness to ask.
  sleep 3
}

# cost_wait_recorded WORKER N: the N jobs recorded by the agent (none for the bare worker), waiting for the
# recorder's last batch, which lands after the queue has seen the job complete.
cost_wait_recorded() {
  local worker=$1 n=$2
  [ "$worker" != bare ] || return 0
  for _ in $(seq 1 600); do
    [ "$(psql_q "/* bench */ SELECT count(*) FROM monitor_results")" -ge "$n" ] && return 0
    sleep 0.1
  done
  echo "the agent recorded fewer than $n results in 60 s" >&2
  return 1
}

# The cost of one no-op job at concurrency 32, for the bare worker, the agent and the
# BENCH_AGENT_BASELINE agent, each measured the same way in this run:
#  - natively over BENCH_COST_CPU_JOBS jobs: CPU time of the worker, Redis and PostgreSQL (its
#    backends), Redis commands per job from `INFO commandstats` (scripts apart; the commands the
#    scripts run inside Redis are counted by Redis too), PostgreSQL statements and rows per job
#    from pg_stat_statements;
#  - under callgrind over BENCH_COST_JOBS jobs: the worker's instructions, a run with no job
#    (start, the same wait, stop) subtracted.
bench_queue_cost() {
  local concurrency=32 queue=monitor-eu-west worker workers=(bare agent)
  [ -z "${BENCH_AGENT_BASELINE:-}" ] || workers+=(baseline)
  local n=$BENCH_COST_CPU_JOBS jobs=$BENCH_COST_JOBS
  log "cost: $n jobs natively and $jobs under callgrind per worker, concurrency $concurrency"
  printf '\nCost per no-op job at concurrency %s: CPU µs over %s jobs (native); instructions over %s jobs\n' \
    "$concurrency" "$n" "$jobs"
  printf '(callgrind, start-up subtracted); Redis calls and PostgreSQL statements over the native run\n'
  printf '   %-9s %12s %7s %9s %9s %9s %9s %9s %9s %9s\n' worker "instr/job" "x bare" "CPU wkr" "Redis" "Postgres" \
    "scripts" "Redis cmd" "PG stmt" "PG rows"
  declare -A instr=()
  local details=""
  for worker in "${workers[@]}"; do
    # Native: CPU and round trips.
    [ "$worker" = bare ] || psql_q "TRUNCATE monitor_results, regional_performance_metrics, regional_monitor_summaries"
    "$QUEUE_BENCH" fill --redis "$REDIS_URL" --queue "$queue" --jobs "$n" --monitors "$BENCH_MONITOR" 2>/dev/null
    cost_worker "$worker" "$concurrency"
    local pid=$BQ_PID w0 r0 p0 w1 r1 p1 calls=$_bq_work/commandstats-$worker
    psql_q "SELECT pg_stat_statements_reset()" >/dev/null
    w0=$(cpu_tree_of "$pid") r0=$(cpu_of "$BQ_REDIS_PID") p0=$(cpu_tree_of "$BQ_PG_PID")
    "$QUEUE_BENCH" release --redis "$REDIS_URL" --queue "$queue" --jobs "$n" --commandstats "$calls" >/dev/null
    cost_wait_recorded "$worker" "$n"
    w1=$(cpu_tree_of "$pid") r1=$(cpu_of "$BQ_REDIS_PID") p1=$(cpu_tree_of "$BQ_PG_PID")
    local statements
    statements=$(psql_q "/* bench */ SELECT calls, rows, regexp_replace(query, '\s+', ' ', 'g') FROM pg_stat_statements
      WHERE query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%/* bench */%' ORDER BY calls DESC")
    bq_stop "$pid"

    # Callgrind: the same worker with no job, then with $jobs jobs.
    local file=$BENCH_COST_DIR/queue-$worker.out zero full
    "$QUEUE_BENCH" fill --redis "$REDIS_URL" --queue "$queue" --jobs 0 --monitors "$BENCH_MONITOR" 2>/dev/null
    # shellcheck disable=SC2046
    cost_worker "$worker" "$concurrency" $(callgrind_cmd "$file.zero")
    bq_stop "$BQ_PID"
    [ "$worker" = bare ] || psql_q "TRUNCATE monitor_results, regional_performance_metrics, regional_monitor_summaries"
    "$QUEUE_BENCH" fill --redis "$REDIS_URL" --queue "$queue" --jobs "$jobs" --monitors "$BENCH_MONITOR" 2>/dev/null
    # shellcheck disable=SC2046
    cost_worker "$worker" "$concurrency" $(callgrind_cmd "$file")
    "$QUEUE_BENCH" release --redis "$REDIS_URL" --queue "$queue" --jobs "$jobs" --timeout-secs 1200 >/dev/null
    cost_wait_recorded "$worker" "$jobs"
    bq_stop "$BQ_PID"
    zero=$(callgrind_total "$file.zero") full=$(callgrind_total "$file")
    instr[$worker]=$(per_unit "$full" "$zero" "$jobs")

    local scripts commands pg_calls pg_rows
    us() { awk -v a="$1" -v b="$2" -v n="$n" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }'; }
    scripts=$(awk -v n="$n" '$1 ~ /^(evalsha|eval|evalsha_ro|eval_ro|fcall|fcall_ro)$/ { s += $2 } END { printf "%.3f", s / n }' "$calls")
    commands=$(awk -v n="$n" '{ s += $2 } END { printf "%.2f", s / n }' "$calls")
    pg_calls=$(awk -F'|' -v n="$n" '{ s += $1 } END { printf "%.3f", s / n }' <<<"$statements")
    pg_rows=$(awk -F'|' -v n="$n" '{ s += $2 } END { printf "%.3f", s / n }' <<<"$statements")
    printf '   %-9s %12s %7s %9s %9s %9s %9s %9s %9s %9s\n' "$worker" "${instr[$worker]}" \
      "$(awk -v a="${instr[$worker]}" -v b="${instr[bare]}" 'BEGIN { printf "%.2f", a / b }')" \
      "$(us "$w0" "$w1")" "$(us "$r0" "$r1")" "$(us "$p0" "$p1")" "$scripts" "$commands" "$pg_calls" "$pg_rows"
    printf '{"part":"cost","worker":"%s","concurrency":%s,"instructions_per_job":%s,"jobs":%s,"cpu_jobs":%s,"cpu_us_per_job":{"worker":%s,"redis":%s,"postgres":%s},"redis_scripts_per_job":%s,"redis_calls_per_job":%s,"pg_statements_per_job":%s,"pg_rows_per_job":%s}\n' \
      "$worker" "$concurrency" "${instr[$worker]}" "$jobs" "$n" "$(us "$w0" "$w1")" "$(us "$r0" "$r1")" "$(us "$p0" "$p1")" \
      "$scripts" "$commands" "$pg_calls" "$pg_rows" >>"$BQ_JSON"
    details+=$(printf '\n   %s — Redis calls per job by command (inside scripts too):' "$worker")
    details+=$(awk -v n="$n" '{ printf "  %s %.3f", $1, $2 / n }' "$calls")
    if [ -n "$statements" ]; then
      details+=$(printf '\n   %s — PostgreSQL statements (calls/job, rows/job, statement):' "$worker")
      details+=$(awk -F'|' -v n="$n" '{ q = $3; if (length(q) > 90) q = substr(q, 1, 87) "..."
        printf "\n     %7.3f %7.3f  %s", $1 / n, $2 / n, q }' <<<"$statements")
    fi
  done
  printf '   instr/job: the worker process; CPU: µs per job of the worker, Redis and PostgreSQL; scripts and Redis cmd:\n'
  printf '   Redis calls per job (cmd: all, inside scripts too); PG: statements and rows per job (pg_stat_statements)\n'
  printf '   targets: agent instr/job ≤ 2x bare; scripts ≤ bare'"'"'s; ≤ 2 statements per batch; PostgreSQL ≤ 57 µs/job\n'
  printf '%s\n' "$details"
  printf '\n   agent, top functions by inclusive instructions (share of the run, start-up included;\n'
  printf '   whole profile: callgrind_annotate %s)\n' "$BENCH_COST_DIR/queue-agent.out"
  callgrind_top "$BENCH_COST_DIR/queue-agent.out" "${BENCH_COST_TOP:-40}"
  printf '\n   and by their own (self) instructions\n'
  callgrind_top "$BENCH_COST_DIR/queue-agent.out" 20 no
}

bench_queue() {
  local cost=0
  case "${1:-}" in
    --cost) cost=1 ;;
    "") ;;
    *) echo "scripts/bench queue: unknown option $1 (--cost is the only one)" >&2; return 2 ;;
  esac
  require_cargo
  _bq_work=$(mktemp -d /tmp/geoctl-bench-queue.XXXXXX)
  chmod 755 "$_bq_work"
  trap bq_cleanup EXIT
  trap 'exit 130' INT TERM
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  mkdir -p target/bench
  BQ_JSON=target/bench/queue.jsonl
  : >"$BQ_JSON"

  if [ "$cost" = 1 ]; then
    source scripts/lib/bench_cost.sh
    cost_install
    # Only Redis and PostgreSQL: no Node or Python peer runs here.
    command -v redis-server >/dev/null || apt_install redis-server
    pg_bindir >/dev/null
    # Statements per job come from pg_stat_statements, loaded into this instance only.
    PG_SERVER_OPTIONS="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_utility=on"
    bq_build
  else
    bq_install
    bq_build
  fi
  start_postgres "$_bq_work/pg"
  BQ_PGDATA="$_bq_work/pg/data"
  start_redis "$_bq_work/redis"
  BQ_REDIS_PID=$(cat "$_bq_work/redis/redis.pid")
  BQ_PG_PID=$(head -n 1 "$BQ_PGDATA/postmaster.pid")
  export DATABASE_URL
  export REDIS_URL_US_EAST="${REDIS_URL%/*}/1" REDIS_URL_EU_WEST="${REDIS_URL%/*}/0" REDIS_URL_AP_SOUTH="${REDIS_URL%/*}/2"
  REDIS_URL=$REDIS_URL_EU_WEST
  geoctl db migrate >/dev/null
  BENCH_MONITOR=$(geoctl monitor create --name bench-noop --type http --target http://127.0.0.1:9/ --every 1d \
    --regions eu-west -o json | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' | head -n 1)

  printf 'geoctl queue benchmark — %s, %s cores, load %s, %s build, %s\n' "$(uname -m)" "$(nproc)" \
    "$(cut -d' ' -f1 /proc/loadavg)" "$BENCH_PROFILE" "$(date -u +%FT%TZ)"
  if [ "$cost" = 1 ]; then
    psql_q "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
    bench_queue_cost
    echo "JSON lines: $BQ_JSON; profiles: $BENCH_COST_DIR/queue-*.out"
    return
  fi
  case ",$BENCH_QUEUE_PARTS," in *,overhead,*) bench_queue_overhead ;; esac
  case ",$BENCH_QUEUE_PARTS," in *,e2e,*) bench_queue_e2e ;; esac
  BQ_HTTP_PORT=$(free_port)
  bq_start "$_bq_work/http-scale.log" "$PROBE_BENCH" serve-http --listen "127.0.0.1:$BQ_HTTP_PORT" --lifetime-secs 3600
  if [ "$BENCH_SCALE" = 1 ]; then
    case ",$BENCH_QUEUE_PARTS," in *,scale,*) bench_queue_scale ;; esac
  fi
  echo "JSON lines: $BQ_JSON"
}
