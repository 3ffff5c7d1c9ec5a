# `scripts/bench dashboard`: sourced by scripts/bench after scripts/lib/services.sh.
#
# The dashboard's API under load, on the history `scripts/bench history` generates (reused from
# scripts/lib/bench_history.sh, partitioned by day as `geoctl db migrate` makes it):
# BENCH_DASHBOARD_MONITORS (1000) monitors x 3 regions x 1 check a minute over
# BENCH_DASHBOARD_DAYS (14) days up to now, results and metrics, and their daily summaries.
# Against a private PostgreSQL and Redis (or the servers DATABASE_URL and REDIS_URL name; it
# creates and drops the database geoctl_bench_dashboard), `geoctl dashboard` on loopback:
#   - each call's first answer after start (cold: nothing cached yet), then p50/p99 and requests/s
#     of `GET /api/v1/overview` and `GET /api/v1/monitors/{id}` (a random monitor per request)
#     for range=1h, 24h and 30d under wrk at 16 connections for BENCH_SECONDS (10) each;
#   - the peer in the same run: the equivalent SQL over raw results, what a dashboard without
#     summaries or a cache would run for the same call (pgbench, 16 clients, same duration;
#     every client finishes the statement it began, so a slow peer takes longer than that);
#   - the overview and a monitor page (range=24h) in headless Chromium through geoctl's browser
#     driver (examples/browser_journey.rs): DOMContentLoaded, first and largest contentful paint
#     (the Performance API's entries), the median of BENCH_DASHBOARD_PAINTS (5) loads.
# Figures to stdout and target/bench/dashboard.json. Debug build unless BENCH_RELEASE=1.
# BENCH_DASHBOARD_GEOCTL=PATH measures that geoctl instead (an earlier build, for A/B);
# BENCH_DASHBOARD_PEER=0 leaves the peer out.
# BENCH_DASHBOARD_KEEP=1 keeps the database (a later run with the same sizes then only adds
# the minutes since, instead of generating it all again); otherwise it is dropped at the end.

source scripts/lib/bench_history.sh

DASHBOARD_RANGES="1h 24h 30d"

# dashboard_history URL MONITORS DAYS GEOCTL: a migrated database partitioned by day holding
# the generated history and its daily summaries, up to the current minute. A database of an
# earlier run with the same monitors only gets the minutes since its last result.
dashboard_history() {
  local url=$1 monitors=$2 days=$3 bin=$4 start last until day
  until=$(history_psql "$url" -c "SELECT date_trunc('minute', now())")
  if [ "$(history_psql "$url" -c "SELECT to_regclass('monitors') IS NOT NULL")" = t ] \
    && [ "$(history_psql "$url" -c "SELECT count(*) FROM monitors")" = "$monitors" ]; then
    log "reusing the kept history"
  else
    start=$(history_psql "$url" -c "SELECT ((now() AT TIME ZONE 'UTC')::date - $days)::timestamp AT TIME ZONE 'UTC'")
    history_check_disk "$(history_psql "$url" -c "SHOW data_directory")" \
      "$(history_psql "$url" -c "SELECT 3 * $monitors * extract(epoch FROM '$until'::timestamptz - '$start'::timestamptz)::bigint / 60")" \
      || exit 2
    DATABASE_URL=$url "$bin" db migrate >/dev/null
    history_partition_days "$url" "$start" "$days" "$bin"
    history_monitors "$url" "$monitors"
    log "generating $monitors monitors x 3 regions x 1/min from $start to $until with COPY"
    history_generate "$url" "$start" "$until" "$monitors"
    history_psql "$url" -c "VACUUM ANALYZE monitor_results" -c "VACUUM ANALYZE regional_performance_metrics"
    log "daily summaries (geoctl summaries rebuild)"
    DATABASE_URL=$url "$bin" summaries rebuild >/dev/null
  fi
  # The minutes since the last result (generating took a while, or the database was kept), and
  # the summaries of the days they fall in, so the last hour is whole and every state is fresh.
  last=$(history_psql "$url" -c "SELECT max(checked_at) FROM monitor_results")
  until=$(history_psql "$url" -c "SELECT date_trunc('minute', now())")
  if [ "$(history_psql "$url" -c "SELECT '$last'::timestamptz + interval '1 minute' < '$until'")" = t ]; then
    log "adding the results from $last to $until"
    history_generate "$url" "$(history_psql "$url" -c "SELECT '$last'::timestamptz + interval '1 minute'")" "$until" "$monitors" 1
    for day in $(history_psql "$url" -c "SELECT d::date FROM generate_series(('$last'::timestamptz AT TIME ZONE 'UTC')::date,
        ('$until'::timestamptz AT TIME ZONE 'UTC')::date, interval '1 day') d"); do
      DATABASE_URL=$url "$bin" summaries rebuild --date "$day" >/dev/null
    done
  fi
}

