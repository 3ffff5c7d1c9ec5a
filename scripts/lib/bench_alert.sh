# `scripts/bench alert`: sourced by scripts/bench after scripts/lib/services.sh.
#
# Time to notify, geoctl's alerter against Prometheus + Alertmanager in the same run, on the
# same agents and the same targets:
#   geoctl  three `geoctl agent`s (us-east, eu-west, ap-south; one Redis, one database each,
#           one PostgreSQL), BENCH_ALERT_MONITORS (10,000) HTTP monitors in every region every
#           BENCH_ALERT_EVERY (10s), rule majority, confirm 1 (the peer's rule fires on one
#           failed check too), `geoctl alerter` every 1 s with a webhook channel;
#   peer    Debian's Prometheus scraping the same agents' /metrics every 1 s with the rule
#           `probe_success == 0`, and Debian's Alertmanager (group_wait 0s, grouped by
#           monitor) with a webhook to the same receiver.
# The targets are two local HTTP servers (benches/probe serve-http) on 127.0.0.2 (the first
# BENCH_ALERT_DOWN monitors, 1,000) and 127.0.0.3 (the rest). Parts:
#   (a) the 127.0.0.2 server is killed: per monitor, time from the result that tips its rule
#       being committed (pg_xact_commit_timestamp of its row) to the receiver, and from the
#       kill to the receiver, both sides; incidents opened (exactly BENCH_ALERT_DOWN expected);
#   (b) eu-west's agent (run as `nobody`) is cut off from both targets by iptables: region and
#       monitor incidents opened, and how many monitors the peer paged for;
#   (c) CPU: the alerter's per result it evaluated, and Prometheus + Alertmanager's in the
#       same window.
# Run as root (iptables, the agent's user). Figures on stdout and in target/bench/alert.json;
# a failed run keeps its processes' logs in target/bench/alert-logs-<time>/.
# BENCH_ALERT_MONITORS, BENCH_ALERT_DOWN, BENCH_ALERT_EVERY and BENCH_PROFILE (release) change it.
# BENCH_ALERTER_BIN runs the alerter from another geoctl executable (an earlier build, for an A/B
# against the same agents, targets and peer); everything else still runs this tree's build.
# The alerter connects as its own PostgreSQL role, so pg_stat_statements counts its statements
# apart from the agents': per tick, and those that write incidents, events and the outbox.

BENCH_ALERT_MONITORS=${BENCH_ALERT_MONITORS:-10000}
BENCH_ALERT_DOWN=${BENCH_ALERT_DOWN:-1000}
BENCH_ALERT_EVERY=${BENCH_ALERT_EVERY:-10}
BENCH_PROFILE=${BENCH_PROFILE:-release}

source scripts/lib/runs.sh

_ba_work=""
_ba_pids=()
_ba_rules=()
declare -gA _ba_logs=()

# The agent cut off in part (b), and the user it runs as so iptables can tell its traffic apart.
BA_CUT_REGION=eu-west
BA_CUT_UID=65534
BA_ALERTER_ROLE=geoctl_alerter
BA_DOWN_ADDR=127.0.0.2
BA_UP_ADDR=127.0.0.3

ba_cleanup() {
  local status=$? pid rule kept
  for rule in "${_ba_rules[@]}"; do
    # shellcheck disable=SC2086
    iptables -D OUTPUT $rule 2>/dev/null || true
  done
  _ba_rules=()
  for pid in "${_ba_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${_ba_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  _ba_pids=()
  stop_services
  if [ -n "$_ba_work" ]; then
    if [ "$status" -ne 0 ]; then
      kept="target/bench/alert-logs-$(date -u +%Y%m%dT%H%M%SZ)"
      mkdir -p "$kept"
      cp "$_ba_work"/*.log "$kept"/ 2>/dev/null || true
      echo "the run failed; the logs of its processes are kept in $kept" >&2
    fi
    rm -rf "$_ba_work"
  fi
}

# ba_start LOG CMD…: a background process the cleanup stops; sets BA_PID.
ba_start() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  BA_PID=$!
  _ba_pids+=("$BA_PID")
  _ba_logs[$BA_PID]=$log
}

on_process_gone() {
  local log=${_ba_logs[$1]:-}
  echo "${log:+$(basename "$log" .log) }(pid $1) is no longer running${log:+; the end of its log:}" >&2
  [ -z "$log" ] || tail -n 20 "$log" | sed 's/^/   | /' >&2
}

geoctl() {
  "$GEOCTL_BIN" "$@"
}

now_ms() { date +%s%3N; }

# wait_for WHAT SECONDS COMMAND…: polls COMMAND (every 0.5 s) until it succeeds; fails naming WHAT.
wait_for() {
  local what=$1 seconds=$2 deadline
  shift 2
  deadline=$(( $(now_ms) + seconds * 1000 ))
  until "$@"; do
    if [ "$(now_ms)" -gt "$deadline" ]; then
      echo "gave up after ${seconds} s waiting for $what" >&2
      return 1
    fi
    sleep 0.5
  done
}

ba_build() {
  log "building geoctl and benches/probe ($BENCH_PROFILE profile)"
  local artifacts=$_ba_work/build.json bin
  cargo build --profile "$BENCH_PROFILE" --locked --bin geoctl --bench probe \
    --message-format=json-render-diagnostics >"$artifacts"
  bin=$(artifact "$artifacts" geoctl bin)
  PROBE_BENCH=$(artifact "$artifacts" probe bench)
  [ -x "$bin" ] && [ -x "$PROBE_BENCH" ] || { echo "build produced no executables" >&2; return 1; }
  # A copy the cut-off agent's user can run, whatever the permissions of the tree.
  install -m 755 "$bin" "$_ba_work/geoctl"
  GEOCTL_BIN=$_ba_work/geoctl
}

# The monitors: the first BENCH_ALERT_DOWN check the server that goes down, the rest the other.
ba_monitors() {
  awk -v n="$BENCH_ALERT_MONITORS" -v down="$BENCH_ALERT_DOWN" -v every="$BENCH_ALERT_EVERY" \
    -v d="$BA_DOWN_ADDR:$BA_TARGET_PORT" -v u="$BA_UP_ADDR:$BA_TARGET_PORT" 'BEGIN {
      print "monitors:"
      for (i = 1; i <= n; i++)
        printf "  - {name: alert-%d, type: http, target: \"http://%s/%d\", every: %ss, timeout: 5s}\n", i, (i <= down ? d : u), i, every
    }'
}

ba_agents() {
  local region port prefix
  BA_METRICS=()
  for region in us-east eu-west ap-south; do
    port=$(free_port)
    mkdir -p "$_ba_work/spool-$region"
    prefix=()
    if [ "$region" = "$BA_CUT_REGION" ]; then
      chown "$BA_CUT_UID" "$_ba_work/spool-$region"
      prefix=(setpriv --reuid="$BA_CUT_UID" --regid="$BA_CUT_UID" --clear-groups --)
    fi
    ba_start "$_ba_work/agent-$region.log" env RUST_LOG=warn "${prefix[@]}" "$GEOCTL_BIN" agent --region "$region" \
      --concurrency 64 --listen "127.0.0.1:$port" --spool-dir "$_ba_work/spool-$region"
    BA_METRICS+=("127.0.0.1:$port")
    BA_AGENT_PIDS+=("$BA_PID")
  done
  for port in "${BA_METRICS[@]}"; do
    wait_for "the agent on $port to be ready" 60 geoctl agent health --url "http://$port/health/ready" >/dev/null 2>&1
  done
}

# Prometheus (1 s scrape and rule evaluation) and Alertmanager (group_wait 0s, one group per
# monitor, as geoctl opens one incident per monitor) to the receiver's /alertmanager.
ba_peer() {
  local prom_port am_port target targets=""
  command -v prometheus >/dev/null || apt_install prometheus
  command -v prometheus-alertmanager >/dev/null || apt_install prometheus-alertmanager
  prom_port=$(free_port)
  am_port=$(free_port)
  for target in "${BA_METRICS[@]}"; do targets+="'$target',"; done
  cat >"$_ba_work/alertmanager.yml" <<EOF
route:
  receiver: bench
  group_by: ['monitor_id']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 4h
receivers:
  - name: bench
    webhook_configs:
      - url: 'http://127.0.0.1:$BA_RECEIVER_PORT/alertmanager'
        send_resolved: false
EOF
  cat >"$_ba_work/rules.yml" <<EOF
groups:
  - name: bench
    interval: 1s
    rules:
      - alert: ProbeDown
        expr: probe_success == 0
EOF
  cat >"$_ba_work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: ['$_ba_work/rules.yml']
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:$am_port']
scrape_configs:
  - job_name: geoctl-agents
    static_configs:
      - targets: [${targets%,}]
    # Only what the rule reads is stored; every sample is still scraped and parsed.
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: probe_success
        action: keep
EOF
  ba_start "$_ba_work/alertmanager.log" prometheus-alertmanager --config.file="$_ba_work/alertmanager.yml" \
    --storage.path="$_ba_work/am-data" --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address=
  BA_AM_PID=$BA_PID
  ba_start "$_ba_work/prometheus.log" prometheus --config.file="$_ba_work/prometheus.yml" \
    --storage.tsdb.path="$_ba_work/prom-data" --web.listen-address="127.0.0.1:$prom_port"
  BA_PROM_PID=$BA_PID
  BA_PROM_URL="http://127.0.0.1:$prom_port"
  wait_for "Alertmanager" 60 curl -sf "http://127.0.0.1:$am_port/-/ready" -o /dev/null
  wait_for "Prometheus" 60 curl -sf "$BA_PROM_URL/-/ready" -o /dev/null
}

# How many probe_success series Prometheus holds now.
prom_series() {
  curl -sf "$BA_PROM_URL/api/v1/query" --data-urlencode 'query=count(probe_success)' \
    | sed -n 's/.*"value":\[[0-9.]*,"\([0-9]*\)"\].*/\1/p'
}