# The SQL of the peer, for pgbench: what the call reads when every figure comes from raw
# results. dashboard_peer_sql overview|monitor RANGE MONITORS
dashboard_peer_sql() {
  local call=$1 range=$2 monitors=$3 span bucket
  case $range in 1h) span='1 hour' ;; 24h) span='24 hours' ;; 30d) span='30 days' ;; esac
  # The report's series: 60 buckets over the range.
  case $range in 1h) bucket=60 ;; 24h) bucket=1440 ;; 30d) bucket=43200 ;; esac
  local window="checked_at >= now() - interval '$span' AND checked_at <= now()"
  local latest="LEFT JOIN LATERAL (SELECT is_up, checked_at, total_time, error_kind, error_message FROM monitor_results r
      WHERE r.monitor_id = mr.monitor_id AND r.execution_region = mr.region_code
        AND r.checked_at >= now() - interval '7 days' AND r.checked_at <= now()
      ORDER BY checked_at DESC LIMIT 1) l ON true"
  if [ "$call" = overview ]; then
    # Each region's checks, uptime and slowest p95 (every monitor's p95, then the highest), and
    # every monitor's latest result per region.
    cat <<SQL
SELECT execution_region, sum(checks), sum(up), max(p95) FROM (
  SELECT monitor_id, execution_region, count(*) AS checks, count(*) FILTER (WHERE is_up) AS up,
         percentile_cont(0.95) WITHIN GROUP (ORDER BY total_time) FILTER (WHERE is_up) AS p95
  FROM monitor_results WHERE $window GROUP BY 1, 2) s GROUP BY 1;
SELECT mr.monitor_id, mr.region_code, l.* FROM monitor_regions mr $latest;
SQL
  else
    # One monitor's statistics and phases per region, its series, where it landed, its latest
    # result per region and its recent failures.
    local id="md5('m' || :g)::uuid"
    cat <<SQL
\\set g random(1, $monitors)
SELECT execution_region, count(*), count(*) FILTER (WHERE is_up),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY total_time) FILTER (WHERE is_up),
       avg(total_time), avg(dns_resolution_time), avg(tcp_connect_time), avg(tls_handshake_time), avg(first_byte_time)
  FROM monitor_results WHERE monitor_id = $id AND $window GROUP BY 1;
SELECT execution_region, floor(extract(epoch FROM checked_at) / $bucket), count(*), count(*) FILTER (WHERE is_up),
       avg(total_time), max(total_time)
  FROM monitor_results WHERE monitor_id = $id AND $window GROUP BY 1, 2;
SELECT region_code, country_code, city, asn, isp, count(*)
  FROM regional_performance_metrics WHERE monitor_id = $id AND $window GROUP BY 1, 2, 3, 4, 5;
SELECT mr.region_code, l.* FROM monitor_regions mr $latest WHERE mr.monitor_id = $id;
SELECT checked_at, execution_region, total_time, error_kind, error_message
  FROM monitor_results WHERE monitor_id = $id AND NOT is_up AND $window ORDER BY checked_at DESC LIMIT 20;
SQL
  fi
}

# wrk's figures as JSON: p50/p99 in ms, requests/s, answers that were not 2xx.
dashboard_wrk_json() {
  python3 -c '
import json, re, sys
text = sys.stdin.read()
unit = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
def pct(p):
    m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % p, text, re.M)
    return round(float(m.group(1)) * unit[m.group(2)], 2) if m else None
rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
errors = re.search(r"Socket errors:.*", text)
print(json.dumps({"p50_ms": pct(50), "p99_ms": pct(99), "requests_per_s": float(rps.group(1)) if rps else None,
                  "non_2xx": int(bad.group(1)) if bad else 0, "socket_errors": errors.group(0) if errors else None}))'
}

# pgbench's per-transaction log (the third field is the latency in µs) as the same JSON.
dashboard_pgbench_json() {
  python3 - "$@" <<'PY'
import json, sys
seconds = float(sys.argv[1])
lat = sorted(int(line.split()[2]) / 1000 for f in sys.argv[2:] for line in open(f))
at = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else None
print(json.dumps({"p50_ms": at(0.50), "p99_ms": at(0.99), "requests_per_s": round(len(lat) / seconds, 2),
                  "transactions": len(lat)}))
PY
}