every_series_seen() {
  [ "$(psql_q "SELECT count(*) FROM (SELECT DISTINCT monitor_id, execution_region FROM monitor_results) s")" \
    -ge $((BENCH_ALERT_MONITORS * 3)) ] && [ "$(prom_series)" = $((BENCH_ALERT_MONITORS * 3)) ]
}

# The receiver's log as rows of bench_received(ms, path, body), replaced on each call.
ba_load_received() {
  psql_q "DROP TABLE IF EXISTS bench_received; CREATE TABLE bench_received (line jsonb)"
  "$(pg_bindir)/psql" -X -q "$DATABASE_URL" \
    -c "\\copy bench_received FROM '$_ba_work/received.log' WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')"
}

# Monitors (ids) whose first notification after T ms reached the receiver: geoctl's `opened`
# events of down incidents, and the peer's firing alerts.
geoctl_paged_since() {
  psql_q "SELECT count(DISTINCT i.monitor_id) FROM bench_received b
          JOIN incidents i ON i.id = (b.line #>> '{body,incident,id}')::bigint
          WHERE b.line ->> 'path' = '/geoctl' AND b.line #>> '{body,event,kind}' = 'opened'
            AND i.kind = 'monitor' AND (b.line ->> 'ms')::bigint >= $1"
}
peer_paged_since() {
  psql_q "SELECT count(DISTINCT a #>> '{labels,monitor_id}') FROM bench_received b,
            jsonb_array_elements(b.line #> '{body,alerts}') a
          WHERE b.line ->> 'path' = '/alertmanager' AND a ->> 'status' = 'firing' AND (b.line ->> 'ms')::bigint >= $1"
}

both_paged() {
  ba_load_received
  [ "$(geoctl_paged_since "$1")" -ge "$2" ] && [ "$(peer_paged_since "$1")" -ge "$2" ]
}

incidents_since() {
  psql_q "SELECT count(*) FILTER (WHERE kind = 'monitor'), count(*) FILTER (WHERE kind = 'region'),
                 count(*) FILTER (WHERE resolved_at IS NULL)
          FROM incidents WHERE opened_at >= to_timestamp($1 / 1000.0)" | tr '|' ' '
}

none_open() {
  [ "$(psql_q "SELECT count(*) FROM incidents WHERE resolved_at IS NULL")" = 0 ]
}

# Down incidents opened since T ms: "of the down monitors, of the others", and still open.
down_incidents_since() {
  psql_q "SELECT count(*) FILTER (WHERE m.name::text ~ '^alert-[0-9]+$' AND substring(m.name::text FROM 7)::int <= $BENCH_ALERT_DOWN),
                 count(*) FILTER (WHERE NOT (m.name::text ~ '^alert-[0-9]+$' AND substring(m.name::text FROM 7)::int <= $BENCH_ALERT_DOWN)),
                 count(*) FILTER (WHERE i.resolved_at IS NULL)
          FROM incidents i JOIN monitors m ON m.id = i.monitor_id
          WHERE i.cause = 'down' AND i.opened_at >= to_timestamp($1 / 1000.0)" | tr '|' ' '
}

down_resolved_since() {
  read -r _ _ open <<<"$(down_incidents_since "$1")"
  [ "$open" = 0 ]
}

# The CTEs both of part (a)'s queries start with, for the kill at T0 ms: the down monitors
# (down), each one's first failed result's commit per region (ranked by commit: k), and the
# commit of the result that tipped its rule (tipped: the `majority`-th region's, confirm being 1).
ba_down_ctes() {
  local t0=$1
  echo "
    WITH down AS (
      SELECT id FROM monitors WHERE name::text ~ '^alert-[0-9]+$'
        AND substring(name::text FROM 7)::int <= $BENCH_ALERT_DOWN),
    failed AS (
      SELECT r.monitor_id, r.execution_region,
             min(extract(epoch FROM pg_xact_commit_timestamp(r.xmin)) * 1000) AS committed
      FROM monitor_results r
      WHERE r.checked_at >= to_timestamp($t0 / 1000.0) AND r.is_up = false AND r.monitor_id IN (SELECT id FROM down)
      GROUP BY 1, 2),
    ranked AS (
      SELECT monitor_id, committed, row_number() OVER (PARTITION BY monitor_id ORDER BY committed) AS k FROM failed),
    tipped AS (SELECT monitor_id, committed FROM ranked WHERE k = 2)"
}

# Part (a)'s figures, in one query: per down monitor, the commit of the result that tipped its
# rule (the `majority`-th region's first failure after the kill, confirm being 1) and the
# receiver's first arrival of geoctl's page; the commit of its first failed result anywhere and
# the first arrival of the peer's (whose rule fires on one region).
ba_part_a_figures() {
  local t0=$1
  psql_q "
    $(ba_down_ctes "$t0"),
    first_failed AS (SELECT monitor_id, committed FROM ranked WHERE k = 1),
    geoctl AS (
      SELECT i.monitor_id, min((b.line ->> 'ms')::bigint) AS ms FROM bench_received b
      JOIN incidents i ON i.id = (b.line #>> '{body,incident,id}')::bigint
      WHERE b.line ->> 'path' = '/geoctl' AND b.line #>> '{body,event,kind}' = 'opened'
        AND (b.line ->> 'ms')::bigint >= $t0 AND i.kind = 'monitor'
      GROUP BY 1),
    peer AS (
      SELECT (a #>> '{labels,monitor_id}')::uuid AS monitor_id, min((b.line ->> 'ms')::bigint) AS ms
      FROM bench_received b, jsonb_array_elements(b.line #> '{body,alerts}') a
      WHERE b.line ->> 'path' = '/alertmanager' AND a ->> 'status' = 'firing' AND (b.line ->> 'ms')::bigint >= $t0
      GROUP BY 1),
    g AS (SELECT g.ms - t.committed AS from_commit, g.ms - $t0 AS from_down
          FROM geoctl g JOIN tipped t USING (monitor_id) WHERE g.monitor_id IN (SELECT id FROM down)),
    p AS (SELECT p.ms - f.committed AS from_commit, p.ms - $t0 AS from_down
          FROM peer p JOIN first_failed f USING (monitor_id) WHERE p.monitor_id IN (SELECT id FROM down))
    SELECT 'geoctl', count(*),
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY from_commit)), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY from_commit)), round(max(from_commit)),
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY from_down)), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY from_down)), round(max(from_down))
    FROM g
    UNION ALL
    SELECT 'peer', count(*),
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY from_commit)), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY from_commit)), round(max(from_commit)),
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY from_down)), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY from_down)), round(max(from_down))
    FROM p" | tr '|' ' '
}