# A page's timing in Chromium: the median of RUNS loads through geoctl's browser driver.
dashboard_paint_json() {
  local driver=$1 url=$2 runs=$3 i
  # A load that fails (a page slower than the driver's minute) is counted, not measured.
  for ((i = 0; i < runs; i++)); do
    "$driver" --timeout-ms 60000 "[{\"goto\":\"$url\"}]" || true
  done | python3 -c '
import json, statistics, sys
runs = [json.loads(line) for line in sys.stdin]
pages = [r["pages"][0] for r in runs if not r["failure"] and r["pages"]]
med = lambda k: round(statistics.median(p[k] for p in pages), 1) if pages and all(p.get(k) is not None for p in pages) else None
# A load whose first paint came after the driver stopped waiting has none: the median is of the
# loads that have one, and how many did is said.
painted = [p["first_contentful_paint_ms"] for p in pages if p.get("first_contentful_paint_ms") is not None]
print(json.dumps({"dom_content_loaded_ms": med("dom_content_loaded_ms"),
                  "first_contentful_paint_ms": round(statistics.median(painted), 1) if painted else None,
                  "painted": len(painted),
                  "largest_contentful_paint_ms": med("largest_contentful_paint_ms"), "loads": len(pages),
                  "failed": [r["failure"] for r in runs if r["failure"]]}))'
}