# Where geoctl's time went in part (a), per down monitor, p50 and p99 in ms: from the deciding
# commit to the start of the tick that opened its incident (its `opened` event's `at`, the tick
# transaction's start), that tick's transaction (to the event's commit: the event row, unlike
# its outbox rows, is never updated, so its xmin is the tick's), and from that commit to the
# receiver. Negative waits are results committed after the tick began but before it read them.
ba_part_a_phases() {
  local t0=$1
  psql_q "
    $(ba_down_ctes "$t0"),
    paged AS (
      SELECT i.monitor_id, min((b.line ->> 'ms')::bigint) AS ms,
             min(extract(epoch FROM e.at) * 1000) AS tick_started,
             min(extract(epoch FROM pg_xact_commit_timestamp(e.xmin)) * 1000) AS tick_committed
      FROM bench_received b
      JOIN incidents i ON i.id = (b.line #>> '{body,incident,id}')::bigint
      JOIN incident_events e ON e.id = (b.line #>> '{body,event,id}')::bigint
      WHERE b.line ->> 'path' = '/geoctl' AND e.kind = 'opened' AND i.kind = 'monitor'
        AND (b.line ->> 'ms')::bigint >= $t0 AND i.monitor_id IN (SELECT id FROM down)
      GROUP BY 1),
    p AS (SELECT p.tick_started - t.committed AS wait, p.tick_committed - p.tick_started AS tick,
                 p.ms - p.tick_committed AS delivery
          FROM paged p JOIN tipped t USING (monitor_id))
    SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY wait)), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY wait)),
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY tick)), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY tick)),
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY delivery)), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY delivery))
    FROM p" | tr '|' ' '
}

# The alerter's statements since the last pg_stat_statements_reset(): "ticks' delivery's writes",
# where delivery's are the outbox's (notify::deliver_due: due channels, claim, load, record) and
# writes those that write incidents, events, outbox rows and flapping state.
ba_alerter_statements() {
  psql_q "
    SELECT coalesce(sum(calls) FILTER (WHERE NOT delivery), 0), coalesce(sum(calls) FILTER (WHERE delivery), 0),
           coalesce(sum(calls) FILTER (WHERE writes), 0)
    FROM (SELECT calls,
                 query ~ '(WITH due AS|WITH u AS|AS notification_id|FROM alert_channels WHERE id = ANY|SELECT DISTINCT channel_id FROM notifications|UPDATE notifications SET next_attempt_at)' AS delivery,
                 query ~ '(INSERT INTO (incidents|incident_events|notifications|alert_monitor_state)|UPDATE incidents)' AS writes
          FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
          WHERE r.rolname = '$BA_ALERTER_ROLE') s" | tr '|' ' '
}

# Notifications geoctl's receiver got more than once for the same event (same idempotency key).
geoctl_repeats() {
  psql_q "SELECT count(*) - count(DISTINCT (line #>> '{body,incident,id}', line #>> '{body,event,id}'))
          FROM bench_received WHERE line ->> 'path' = '/geoctl'"
}