bench_dashboard() {
  require_cargo
  command -v wrk >/dev/null || apt_install wrk >/dev/null
  command -v chromium >/dev/null || apt_install chromium >/dev/null
  local work monitors days seconds paints admin url bin driver out build=debug
  monitors=${BENCH_DASHBOARD_MONITORS:-1000}
  days=${BENCH_DASHBOARD_DAYS:-14}
  seconds=${BENCH_SECONDS:-10}
  paints=${BENCH_DASHBOARD_PAINTS:-5}
  work=$(mktemp -d /tmp/geoctl-bench-dashboard.XXXXXX)
  chmod 755 "$work"
  # shellcheck disable=SC2064
  trap "dashboard_stop; stop_services; rm -rf '$work'" EXIT
  [ -n "${DATABASE_URL:-}" ] || start_postgres "$work/pg"
  [ -n "${REDIS_URL:-}" ] || start_redis "$work/redis"
  admin=$DATABASE_URL
  out=$(realpath -m "${CARGO_TARGET_DIR:-target}/bench")
  mkdir -p "$out"

  local profile=()
  [ "${BENCH_RELEASE:-0}" = 1 ] && profile=(--release) && build=release
  log "cargo build ($build): geoctl and examples/browser_journey"
  cargo build --locked --bin geoctl --example browser_journey "${profile[@]}" >&2
  bin=$(realpath -m "${BENCH_DASHBOARD_GEOCTL:-${CARGO_TARGET_DIR:-target}/$build/geoctl}")
  driver=$(realpath -m "${CARGO_TARGET_DIR:-target}/$build/examples/browser_journey")

  url=$(python3 -c "import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(p._replace(path='/geoctl_bench_dashboard').geturl())" "$admin")
  history_psql "$admin" -c "SELECT 1 FROM pg_database WHERE datname = 'geoctl_bench_dashboard'" | grep -q 1 \
    || history_psql "$admin" -c "CREATE DATABASE geoctl_bench_dashboard"
  dashboard_history "$url" "$monitors" "$days" "$bin"
  local rows
  rows=$(history_psql "$url" -c "SELECT count(*) FROM monitor_results")
  history_psql "$url" -c "SELECT id FROM monitors ORDER BY name" >"$work/ids"

  # Each region's queue in a Redis database of its own (empty: the bench measures the
  # dashboard's reads, not agents), and no configuration file but the environment.
  local redis=${REDIS_URL%/*}
  HOME=$work DATABASE_URL=$url REDIS_URL_AP_SOUTH=$redis/1 REDIS_URL_EU_WEST=$redis/2 REDIS_URL_US_EAST=$redis/3 \
    "$bin" dashboard --listen 127.0.0.1:0 >"$work/url" 2>"$work/dashboard.log" &
  DASHBOARD_PID=$!
  local base
  for _ in $(seq 1 300); do [ -s "$work/url" ] && break; sleep 0.1; done
  base=$(cat "$work/url")
  base=${base%/}
  [ -n "$base" ] || { cat "$work/dashboard.log" >&2; exit 1; }
  log "dashboard at $base ($rows results)"

  cat >"$work/monitor.lua" <<'LUA'
-- A random monitor of the list per request, for the range given after `--`.
local ids, range = {}, "24h"
function init(args)
  for line in io.lines(args[1]) do ids[#ids + 1] = line end
  range = args[2]
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function request()
  return wrk.format("GET", "/api/v1/monitors/" .. ids[math.random(#ids)] .. "?range=" .. range)
end
LUA

  local range call cold first fig=()
  first=$(head -n 1 "$work/ids")
  for range in $DASHBOARD_RANGES; do
    for call in overview monitor; do
      local path="/api/v1/overview?range=$range"
      [ "$call" = monitor ] && path="/api/v1/monitors/$first?range=$range"
      # The first answer after start, nothing cached for this range yet.
      cold=$(curl -fsS -o /dev/null -w '%{time_total}' "$base$path")
      local lua=()
      [ "$call" = monitor ] && lua=(-s "$work/monitor.lua")
      log "$call $range: wrk, 16 connections, ${seconds}s"
      local geo
      geo=$(wrk -t 2 -c 16 -d "${seconds}s" --latency "${lua[@]}" "$base$path" -- "$work/ids" "$range" \
        | dashboard_wrk_json)
      local peer=null
      if [ "${BENCH_DASHBOARD_PEER:-1}" = 1 ]; then
        log "$call $range: the peer, pgbench, 16 clients, ${seconds}s"
        dashboard_peer_sql "$call" "$range" "$monitors" >"$work/peer.sql"
        rm -f "$work"/pgbench_log.*
        local t0 t1
        t0=$(date +%s.%N)
        (cd "$work" && pgbench -n -c 16 -j 2 -T "$seconds" -f peer.sql --log --log-prefix=pgbench_log "$url" >/dev/null 2>"$work/pgbench.err") \
          || { cat "$work/pgbench.err" >&2; exit 1; }
        t1=$(date +%s.%N)
        peer=$(dashboard_pgbench_json "$(python3 -c "print($t1 - $t0)")" "$work"/pgbench_log.*)
      fi
      log "$call $range: cold ${cold}s, geoctl $geo, peer $peer"
      fig+=("{\"call\": \"$call\", \"range\": \"$range\", \"cold_ms\": $(python3 -c "print(round($cold * 1000, 1))"), \"geoctl\": $geo, \"peer\": $peer}")
    done
  done

  log "Chromium: overview and a monitor page, range=24h, $paints loads each"
  local paint_overview paint_monitor
  paint_overview=$(dashboard_paint_json "$driver" "$base/?range=24h" "$paints")
  paint_monitor=$(dashboard_paint_json "$driver" "$base/monitors/$first?range=24h" "$paints")

  local calls
  calls=$(IFS=,; echo "${fig[*]}")
  echo "{\"monitors\": $monitors, \"days\": $days, \"results\": $rows, \"build\": \"$build\", \"seconds\": $seconds,
    \"connections\": 16, \"calls\": [$calls],
    \"paint\": {\"overview\": $paint_overview, \"monitor\": $paint_monitor}}" | python3 -m json.tool >"$out/dashboard.json"
  dashboard_stop
  if [ "${BENCH_DASHBOARD_KEEP:-0}" != 1 ]; then
    history_psql "$admin" -c "DROP DATABASE geoctl_bench_dashboard"
  fi
  python3 - "$out/dashboard.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f'{d["monitors"]} monitors x 3 regions x 1/min x {d["days"]} days: {d["results"]:,} results ({d["build"]} build); '
      f'wrk and pgbench at {d["connections"]} connections for {d["seconds"]} s each')
print(f'{"call":<22}{"cold ms":>9}{"p50 ms":>9}{"p99 ms":>9}{"req/s":>9}{"non-2xx":>8}   {"peer p50":>9}{"p99":>9}{"tx/s":>8}')
for c in d["calls"]:
    g, p = c["geoctl"], c["peer"] or {"p50_ms": float("nan"), "p99_ms": float("nan"), "requests_per_s": float("nan")}
    print(f'{c["call"] + " " + c["range"]:<22}{c["cold_ms"]:>9.1f}{g["p50_ms"]:>9.1f}{g["p99_ms"]:>9.1f}{g["requests_per_s"]:>9.0f}'
          f'{g["non_2xx"]:>8}   {p["p50_ms"]:>9.1f}{p["p99_ms"]:>9.1f}{p["requests_per_s"]:>8.1f}')
for page, t in d["paint"].items():
    print(f'{page} page (24h) in Chromium: DOMContentLoaded {t["dom_content_loaded_ms"]} ms, '
          f'first contentful paint {t["first_contentful_paint_ms"]} ms ({t["painted"]} painted), largest contentful paint {t["largest_contentful_paint_ms"]} ms (median of {t["loads"]}; '
          f'{len(t["failed"])} failed{": " + t["failed"][0][1] if t["failed"] else ""})')
PY
}

dashboard_stop() {
  if [ -n "${DASHBOARD_PID:-}" ]; then
    kill "$DASHBOARD_PID" 2>/dev/null || true
    wait "$DASHBOARD_PID" 2>/dev/null || true
    DASHBOARD_PID=
  fi
}