bench_alert() {
  require_cargo
  [ "$(id -u)" -eq 0 ] || { echo "scripts/bench alert uses iptables and runs an agent as another user: run it as root" >&2; return 1; }
  command -v iptables >/dev/null || apt_install iptables
  command -v redis-server >/dev/null || apt_install redis-server
  pg_bindir >/dev/null
  _ba_work=$(mktemp -d /tmp/geoctl-bench-alert.XXXXXX)
  chmod 755 "$_ba_work"
  trap ba_cleanup EXIT
  trap 'exit 130' INT TERM
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  mkdir -p target/bench
  local json=target/bench/alert.json every=$BENCH_ALERT_EVERY n=$BENCH_ALERT_MONITORS down=$BENCH_ALERT_DOWN

  ba_build
  start_postgres "$_ba_work/pg"
  # Each result's commit time starts geoctl's figure: PostgreSQL keeps it only when asked.
  # pg_stat_statements counts the alerter's statements.
  psql_q "ALTER SYSTEM SET track_commit_timestamp = on"
  psql_q "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
  as_pg_owner "$(pg_bindir)/pg_ctl" -D "$_ba_work/pg/data" -l "$_ba_work/pg/server.log" -w -m fast restart >/dev/null
  start_redis "$_ba_work/redis"
  # One Redis, a database per region, as `bench queue` runs them.
  export DATABASE_URL REDIS_URL_US_EAST="${REDIS_URL%/*}/1" REDIS_URL_EU_WEST="${REDIS_URL%/*}/0" \
    REDIS_URL_AP_SOUTH="${REDIS_URL%/*}/2"
  geoctl db migrate >/dev/null
  psql_q "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; CREATE ROLE $BA_ALERTER_ROLE LOGIN SUPERUSER" >/dev/null
  # The peer has no latency rule: geoctl's latency thresholds go to the checks' timeout, so both
  # page for the same thing (a check slow on a loaded machine is not what is measured here).
  psql_q "UPDATE regions SET latency_warning_ms = 4000, latency_critical_ms = 5000"

  BA_RECEIVER_PORT=$(free_port)
  : >"$_ba_work/received.log"
  ba_start "$_ba_work/receiver.log" python3 scripts/lib/bench_alert_receiver.py "$BA_RECEIVER_PORT" "$_ba_work/received.log"
  BA_TARGET_PORT=$(free_port)
  ba_start "$_ba_work/target-down.log" "$PROBE_BENCH" serve-http --listen "$BA_DOWN_ADDR:$BA_TARGET_PORT" --lifetime-secs 7200
  BA_DOWN_PID=$BA_PID
  ba_start "$_ba_work/target-up.log" "$PROBE_BENCH" serve-http --listen "$BA_UP_ADDR:$BA_TARGET_PORT" --lifetime-secs 7200

  log "$n monitors x 3 regions every ${every}s"
  ba_monitors >"$_ba_work/monitors.yaml"
  geoctl monitor apply -f "$_ba_work/monitors.yaml" >/dev/null 2>"$_ba_work/apply.log"
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$_ba_work/hook.key"
  geoctl channel add bench-hook --type webhook --url "http://127.0.0.1:$BA_RECEIVER_PORT/geoctl" \
    --secret-file "$_ba_work/hook.key" >/dev/null

  BA_AGENT_PIDS=()
  ba_agents
  ba_peer
  # Every tick's line (debug) carries its duration.
  local alerter_bin=${BENCH_ALERTER_BIN:-$GEOCTL_BIN}
  [ -x "$alerter_bin" ] || { echo "BENCH_ALERTER_BIN $alerter_bin is not an executable" >&2; return 1; }
  ba_start "$_ba_work/alerter.log" env RUST_LOG=info,sqlx=warn,geoctl::alert::service=debug ALERT_INTERVAL=1s ALERT_CONFIRM=1 \
    ALERT_DEFAULT_CHANNELS=bench-hook ALERT_REGION_CHANNELS=bench-hook DATABASE_URL="${DATABASE_URL/geoctl@/$BA_ALERTER_ROLE@}" \
    "$alerter_bin" alerter
  BA_ALERTER_PID=$BA_PID

  log "waiting for every monitor's first result in every region, in PostgreSQL and in Prometheus"
  wait_for "every (monitor, region) to be recorded and scraped" $((every * 6 + 60)) every_series_seen
  sleep "$every"
  # Checks that failed with every target up (a machine too loaded for its timeouts) would be
  # counted in (a): say so, and the figures are to be read with it.
  if ! none_open; then
    echo "warning: incidents opened before any target went down; the machine is not keeping up:" >&2
    psql_q "SELECT summary FROM incidents LIMIT 5" >&2
  fi
  local c0_alerter c0_peer t_start log_from
  t_start=$(now_ms)
  log_from=$(wc -l <"$_ba_work/alerter.log")
  c0_alerter=$(cpu_of "$BA_ALERTER_PID")
  c0_peer=$(awk -v a="$(cpu_of "$BA_PROM_PID")" -v b="$(cpu_of "$BA_AM_PID")" 'BEGIN { print a + b }')

  printf 'geoctl alert benchmark — %s, %s cores, load %s, %s build, %s\n' "$(uname -m)" "$(nproc)" \
    "$(cut -d' ' -f1 /proc/loadavg)" "$BENCH_PROFILE" "$(date -u +%FT%TZ)"
  printf '%s monitors x 3 regions every %ss; geoctl: rule majority, confirm 1, alerter every 1 s; peer: Prometheus %s\n' \
    "$n" "$every" "$(prometheus --version 2>&1 | sed -n '1s/.*version \([^ ]*\).*/\1/p')"
  printf '(scrape and rule every 1 s, probe_success == 0) + Alertmanager %s (group_wait 0s, by monitor)\n' \
    "$(prometheus-alertmanager --version 2>&1 | sed -n '1s/.*version \([^ ]*\).*/\1/p')"
  printf 'alerter: %s\n' "${BENCH_ALERTER_BIN:-this tree (its own build)}"

  # (a) The down server goes at once; both sides must page for each of its monitors.
  log "part (a): $down targets go down"
  local t0 opened_a region_a open_a
  local log_a
  psql_q "SELECT pg_stat_statements_reset()" >/dev/null
  log_a=$(wc -l <"$_ba_work/alerter.log")
  t0=$(now_ms)
  kill -KILL "$BA_DOWN_PID"
  wait_for "both sides to page for $down monitors" $((every * 4 + 90)) both_paged "$t0" "$down" || true
  # Anything more (a second incident for one monitor, a page for a monitor still up) shows here.
  sleep 3
  ba_load_received
  read -r opened_a region_a open_a <<<"$(incidents_since "$t0")"
  local down_a others_a
  read -r down_a others_a _ <<<"$(down_incidents_since "$t0")"
  local figures geo peer
  figures=$(ba_part_a_figures "$t0")
  geo=$(grep '^geoctl' <<<"$figures")
  peer=$(grep '^peer' <<<"$figures")
  printf '\n(a) %s targets down at once: down incidents opened %s for them, %s for monitors still up;\n' "$down" "$down_a" "$others_a"
  printf '   all incidents opened meanwhile: %s monitor (latency included), %s region\n' "$opened_a" "$region_a"
  printf '   %-46s %6s %7s %7s %7s   %7s %7s %7s\n' "" pages "p50" "p99" "max" "p50" "p99" "max"
  printf '   %-46s %6s %23s   %23s\n' "" "" "from the deciding commit, ms" "from the target going down, ms"
  # shellcheck disable=SC2086
  printf '   %-46s %6s %7s %7s %7s   %7s %7s %7s\n' "geoctl (tipping result: 2nd region's failure)" $(cut -d' ' -f2- <<<"$geo")
  # shellcheck disable=SC2086
  printf '   %-46s %6s %7s %7s %7s   %7s %7s %7s\n' "peer (first failed result in any region)" $(cut -d' ' -f2- <<<"$peer")
  printf '   geoctl notifications repeated (same event twice): %s\n' "$(geoctl_repeats)"
  local phases ticks_a opening_a stmts_a s_ticks s_delivery s_writes
  phases=$(ba_part_a_phases "$t0")
  # shellcheck disable=SC2086
  printf '   geoctl, p50/p99 ms: deciding commit to its tick %s/%s, the tick %s/%s, tick commit to receiver %s/%s\n' $phases
  ticks_a=$(tail -n +"$((log_a + 1))" "$_ba_work/alerter.log" | grep -c ' tick ' || true)
  opening_a=$(tail -n +"$((log_a + 1))" "$_ba_work/alerter.log" | grep ' tick ' | grep -c 'opened=[1-9]' || true)
  stmts_a=$(ba_alerter_statements)
  read -r s_ticks s_delivery s_writes <<<"$stmts_a"
  printf '   alerter statements (pg_stat_statements): %s ticks (%s opened incidents): %s statements, %s per tick;\n' \
    "$ticks_a" "$opening_a" "$s_ticks" "$(awk -v s="$s_ticks" -v t="$ticks_a" 'BEGIN { printf "%.1f", t ? s / t : 0 }')"
  printf '   %s of them wrote incidents, events, outbox rows or flapping state (%s per incident); delivery %s\n' \
    "$s_writes" "$(awk -v s="$s_writes" -v n="$down_a" 'BEGIN { printf "%.2f", n ? s / n : 0 }')" "$s_delivery"

  log "the $down targets come back"
  ba_start "$_ba_work/target-down-2.log" "$PROBE_BENCH" serve-http --listen "$BA_DOWN_ADDR:$BA_TARGET_PORT" --lifetime-secs 7200
  local t_back resolved_in=""
  t_back=$(now_ms)
  if wait_for "the $down incidents to resolve" $((every * 4 + 90)) down_resolved_since "$t0"; then
    resolved_in=$(( $(now_ms) - t_back ))
    printf '   all %s resolved %s ms after the targets came back\n' "$down_a" "$resolved_in"
  fi
  sleep 5

  # (b) eu-west's agent can no longer reach either target; PostgreSQL and Redis it still reaches.
  log "part (b): $BA_CUT_REGION's agent cut off from the targets"
  local t1 rule addr opened_b region_b peer_b geo_b
  t1=$(now_ms)
  for addr in "$BA_DOWN_ADDR" "$BA_UP_ADDR"; do
    rule="-p tcp -d $addr --dport $BA_TARGET_PORT -m owner --uid-owner $BA_CUT_UID -j REJECT --reject-with tcp-reset"
    # shellcheck disable=SC2086
    iptables -I OUTPUT $rule
    _ba_rules+=("$rule")
  done
  # Every eu-west check fails within one interval; then three more for anything late.
  sleep $((every * 4))
  ba_load_received
  read -r opened_b region_b _ <<<"$(incidents_since "$t1")"
  geo_b=$(geoctl_paged_since "$t1")
  peer_b=$(peer_paged_since "$t1")
  printf '\n(b) %s cut off from every target for %s s: geoctl opened %s region incident(s) and %s monitor incident(s);\n' \
    "$BA_CUT_REGION" $((every * 4)) "$region_b" "$opened_b"
  printf '   %s\n' "$(psql_q "SELECT string_agg(summary, '; ') FROM incidents WHERE kind = 'region' AND opened_at >= to_timestamp($t1 / 1000.0)")"
  printf '   monitors paged: geoctl %s, peer %s\n' "$geo_b" "$peer_b"
  for rule in "${_ba_rules[@]}"; do
    # shellcheck disable=SC2086
    iptables -D OUTPUT $rule
  done
  _ba_rules=()

  # (c) CPU over the whole measured window, against the results recorded in it.
  local t_end c_alerter c_peer results
  t_end=$(now_ms)
  c_alerter=$(awk -v a="$c0_alerter" -v b="$(cpu_of "$BA_ALERTER_PID")" 'BEGIN { printf "%.2f", b - a }')
  c_peer=$(awk -v a="$c0_peer" -v b="$(cpu_of "$BA_PROM_PID")" -v c="$(cpu_of "$BA_AM_PID")" 'BEGIN { printf "%.2f", b + c - a }')
  results=$(psql_q "SELECT count(*) FROM monitor_results
                    WHERE checked_at >= to_timestamp($t_start / 1000.0) AND checked_at < to_timestamp($t_end / 1000.0)")
  local seconds=$(( (t_end - t_start) / 1000 ))
  printf '\n(c) CPU over the %s s measured (%s results recorded): geoctl alerter %s s = %s µs per result;\n' \
    "$seconds" "$results" "$c_alerter" "$(awk -v c="$c_alerter" -v r="$results" 'BEGIN { printf "%.1f", c * 1e6 / r }')"
  printf '   peer: Prometheus + Alertmanager %s s = %s µs per result (each scraped every second, not once)\n' \
    "$c_peer" "$(awk -v c="$c_peer" -v r="$results" 'BEGIN { printf "%.1f", c * 1e6 / r }')"
  local ticks
  ticks=$(tail -n +"$((log_from + 1))" "$_ba_work/alerter.log" | grep ' tick' | grep -o ' ms=[0-9]*' | cut -d= -f2 | sort -n \
    | awk '{ v[NR] = $1 } END { if (NR) printf "%d %d %d %d", NR, v[int((NR - 1) * 0.5) + 1], v[int((NR - 1) * 0.99) + 1], v[NR] }')
  printf '   alerter ticks (heartbeats, read, evaluate, write, commit): %s, ms p50 %s, p99 %s, max %s\n' $ticks

  # shellcheck disable=SC2086
  set -- $geo
  local g_json="{\"pages\":$2,\"from_commit_ms\":{\"p50\":${3:-null},\"p99\":${4:-null},\"max\":${5:-null}},\"from_down_ms\":{\"p50\":${6:-null},\"p99\":${7:-null},\"max\":${8:-null}}}"
  # shellcheck disable=SC2086
  set -- $peer
  local p_json="{\"pages\":$2,\"from_commit_ms\":{\"p50\":${3:-null},\"p99\":${4:-null},\"max\":${5:-null}},\"from_down_ms\":{\"p50\":${6:-null},\"p99\":${7:-null},\"max\":${8:-null}}}"
  printf '{"alerter":"%s","monitors":%s,"regions":3,"every_s":%s,"down":%s,"a":{"incidents":%s,"down_incidents":%s,"down_incidents_of_up_monitors":%s,"region_incidents":%s,"geoctl":%s,"peer":%s,"resolved_ms":%s,"geoctl_phases_ms":"%s","alerter_statements":{"ticks":%s,"opening_ticks":%s,"tick_statements":%s,"write_statements":%s,"delivery_statements":%s}},"b":{"region_incidents":%s,"monitor_incidents":%s,"geoctl_monitors_paged":%s,"peer_monitors_paged":%s},"c":{"seconds":%s,"results":%s,"alerter_cpu_s":%s,"peer_cpu_s":%s,"ticks":"%s"}}\n' \
    "${BENCH_ALERTER_BIN:-this tree}" "$n" "$every" "$down" "$opened_a" "$down_a" "$others_a" "$region_a" "$g_json" "$p_json" "${resolved_in:-null}" \
    "$phases" "$ticks_a" "$opening_a" "$s_ticks" "$s_writes" "$s_delivery" "$region_b" "$opened_b" \
    "$geo_b" "$peer_b" "$seconds" "$results" "$c_alerter" "$c_peer" "$ticks" >"$json"
  cp "$_ba_work/alerter.log" target/bench/alert-alerter.log
  echo "JSON: $json; the alerter's log: target/bench/alert-alerter.log"
}
